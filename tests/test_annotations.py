"""Annotation helpers: cell types, header detection, frame checks, fixes as data."""
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings, strategies as st

from mer_pipeline.annotations import (Fix, apply_fixes, as_int, as_text, check_frames, find_header, read_table,
                                      rows_as_dicts)
from mer_pipeline.errors import AnnotationError



def test_as_int_accepts_only_integral_values():
    assert as_int(46) == 46
    assert as_int(46.0) == 46
    assert as_int("46") == 46
    assert as_int(" 3647 ") == 3647
    assert as_int("/") is None
    assert as_int(3.5) is None
    assert as_int(None) is None
    assert as_int(float("nan")) is None


def test_as_text_drops_float_suffix():
    assert as_text(12.0) == "12"
    assert as_text("4+7+L10") == "4+7+L10"
    assert as_text(None) == ""


def test_header_found_below_a_notes_block(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    for line in range(13):
        sheet.append([f"note {line}"])
    sheet.append(["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame"])
    sheet.append(["006", "006_1_2", 5562, 5588, 5632])
    book.save(tmp_path / "s.xlsx")
    table = read_table(tmp_path / "s.xlsx")
    header = find_header(table, ["Subject", "Onset Frame"], tmp_path / "s.xlsx")
    assert header == 13
    rows = rows_as_dicts(table, header)
    assert rows[0]["Subject"] == "006" and rows[0]["Onset Frame"] == 5562 and rows[0]["_row"] == 15


def test_missing_header_names_the_file(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(AnnotationError, match="a.csv"):
        find_header(read_table(tmp_path / "a.csv"), ["Subject"], tmp_path / "a.csv")


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        read_table(tmp_path / "none.xlsx")
    (tmp_path / "a.pdf").write_text("x")
    with pytest.raises(AnnotationError, match="unsupported"):
        read_table(tmp_path / "a.pdf")
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    with pytest.raises(AnnotationError, match="broken.xlsx"):
        read_table(tmp_path / "broken.xlsx")


def test_check_frames_quirks():
    assert check_frames(46, 59, 86)[:2] == (59, 86)
    assert check_frames(261, None, 321)[0] is None  # the '/' apex
    apex, offset, notes = check_frames(1071, 1143, 1134)  # SAMM 028_4_1: apex after offset
    assert apex is None and "outside" in notes[0]
    assert check_frames(69, 69, 123)[0] == 69  # apex == onset is valid
    assert check_frames(100, 150, 0)[:2] == (150, 150)  # offset 0: replaced by apex
    with pytest.raises(AnnotationError):
        check_frames(100, None, 50)
    with pytest.raises(AnnotationError):
        check_frames(None, 3, 5)


def _rows():
    return [{"Subject": "12", "Filename": "EP09_06", "OffsetFrame": 106, "_row": 5}]


def test_fix_applies_when_old_matches():
    rows = _rows()
    notes = apply_fixes(rows, [Fix("12", "EP09_06", "OffsetFrame", "106", "111", "typo")], ("Subject", "Filename"), Path("s"))
    assert rows[0]["OffsetFrame"] == "111" and "106 -> 111" in notes[0]


def test_fix_refuses_a_mismatching_old_value():
    rows = _rows()
    rows[0]["OffsetFrame"] = 107
    notes = apply_fixes(rows, [Fix("12", "EP09_06", "OffsetFrame", "106", "111", "typo")], ("Subject", "Filename"), Path("s"))
    assert rows[0]["OffsetFrame"] == 107  # not applied
    assert "refused" in notes[0]
    assert "expects OffsetFrame = '106'" in rows[0]["_refused"] and "'107'" in rows[0]["_refused"]


def test_refused_fix_fails_only_that_sample(tmp_path):
    """A copy of the CASME II sheet whose sub12/EP09_06 differs from the fix's `old`: that row is
    reported, every other row still becomes a sample."""
    import cv2
    import numpy as np

    from mer_pipeline.datasets import get_adapter

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
                  "Estimated Emotion"])
    sheet.append(["12", "EP09_06", None, 10, 12, 194, None, "12", "happiness"])
    sheet.append(["12", "EP09_07", None, 10, 12, 14, None, "12", "happiness"])
    book.save(tmp_path / "CASME2-coding-20190701.xlsx")
    for clip in ("EP09_06", "EP09_07"):
        folder = tmp_path / "CASME2_RAW_selected" / "sub12" / clip
        folder.mkdir(parents=True)
        for n in range(10, 15):
            cv2.imwrite(str(folder / f"img{n}.jpg"), np.zeros((8, 8), np.uint8))
    result = get_adapter("casme2").scan(tmp_path)
    assert [s.sample_id for s in result.samples] == ["casme2/sub12/EP09_07"]
    assert [f.sample_id for f in result.failures] == ["casme2/sub12/EP09_06"]
    message = result.failures[0].message
    assert message.startswith("CASME2-coding-20190701.xlsx row 2: ") and "check the row by hand" in message


def test_fix_already_corrected_is_skipped():
    rows = _rows()
    rows[0]["OffsetFrame"] = 111
    notes = apply_fixes(rows, [Fix("12", "EP09_06", "OffsetFrame", "106", "111", "typo")], ("Subject", "Filename"), Path("s"))
    assert rows[0]["OffsetFrame"] == 111 and "already" in notes[0]


cells = st.one_of(st.none(), st.integers(-10**9, 10**9), st.floats(allow_nan=True), st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(onset=cells, apex=cells, offset=cells)
def test_check_frames_raises_only_annotation_errors(onset, apex, offset):
    try:
        check_frames(as_int(onset), as_int(apex), as_int(offset))
    except AnnotationError:
        pass


def test_real_casme2_sheet_cell_types(reference_annotations):
    table = read_table(reference_annotations / "CASME2-coding-20190701.xlsx")
    rows = rows_as_dicts(table, find_header(table, ["Subject", "Filename", "OnsetFrame"], Path("x")))
    assert len(rows) == 255
    assert rows[0]["Subject"] == "01" and rows[0]["OnsetFrame"] == 46
    assert sum(as_int(r["ApexFrame"]) is None for r in rows) == 1
