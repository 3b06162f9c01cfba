"""Wrong roots, missing or broken annotation sheets, bad rows, odd folders and odd path names.

A problem with the whole input stops the run before anything is written, with a message that says
what was expected and what to do; a problem with one row or one folder rejects that clip only.
"""
from __future__ import annotations

import json
import shutil

import pytest

from mer_pipeline.cli import main
from mer_pipeline.frames import list_frames
from mer_pipeline.shards import open_shards, verify_shards
from reliability_helpers import (CLI_OPTIONS, SHEET, assert_only_these_failed, clip_folder, edit_sheet, failures,
                                 prep, replace_bytes, samples, shard_records)

pytestmark = pytest.mark.slow
VICTIM = "casme2/sub18/EP01_2"


def run_cli(capsys, *args):
    """`mer-prep ARGS` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def refuses(capsys, raw, out, *words, extra=()):
    """The CLI exits 1 with `Error: ...` holding `words`, no traceback, and writes no shard."""
    code, _, err = run_cli(capsys, "casme2", raw, out, *CLI_OPTIONS, *extra)
    assert code == 1 and err.startswith("Error: ") and "Traceback" not in err, err
    for word in words:
        assert str(word) in err, (word, err)
    assert not list(out.glob("shards/*.h5")) and not (out / "manifest.json").exists()
    return err


# ---------------------------------------------------------------------------------------------
# the whole input is unusable: a clear refusal


def test_root_one_level_too_deep_says_what_was_expected(raw, tmp_path, capsys):
    """(The empty-folder case is tests/test_cli.py::test_wrong_root_says_what_was_expected.)"""
    subject = raw / "CASME2_RAW_selected" / "sub14"
    refuses(capsys, subject, tmp_path / "out", subject, "no CASME II frame tree found",
            "sub01/EP02_01f/img46.jpg", "CASME2_RAW_selected", "Point RAW at the CASME II download folder")


def test_root_at_the_frame_tree_without_the_sheet_asks_for_annotations(raw, tmp_path, capsys):
    tree = raw / "CASME2_RAW_selected"
    refuses(capsys, tree, tmp_path / "out", tree, "no CASME II coding sheet found", "CASME2-coding-*.xlsx",
            "--annotations FILE")
    code, out, _ = run_cli(capsys, "casme2", tree, tmp_path / "out", *CLI_OPTIONS, "--annotations", raw / SHEET)
    assert code == 0 and "4 samples ok, 0 failed" in out  # the fix the message names works


def test_missing_sheet_names_the_patterns_looked_for(raw, tmp_path, capsys):
    (raw / SHEET).unlink()
    refuses(capsys, raw, tmp_path / "out", raw, "no CASME II coding sheet found", "--annotations FILE")


@pytest.mark.parametrize("content", [b"this is not a spreadsheet\n", None], ids=["garbage", "truncated-xlsx"])
def test_unreadable_sheet_names_the_file_and_the_cause(content, raw, tmp_path, capsys):
    sheet = raw / SHEET
    replace_bytes(sheet, content if content is not None else sheet.read_bytes()[:400])
    refuses(capsys, raw, tmp_path / "out", sheet, "cannot read the annotation sheet", "BadZipFile")


def test_sheet_with_unknown_columns_lists_the_columns_it_needs(raw, tmp_path, capsys):
    sheet = edit_sheet(raw, lambda rows: [["Onset" if c == "OnsetFrame" else c for c in rows[0]], *rows[1:]])
    refuses(capsys, raw, tmp_path / "out", sheet, "no header row with columns", "'OnsetFrame'",
            "is this the right annotation file?")


# ---------------------------------------------------------------------------------------------
# one bad row or folder: that clip is rejected, the others land


def set_cells(sample_id, values):
    _, subject, clip = sample_id.split("/")

    def edit(rows):
        for row in rows[1:]:
            if f"sub{int(row[0]):02d}" == subject and row[1] == clip:
                for column, value in values.items():
                    row[rows[0].index(column)] = value
        return rows

    return edit


@pytest.mark.parametrize("values,words", [
    ({"OnsetFrame": "12a"}, "onset or offset is not an integer frame number"),
    ({"OffsetFrame": 3.5}, "onset or offset is not an integer frame number"),
    ({"OnsetFrame": -3}, "onset -3 is negative"),
    ({"OnsetFrame": 5000, "OffsetFrame": 5100}, "has no frames numbered 5000..5100 (it holds {n} images, numbered {first}..{last}); check the row"),
    ({"OffsetFrame": 10, "ApexFrame": "/"}, "offset 10 lies before onset {onset} and no apex after onset is given"),
], ids=["text-onset", "fractional-offset", "negative-onset", "frames-past-the-clip", "offset-before-onset"])
def test_a_row_with_unusable_frames_rejects_only_its_clip(values, words, raw, clean_out, tmp_path):
    victim = samples(raw)[VICTIM]
    folder = list_frames(clip_folder(raw, VICTIM))  # the whole folder (a sample keeps onset..offset only)
    words = words.format(onset=victim.onset, n=len(folder), first=min(folder), last=max(folder))
    edit_sheet(raw, set_cells(VICTIM, values))
    out = tmp_path / "out"
    prep(raw, out)
    failure = assert_only_these_failed(out, clean_out, {VICTIM: "adapter"})[VICTIM]
    assert words in failure["message"] and SHEET in failure["message"], failure


def test_a_duplicate_row_is_reported_and_the_clip_kept_once(raw, clean_out, tmp_path):
    def duplicate(rows):
        first = next(r for r in rows[1:] if r[1] == "EP01_2")
        return rows + [list(first)]

    edit_sheet(raw, duplicate)
    out = tmp_path / "out"
    summary = prep(raw, out)
    failed = failures(out)
    assert list(failed) == [VICTIM] and "duplicate row for sub18/EP01_2; kept the first" in failed[VICTIM]["message"]
    assert "row 6" in failed[VICTIM]["message"]  # the duplicate's own row in the sheet
    assert shard_records(out) == shard_records(clean_out)
    assert (summary.ok, summary.failed) == (4, 1)


def test_an_empty_clip_folder_rejects_only_its_clip(raw, clean_out, tmp_path):
    folder = clip_folder(raw, VICTIM)
    for path in folder.iterdir():
        path.unlink()
    out = tmp_path / "out"
    prep(raw, out)
    failure = assert_only_these_failed(out, clean_out, {VICTIM: "adapter"})[VICTIM]
    assert str(folder) in failure["message"] and "it holds 0 images" in failure["message"]


def test_two_frames_with_one_number_reject_only_their_clip(raw, clean_out, tmp_path):
    """img46.jpg next to img046.jpg: the frame numbers are ambiguous, so the clip is rejected."""
    folder = clip_folder(raw, VICTIM)
    first = min(folder.glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
    shutil.copy(first, folder / f"img0{first.stem[3:]}.jpg")
    out = tmp_path / "out"
    prep(raw, out)
    failure = assert_only_these_failed(out, clean_out, {VICTIM: "adapter"})[VICTIM]
    assert first.name in failure["message"] and "remove the duplicate file" in failure["message"]


# ---------------------------------------------------------------------------------------------
# path names


def test_unicode_and_spaces_in_every_path(raw, clean_out, tmp_path, capsys):
    """RAW, OUT and a clip folder with spaces and non-ASCII letters: all clips land, ids kept verbatim."""
    odd_raw = tmp_path / "données brutes" / "CASME II 被试"
    odd_raw.parent.mkdir()
    raw.rename(odd_raw)
    clip = "EP01 ü_2"
    clip_folder(odd_raw, VICTIM).rename(clip_folder(odd_raw, VICTIM).with_name(clip))
    edit_sheet(odd_raw, lambda rows: [[clip if c == "EP01_2" else c for c in row] for row in rows])
    out = tmp_path / "sortie à 1 €" / "out put"
    code, stdout, err = run_cli(capsys, "casme2", odd_raw, out, *CLI_OPTIONS)
    assert code == 0, err
    assert f"-> {out}" in stdout
    assert verify_shards(out) == []
    ids = sorted(open_shards(out).meta["sample_id"])
    assert f"casme2/sub18/{clip}" in ids and len(ids) == 4
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["counts"] == {"ok": 4, "failed": 0}
    reference = shard_records(clean_out)
    landed = shard_records(out)
    assert {k: v for k, v in landed.items() if "ü" not in k} == {k: v for k, v in reference.items() if k != VICTIM}

