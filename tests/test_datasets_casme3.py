"""CAS(ME)^3 adapter on hand-made trees (Part A, its macro-expressions, Part C); quirks of datasets.md 6."""
from pathlib import Path

import openpyxl
import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.datasets.casme3 import parse_table, parse_table_c
from mer_pipeline.errors import AnnotationError

ME_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
MACRO_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"]
# All cells text, as in the real JpgIndex_v2 file.
ME_ROWS = [
    ["spNO.1", "a", "355", "359", "360", "5", "II", "others"],
    ["spNO.1", "a", "362", "364", "366", "4", "III", "disgust"],  # second ME in the same video
    ["spNO.14", "J", "30", "33", "36", "12", "I", "happy"],  # capital J, folder j on disk
    ["spNO.2", "j", "7", "7", "12", "38", "VII", "Others"],  # apex == onset at the video start
    ["spNO.149", "d", "112", "83", "358", "T28+14", "VII", "fear"],  # apex before onset: fixed from the sibling file
    ["spNO.40", "e", "1812", "1824", "0", "18", "VII", "others"],  # offset 0: fixed from the sibling file
    ["spNO.214", "c", "5", "5", "3460", "17+4", "VII", "disgust"],  # 115 s: rejected
]


def write_book(path: Path, sheets: dict):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def write_video(root: Path, subject: str, letter: str, numbers):
    folder = root / subject / letter / "color"
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"{n}.jpg").write_bytes(b"")
    (root / subject / letter / "depth").mkdir(exist_ok=True)
    return folder


@pytest.fixture
def part_a(tmp_path):
    raw = tmp_path / "casme3"
    root = raw / "part_A" / "data" / "part_A_split" / "part_A"
    write_video(root, "spNO.1", "a", range(8, 400))
    write_video(root, "spNo.14", "j", range(8, 50))  # spNo on disk, spNO in the sheet
    write_video(root, "spNO.2", "j", range(8, 20))  # frames 1..7 lost
    write_video(root, "spNO.149", "d", range(100, 360))
    write_video(root, "spNO.40", "e", range(1800, 1850))
    write_video(root, "spNO.214", "c", range(8, 40))
    write_book(raw / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", {"label": [ME_HEADER] + ME_ROWS, "Sheet1": [[None]]})
    return raw


def scan(raw, annotations=None, **options):
    return get_adapter("casme3").scan(raw, annotations, **options)


def test_part_a_parses_back_with_onset_in_the_id(part_a):
    result = scan(part_a)
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["casme3/spNO.1/a_355", "casme3/spNO.1/a_362", "casme3/spNO.14/j_30",
                             "casme3/spNO.149/d_112", "casme3/spNO.2/j_7", "casme3/spNO.40/e_1812"]
    sample = by_id["casme3/spNO.1/a_355"]
    assert (sample.onset, sample.apex, sample.offset, sample.fps, sample.emotion) == (355, 359, 360, 30.0, "others")
    assert sorted(sample.frames) == [355, 356, 357, 358, 359, 360]  # only onset..offset of the long video
    assert sample.frames[355].parts[-2:] == ("color", "355.jpg")


def test_case_of_folders_and_letters_is_ignored(part_a):
    by_id = {s.sample_id: s for s in scan(part_a).samples}
    assert by_id["casme3/spNO.14/j_30"].frames[30].parent.parent.name == "j"


def test_bad_rows_fixed_only_from_the_sibling_file(part_a):
    by_id = {s.sample_id: s for s in scan(part_a).samples}
    apex_fixed = by_id["casme3/spNO.149/d_112"]
    assert apex_fixed.apex == 160
    assert any("CAS(ME)3_part_A_v2.xls" in n for n in apex_fixed.notes)
    offset_fixed = by_id["casme3/spNO.40/e_1812"]
    assert (offset_fixed.apex, offset_fixed.offset) == (1824, 1845)


def test_apex_equal_to_onset_is_spotted_and_lost_frames_tolerated(part_a):
    sample = {s.sample_id: s for s in scan(part_a).samples}["casme3/spNO.2/j_7"]
    assert sample.apex is None and any("C3 issue #4" in n for n in sample.notes)
    assert min(sample.frames) == 8 and any("missing" in n for n in sample.notes)
    assert sample.emotion == "Others"  # as written


def test_absurdly_long_row_is_rejected_with_a_reason(part_a):
    failures = {f.sample_id: f for f in scan(part_a).failures}
    assert "far longer than any micro-expression" in failures["casme3/spNO.214/c_5"].message


def test_missing_video_is_a_failure_naming_the_row(part_a, tmp_path):
    rows = [ME_HEADER, ["spNO.99", "b", "10", "12", "14", "4", "III", "disgust"]]
    sheet = write_book(tmp_path / "s.xlsx", {"label": rows})
    (failure,) = scan(part_a, sheet).failures
    assert failure.sample_id == "casme3/spNO.99/b_10" and "s.xlsx row 2" in failure.message


def test_fix_against_a_different_copy_refuses(tmp_path):
    """The fix is refused (not applied) and only that row becomes an error naming the cause."""
    rows = [ME_HEADER, ["spNO.149", "d", "112", "99", "358", "T28+14", "VII", "fear"]]
    (label,) = parse_table(rows, tmp_path / "other_copy.xlsx")
    assert label.apex == 99
    assert label.error and "check the row by hand" in label.error


def write_xls(path: Path, sheets: dict):
    import xlwt

    book = xlwt.Workbook()
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                sheet.write(r, c, value)
    book.save(str(path))
    return path


def test_macro_expressions_from_the_au_emotion_sheet(part_a):
    rows = [MACRO_HEADER, ["spNO.1", "a", "37", "63", "65", "4+15+R10", "Macro-expression", "VII"],
            ["spNO.1", "a", "355", "359", "360", "5", "Micro-expression", "II"]]
    write_xls(part_a / "CAS(ME)3_part_A_v2.xls", {"AU+Emotion": rows, "eye blink": [["Subject"]]})
    (sample,) = scan(part_a, macro=True).samples  # the .xls is found in RAW
    assert (sample.sample_id, sample.kind, sample.apex) == ("casme3/spNO.1/a_37", "macro", 63)
    assert sample.emotion == "" and sample.extra["objective_class"] == "VII"


C_HEADER = ["sub", "count", "onset", "offset", "au", "emotion"]


def test_part_c_assumed_layouts_and_comma_aus(tmp_path):
    raw = tmp_path / "partC"
    for n in range(373, 386):
        (raw / "01" / "1" / "color").mkdir(parents=True, exist_ok=True)
        (raw / "01" / "1" / "color" / f"{n}.jpg").write_bytes(b"")
    (raw / "4" / "color").mkdir(parents=True)  # whole video per subject
    for n in range(13930, 13950):
        (raw / "4" / "color" / f"{n}.jpg").write_bytes(b"")
    rows = [C_HEADER, [1, 1, 373, 385, "R4,5", "negative"], [4, 11, 13939, 13948, "4，11", "negative"],
            [7, 3, 7497, 7508, "4,11,38", "negative"]]
    write_book(raw / "CAS(ME)3_part_C_ME.xlsx", {"mockCrimeME": rows})
    result = scan(raw, part="C")
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["casme3/C01/1", "casme3/C04/11"]
    assert by_id["casme3/C01/1"].apex is None and by_id["casme3/C01/1"].action_units == "R4+5"
    assert by_id["casme3/C04/11"].action_units == "4+11"
    (failure,) = result.failures
    assert failure.sample_id == "casme3/C07/3" and "undocumented" in failure.message


def test_part_c_parser_keeps_rows_and_flags_bad_ids(tmp_path):
    labels = parse_table_c([C_HEADER, ["x", 1, 5, 9, 4, "others"], [2, 1, 5, 9, "14,L24,", "others"]], tmp_path / "c.xlsx")
    assert labels[0].error and labels[1].action_units == "14+L24"
