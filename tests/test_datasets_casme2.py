"""CASME II adapter on small hand-made trees in the real layouts (CASME2_RAW_selected, CASME2-RAW,
Cropped); one test per quirk of datasets.md section 2, the failures it reports, and the real sheet."""
from pathlib import Path

import openpyxl
import pytest

from mer_pipeline.datasets import casme2, get_adapter
from mer_pipeline.errors import AnnotationError, DatasetLayoutError

SHEET_2019 = "CASME2-coding-20190701.xlsx"
SHEET_2014 = "CASME2-coding-20140508.xlsx"
HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
          "Estimated Emotion", "Objective Classes"]


def row(subject, clip, onset, apex, offset, au="12", emotion="happiness"):
    """A sheet row as the real file has it: blank columns C and G."""
    return [subject, clip, None, onset, apex, offset, None, au, emotion, 1]


def write_sheet(path: Path, rows, header=HEADER) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for line in [header] + rows:
        sheet.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_clip(tree: Path, subject: str, clip: str, numbers, prefix="img") -> Path:
    folder = tree / subject / clip
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"{prefix}{n}.jpg").touch()  # the adapter lists names; frames are read later
    return folder


# Three clips of the real set, frames numbered as in the release (img46.jpg ... img86.jpg).
SELECTED = {("sub01", "EP02_01f"): range(46, 87), ("sub04", "EP12_01f"): range(261, 322),
            ("sub05", "EP09_05f"): range(69, 124)}


@pytest.fixture
def selected(tmp_path):
    """CASME2_RAW_selected with absolute frame numbers and the 2019 sheet."""
    raw = tmp_path / "CASME2"
    for (subject, clip), numbers in SELECTED.items():
        write_clip(raw / "CASME2_RAW_selected", subject, clip, numbers)
    write_sheet(raw / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86),
                                   row("04", "EP12_01f", 261, "/", 321, "4+7", "disgust"),
                                   row("05", "EP09_05f", 69, 69, 123, "R12", "happiness")])
    return raw


def scan(raw, **kw):
    return get_adapter("casme2").scan(raw, **kw)


def by_id(result):
    return {s.sample_id: s for s in result.samples}, {f.sample_id: f for f in result.failures}


# ---- layouts --------------------------------------------------------------------------------------

def test_selected_tree_gives_canonical_samples(selected):
    samples, failures = by_id(scan(selected))
    assert not failures
    sample = samples["casme2/sub01/EP02_01f"]
    assert (sample.subject, sample.clip, sample.onset, sample.apex, sample.offset) == ("sub01", "EP02_01f", 46, 59, 86)
    assert (sample.emotion, sample.action_units, sample.fps, sample.kind) == ("happiness", "12", 200.0, "micro")
    assert sorted(sample.frames) == list(range(46, 87))
    assert sample.frames[46].name == "img46.jpg"


def test_raw_tree_whole_clips_keep_only_onset_to_offset(tmp_path):
    """CASME2-RAW holds the whole clip from img1; frames are chosen by number, as for every dataset."""
    raw = tmp_path / "CASME2"
    write_clip(raw / "CASME2-RAW", "sub01", "EP02_01f", range(1, 121))
    write_sheet(raw / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)])
    (sample,) = scan(raw).samples
    assert sorted(sample.frames) == list(range(46, 87))


@pytest.mark.parametrize("tree", ["Cropped", "Cropped-updated/Cropped", "Cropped_original", "CASME2_RAW"])
def test_cropped_and_other_trees_are_found(tmp_path, tree):
    raw = tmp_path / "download"
    prefix = "reg_img" if "Cropped" in tree else "img"
    write_clip(raw / tree, "sub01", "EP02_01f", range(46, 87), prefix=prefix)
    write_sheet(raw / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)])
    (sample,) = scan(raw).samples
    assert sorted(sample.frames) == list(range(46, 87)) and sample.frames[59].name == f"{prefix}59.jpg"


def test_raw_may_be_the_tree_itself_or_hold_a_casme2_folder(tmp_path):
    tree = tmp_path / "a" / "CASME2" / "CASME2_RAW_selected"
    write_clip(tree, "sub01", "EP02_01f", range(46, 87))
    sheet = write_sheet(tmp_path / "a" / "CASME2" / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)])
    assert [s.sample_id for s in scan(tmp_path / "a").samples] == ["casme2/sub01/EP02_01f"]  # RAW/CASME2/<tree>
    assert [s.sample_id for s in scan(tree, annotations=sheet).samples] == ["casme2/sub01/EP02_01f"]


def test_the_selected_tree_wins_over_cropped(tmp_path):
    raw = tmp_path / "CASME2"
    write_clip(raw / "Cropped", "sub01", "EP02_01f", range(46, 87), prefix="reg_img")
    write_clip(raw / "CASME2_RAW_selected", "sub01", "EP02_01f", range(46, 87))
    write_sheet(raw / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)])
    (sample,) = scan(raw).samples
    assert sample.frames[46].parent.parent.parent.name == "CASME2_RAW_selected"


def test_the_2019_coding_wins_over_2014(tmp_path):
    raw = tmp_path / "CASME2"
    write_clip(raw / "CASME2_RAW_selected", "sub24", "EP07_01", range(10, 30))
    write_sheet(raw / SHEET_2014, [row("24", "EP07_01", 10, 15, 29, emotion="sadness")])
    write_sheet(raw / SHEET_2019, [row("24", "EP07_01", 10, 15, 29, emotion="surprise")])  # relabelled in 2019
    assert [s.emotion for s in scan(raw).samples] == ["surprise"]
    assert [s.emotion for s in scan(raw, annotations=raw / SHEET_2014).samples] == ["sadness"]


# ---- quirks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("subject", ["01", 1, 1.0, "sub01", "1"])
def test_subject_as_text_int_or_folder_name(tmp_path, subject):
    raw = tmp_path / "CASME2"
    write_clip(raw / "CASME2_RAW_selected", "sub01", "EP02_01f", range(46, 87))
    write_sheet(raw / SHEET_2019, [row(subject, "EP02_01f", 46, 59, 86)])
    assert [s.sample_id for s in scan(raw).samples] == ["casme2/sub01/EP02_01f"]


def test_slash_apex_is_spotted_and_apex_at_onset_is_kept(selected):
    samples, _ = by_id(scan(selected))
    assert samples["casme2/sub04/EP12_01f"].apex is None  # '/' in both codings: the pipeline spots it
    assert any("spotted" in note for note in samples["casme2/sub04/EP12_01f"].notes)
    assert samples["casme2/sub05/EP09_05f"].apex == 69 == samples["casme2/sub05/EP09_05f"].onset
    assert samples["casme2/sub05/EP09_05f"].action_units == "R12"


def test_2014_offset_before_apex_is_fixed_from_the_2019_coding(tmp_path):
    raw = tmp_path / "CASME2"
    write_clip(raw / "CASME2_RAW_selected", "sub12", "EP09_06", range(60, 115))
    write_sheet(raw / SHEET_2014, [row("12", "EP09_06", 65, 111, 106, emotion="others")])
    (sample,) = scan(raw).samples
    assert (sample.onset, sample.apex, sample.offset) == (65, 111, 111)
    assert any("OffsetFrame 106 -> 111" in note for note in sample.notes)


def test_a_sheet_the_fix_does_not_fit_rejects_that_row_only(tmp_path):
    raw = tmp_path / "CASME2"
    write_clip(raw / "CASME2_RAW_selected", "sub12", "EP09_06", range(60, 115))
    write_clip(raw / "CASME2_RAW_selected", "sub12", "EP09_07", range(60, 115))
    write_sheet(raw / SHEET_2019, [row("12", "EP09_06", 65, 111, 107), row("12", "EP09_07", 65, 70, 80)])
    samples, failures = by_id(scan(raw))
    assert list(samples) == ["casme2/sub12/EP09_07"]
    message = failures["casme2/sub12/EP09_06"].message
    assert message.startswith(f"{SHEET_2019} row 2: ") and "check the row by hand" in message
    assert "casme2/sub12/EP09_06" not in {f.sample_id for f in failures.values() if "no row" in f.message}


def test_irregular_folder_names_are_kept_verbatim(tmp_path):
    raw = tmp_path / "CASME2"
    for clip in ("EP01_2", "EP06_02_01", "EP09f"):
        write_clip(raw / "CASME2_RAW_selected", "sub07", clip, range(5, 20))
    write_sheet(raw / SHEET_2019, [row("07", clip, 5, 9, 19) for clip in ("EP01_2", "EP06_02_01", "EP09f")])
    assert sorted(s.clip for s in scan(raw).samples) == ["EP01_2", "EP06_02_01", "EP09f"]


def test_folders_without_rows_and_rows_without_folders_are_reported(selected):
    write_clip(selected / "CASME2_RAW_selected", "sub09", "EP02_02f", range(1, 30))  # no row (as in the release)
    write_sheet(selected / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86), row("24", "EP02_07", 1, 5, 9)])
    result = scan(selected)
    samples, failures = by_id(result)
    assert list(samples) == ["casme2/sub01/EP02_01f"]
    assert failures["casme2/sub24/EP02_07"].error == "DatasetLayoutError"
    assert "row 3: no frame folder" in failures["casme2/sub24/EP02_07"].message
    assert "is the download complete?" in failures["casme2/sub24/EP02_07"].message
    unlabelled = {sid for sid, f in failures.items() if "folder has no row in " + SHEET_2019 in f.message}
    assert unlabelled == {"casme2/sub09/EP02_02f", "casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f"}


def test_non_image_files_are_ignored(selected):
    tree = selected / "CASME2_RAW_selected"
    (tree / "sub01" / "Desktop - Shortcut.lnk").write_bytes(b"L\x00\x00\x00")
    (tree / "sub01" / "EP02_01f" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (tree / "sub01" / "EP02_01f" / ".DS_Store").write_bytes(b"")
    samples, failures = by_id(scan(selected))
    assert not failures and sorted(samples["casme2/sub01/EP02_01f"].frames) == list(range(46, 87))


def test_a_missing_frame_inside_the_clip_is_noted(tmp_path):
    raw = tmp_path / "CASME2"
    write_clip(raw / "CASME2_RAW_selected", "sub01", "EP02_01f", [n for n in range(46, 87) if n != 50])
    write_sheet(raw / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)])
    (sample,) = scan(raw).samples
    assert 50 not in sample.frames and any("1 of 41 frames 46..86 missing" in note for note in sample.notes)


# ---- rows that are rejected -----------------------------------------------------------------------

def test_a_duplicate_row_is_reported_with_its_row_and_the_first_kept(selected):
    rows = [row("01", "EP02_01f", 46, 59, 86), row("1", "ep02_01F", 50, 55, 60, emotion="others")]
    write_sheet(selected / SHEET_2019, rows)
    samples, failures = by_id(scan(selected))
    assert samples["casme2/sub01/EP02_01f"].emotion == "happiness"
    failure = failures["casme2/sub01/ep02_01F"]
    assert failure.message == f"{SHEET_2019} row 3: duplicate row for sub01/ep02_01F; kept the first"


def test_a_subject_that_is_no_number_rejects_its_row(selected):
    write_sheet(selected / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86), row("x", "EP03_02", 1, 2, 3)])
    _, failures = by_id(scan(selected))
    assert failures["casme2/?/EP03_02"].message == f"{SHEET_2019} row 3: Subject 'x' is not a subject number"


@pytest.mark.parametrize("onset, apex, offset, words", [
    (500, 510, 520, "has no frames numbered 500..520 (it holds 41 images, numbered 46..86); check the row, or is "
                    "the download complete?"),
    ("12a", 59, 86, "onset or offset is not an integer frame number"),
    (86, "/", 46, "offset 46 lies before onset 86 and no apex after onset is given"),
    (46, 59, 46 + 13000, "lasts 65 s, far longer than any micro-expression"),  # 200 fps: the duration guard
])
def test_a_row_with_unusable_frames_rejects_only_its_clip(selected, onset, apex, offset, words):
    write_sheet(selected / SHEET_2019, [row("01", "EP02_01f", onset, apex, offset),
                                        row("05", "EP09_05f", 69, 69, 123)])
    samples, failures = by_id(scan(selected))
    assert list(samples) == ["casme2/sub05/EP09_05f"]
    message = failures["casme2/sub01/EP02_01f"].message
    assert message.startswith(f"{SHEET_2019} row 2: ") and words in message, message


def test_no_frame_tree_names_the_layouts_it_looked_for(tmp_path):
    write_sheet(tmp_path / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)])
    with pytest.raises(DatasetLayoutError, match="no CASME II frame tree found.*CASME2_RAW_selected, CASME2-RAW"):
        scan(tmp_path)


def test_no_sheet_says_how_to_pass_one(tmp_path):
    write_clip(tmp_path / "CASME2_RAW_selected", "sub01", "EP02_01f", range(46, 87))
    with pytest.raises(AnnotationError, match="no CASME II coding sheet found.*--annotations FILE"):
        scan(tmp_path)


def test_a_sheet_without_the_columns_is_refused_naming_them(selected):
    write_sheet(selected / SHEET_2019, [row("01", "EP02_01f", 46, 59, 86)],
                header=["Subject", "Filename", None, "Onset", "Apex", "Offset"])
    with pytest.raises(AnnotationError, match="OnsetFrame"):
        scan(selected)


# ---- the real sheet -------------------------------------------------------------------------------

def test_the_real_2019_coding_parses_to_255_labels_with_its_quirks(reference_annotations):
    labels = {(l.subject, l.clip): l for l in casme2.parse_sheet(reference_annotations / SHEET_2019)}
    assert len(labels) == 255 and not any(l.error for l in labels.values())
    assert len({l.subject for l in labels.values()}) == 26
    assert labels["sub04", "EP12_01f"].apex is None  # '/'
    assert (labels["sub05", "EP09_05f"].onset, labels["sub05", "EP09_05f"].apex) == (69, 69)
    assert labels["sub12", "EP09_06"].offset == 111  # already corrected in 2019: the fix is skipped
    assert {"EP01_2", "EP08_1", "EP06_02_01", "EP06_02_02", "EP09f"} <= {l.clip for l in labels.values()}
    assert labels["sub01", "EP02_01f"].where == f"{SHEET_2019} row 2"
