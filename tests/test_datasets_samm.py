"""SAMM adapter on small hand-made trees in the real layout; one test per quirk of datasets.md section 3."""
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.datasets.samm import parse_table
from mer_pipeline.errors import AnnotationError, DatasetLayoutError
from mer_pipeline.frames import read_grey

HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
          "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
NOTES_BLOCK = [["SAMM Dataset - Master FACS Codes"], [None], ["Symbol Key:"], ['"/" = or']] + [[None]] * 9
ROWS = [
    ["006", "006_1_2", 1, 5562, 5564, 5566, 5, "Micro - 1/2", "4+7", "Anger", 3, None],
    ["006", "006_1_3", 1, 3912, 3914, 3916, 5, "Micro - 1/2", "(R6 or R12)+R15", "Happiness", 1, "While blinking"],
    ["028", "028_4_1", 4, 1071, 1143, 1074, 4, "Micro - 1/2", "A14C", "Contempt", 7, "Blinks"],
]


def write_sheet(path: Path, rows, notes_block=True, header=HEADER):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "MICRO_ONLY"
    for line in (NOTES_BLOCK if notes_block else []) + [header] + rows:
        sheet.append(line)
    book.save(path)
    return path


def write_clip(root: Path, subject: str, clip: str, numbers, width=5, grey=False):
    folder = root / subject / clip
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        path = folder / f"{subject}_{n:0{width}d}.jpg"
        if grey:
            cv2.imwrite(str(path), np.full((8, 8), 100, np.uint8))
        else:
            path.write_bytes(b"")
    return folder


@pytest.fixture
def samm_tree(tmp_path):
    raw = tmp_path / "SAMM_download"
    tree = raw / "SAMM"
    write_clip(tree, "006", "006_1_2", range(5562, 5567))
    write_clip(tree, "006", "006_1_3", range(3912, 3917), width=4)  # padding varies
    write_clip(tree, "028", "028_4_1", range(1071, 1075), width=6)
    write_sheet(raw / "SAMM_Micro_FACS_Codes_v2.xlsx", ROWS)
    return raw


def scan(raw, **kw):
    return get_adapter("samm").scan(raw, **kw)


def test_parses_back_with_ids_and_fields(samm_tree):
    result = scan(samm_tree)
    assert not result.failures
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["samm/006/006_1_2", "samm/006/006_1_3", "samm/028/028_4_1"]
    sample = by_id["samm/006/006_1_2"]
    assert (sample.onset, sample.apex, sample.offset, sample.fps, sample.kind) == (5562, 5564, 5566, 200.0, "micro")
    assert sample.frames == {n: samm_tree / "SAMM" / "006" / "006_1_2" / f"006_{n:05d}.jpg" for n in range(5562, 5567)}
    assert sample.emotion == "Anger"  # Title-case kept as written
    assert sample.extra["objective_class"] == "3"


def test_zero_padding_that_varies_is_parsed(samm_tree):
    by_id = {s.sample_id: s for s in scan(samm_tree).samples}
    assert sorted(by_id["samm/006/006_1_3"].frames) == list(range(3912, 3917))
    assert sorted(by_id["samm/028/028_4_1"].frames) == list(range(1071, 1075))


def test_apex_outside_span_is_spotted_not_guessed(samm_tree):
    by_id = {s.sample_id: s for s in scan(samm_tree).samples}
    sample = by_id["samm/028/028_4_1"]  # apex 1143 after offset 1074, as in the real sheet
    assert sample.apex is None
    assert any("outside" in n for n in sample.notes)
    assert by_id["samm/006/006_1_3"].apex == 3914


def test_au_strings_with_or_and_letters_kept_as_text(samm_tree):
    by_id = {s.sample_id: s for s in scan(samm_tree).samples}
    assert by_id["samm/006/006_1_3"].action_units == "(R6 or R12)+R15"
    assert by_id["samm/028/028_4_1"].action_units == "A14C"


def test_header_found_without_the_notes_block_and_other_spellings(tmp_path):
    header = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
              "Action Units", "Emotion", "Classes", "Notes"]
    table = [header] + ROWS
    labels = parse_table(table, tmp_path / "SAMM_20181215_Micro_FACS_Codes_v2.xlsx")
    assert [(l.subject, l.clip, l.onset, l.emotion) for l in labels][0] == ("006", "006_1_2", 5562, "Anger")
    noted = parse_table([[c] for c in ("title", None)] + [HEADER] + ROWS, tmp_path / "x.xlsx")
    assert len(noted) == len(labels) == 3


def test_unpadded_int_subjects_match_three_digit_folders(samm_tree, tmp_path):
    rows = [[6, "006_1_2", 1, 5562, 5564, 5566, 5, "Micro - 1/2", 4, "Anger", 3, None]]
    sheet = write_sheet(tmp_path / "ints.xlsx", rows, notes_block=False)
    result = scan(samm_tree, annotations=sheet)
    assert [s.sample_id for s in result.samples] == ["samm/006/006_1_2"]
    assert result.samples[0].action_units == "4"
    # the two folders without a row are reported, not silently dropped
    assert sorted(f.sample_id for f in result.failures) == ["samm/006/006_1_3", "samm/028/028_4_1"]


def test_grey_frames_are_read(tmp_path):
    folder = write_clip(tmp_path / "SAMM", "006", "006_1_2", [5562], grey=True)
    image = read_grey(folder / "006_05562.jpg")
    assert image.shape == (8, 8) and image.dtype == np.uint8


def test_missing_folder_and_bad_subject_are_failures_naming_the_row(samm_tree, tmp_path):
    rows = ROWS[:1] + [["009", "009_3_1", 3, 10, 12, 14, 5, "Micro - 1/2", 4, "Fear", 6, None],
                       ["abc", "abc_1_1", 1, 10, 12, 14, 5, "Micro - 1/2", 4, "Fear", 6, None]]
    result = scan(samm_tree, annotations=write_sheet(tmp_path / "s.xlsx", rows))
    messages = {f.sample_id: f.message for f in result.failures}
    assert "no frame folder" in messages["samm/009/009_3_1"] and "row 16" in messages["samm/009/009_3_1"]
    assert "is not a subject number" in messages["samm/abc/abc_1_1"]


def test_raw_without_a_tree_says_where_to_point(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="Point RAW at the SAMM download folder"):
        scan(tmp_path / "empty")


def test_sheet_without_header_is_an_annotation_error(tmp_path):
    with pytest.raises(AnnotationError, match="no header row"):
        parse_table([["a", "b"], [1, 2]], tmp_path / "x.xlsx")
