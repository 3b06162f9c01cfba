"""MMEW adapter on hand-made trees of both variants (with and without the subject level); datasets.md 7."""
from pathlib import Path

import openpyxl
import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.errors import DatasetLayoutError

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion", "remarks"]
ROWS = [
    [1, "S01-01-001", 1, 8, 15, "12L", "happiness", None],
    [1, "S01-04-002", 1, 5, 10, "4R+7", "others", "looks down"],  # the folder says repression
    [3, "S03-02-001", 1, 4, 9, "1+2", "surprise", None],
]


def write_sheet(path: Path, rows=ROWS):
    book = openpyxl.Workbook()
    for row in [HEADER] + rows:
        book.active.append(row)
    book.save(path)
    return path


def write_clip(emotion_dir: Path, clip: str, count: int):
    folder = emotion_dir / clip
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        (folder / f"{n}.jpg").write_bytes(b"")


def make_tree(raw: Path, subject_level: bool):
    micro = raw / "MMEW_Final" / "Micro_Expression"
    where = (lambda s, e: micro / s / e) if subject_level else (lambda s, e: micro / e)
    write_clip(where("S01", "happiness"), "S01-01-001", 15)
    write_clip(where("S01", "repression"), "S01-04-002", 10)
    write_clip(where("S03", "surprise"), "S03-02-001", 9)
    macro = raw / "MMEW_Final" / "Macro_Expression" / "happiness"  # single images: never samples
    macro.mkdir(parents=True)
    (macro / "S01-01-001.jpg").write_bytes(b"")
    write_sheet(raw / "MMEW_Micro_Exp.xlsx")
    return raw


@pytest.mark.parametrize("subject_level", [True, False], ids=["with-subject-level", "without-subject-level"])
def test_both_tree_variants_parse_back(tmp_path, subject_level):
    result = get_adapter("mmew").scan(make_tree(tmp_path / "MMEW", subject_level))
    assert not result.failures
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["mmew/S01/S01-01-001", "mmew/S01/S01-04-002", "mmew/S03/S03-02-001"]
    sample = by_id["mmew/S01/S01-01-001"]
    assert (sample.onset, sample.apex, sample.offset, sample.fps) == (1, 8, 15, 90.0)
    assert sorted(sample.frames) == list(range(1, 16))  # clip-relative numbering, OnsetFrame = 1
    assert sample.action_units == "12L" and sample.emotion == "happiness"


def test_sheet_emotion_kept_and_folder_disagreement_noted(tmp_path):
    sample = {s.sample_id: s for s in get_adapter("mmew").scan(make_tree(tmp_path, True)).samples}["mmew/S01/S01-04-002"]
    assert sample.emotion == "others" and sample.extra["folder_emotion"] == "repression"
    assert any("'repression'" in n for n in sample.notes)
    assert sample.extra["remarks"] == "looks down"


def test_rows_without_folders_and_folders_without_rows_are_reported(tmp_path):
    raw = make_tree(tmp_path, False)
    sheet = write_sheet(tmp_path / "other.xlsx", ROWS[:1] + [[9, "S09-01-001", 1, 2, 3, "12", "happiness", None]])
    result = get_adapter("mmew").scan(raw, sheet)
    messages = {f.sample_id: f.message for f in result.failures}
    assert "no clip folder S09-01-001" in messages["mmew/S09/S09-01-001"]
    assert "has no row" in messages["mmew/S01/S01-04-002"]


def test_bad_filename_is_a_failure(tmp_path):
    raw = make_tree(tmp_path, False)
    sheet = write_sheet(tmp_path / "bad.xlsx", [[1, "clip one", 1, 2, 3, "12", "happiness", None]])
    failures = {f.sample_id: f for f in get_adapter("mmew").scan(raw, sheet).failures}
    assert "not an MMEW clip name" in failures["mmew/S01/clip one"].message


def test_no_clip_folders_says_what_was_expected(tmp_path):
    write_sheet(tmp_path / "MMEW_Micro_Exp.xlsx")
    with pytest.raises(DatasetLayoutError, match="S01/happiness/S01-01-001/1.jpg"):
        get_adapter("mmew").scan(tmp_path)
