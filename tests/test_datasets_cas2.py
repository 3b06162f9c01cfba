"""CAS(ME)^2 adapter on a hand-made rawpic tree and workbook; quirks of datasets.md section 5."""
from pathlib import Path

import openpyxl
import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.datasets.cas2 import parse_naming_rule1, parse_naming_rule2, parse_table
from mer_pipeline.errors import AnnotationError

CODES = [  # headerless, no column names: the first row is data
    [1, "disgust1_1", 10, 14, 18, "4+7", "negative", "micro-expression", "disgusted"],
    [1, "disgust1_2", 30, 36, 0, "12", "positive", "micro-expression", "happyiness"],  # offset 0
    [1, "anger1_1", 5, 12, 40, "4", "negative", "macro-expression", "angry"],
    [2, "happy2_1", 3, 0, 9, "12", "positive", "micro-expression", None],  # apex 0
    [1, "sad9_1", 3, 4, 5, "1", "negative", "micro-expression", None],  # stimulus unknown to naming rule2
]
RULE1 = [[15, "s15", 1], [23, "s23", 2]]
RULE2 = [[101, "disgust1"], [401, "anger1"], [502, "happy2"]]


def write_workbook(path: Path, codes=CODES, rule1=RULE1, rule2=RULE2):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in (("CASFEcode_final", codes), ("naming rule1", rule1), ("naming rule2", rule2)):
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def write_video(root: Path, subject: str, name: str, count: int):
    folder = root / subject / name
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, count + 1):
        (folder / f"img{n:03d}.jpg").write_bytes(b"")


@pytest.fixture
def cas2_raw(tmp_path):
    raw = tmp_path / "CAS(ME)^2"
    write_video(raw / "rawpic", "s15", "15_0101disgustingteeth", 60)
    write_video(raw / "rawpic", "s15", "15_0401girlcrashing", 50)
    write_video(raw / "rawpic", "s19", "23_0502funnyerrors", 12)  # subject 23's video in s19
    write_workbook(raw / "CAS(ME)^2code_final.xlsx")
    return raw


def test_micro_expressions_parse_back(cas2_raw):
    result = get_adapter("cas2").scan(cas2_raw)
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["cas2/s15/disgust1_1", "cas2/s15/disgust1_2", "cas2/s23/happy2_1"]
    sample = by_id["cas2/s15/disgust1_1"]
    assert (sample.onset, sample.apex, sample.offset, sample.fps, sample.kind) == (10, 14, 18, 30.0, "micro")
    assert sorted(sample.frames) == list(range(10, 19)) and sample.frames[10].name == "img010.jpg"
    assert sample.emotion == "negative" and sample.extra["self_report"] == "disgusted"


def test_offset_zero_uses_the_apex(cas2_raw):
    sample = {s.sample_id: s for s in get_adapter("cas2").scan(cas2_raw).samples}["cas2/s15/disgust1_2"]
    assert (sample.onset, sample.apex, sample.offset) == (30, 36, 36)
    assert any("offset 0" in n for n in sample.notes)


def test_apex_zero_is_spotted_and_misplaced_video_found_by_prefix(cas2_raw):
    sample = {s.sample_id: s for s in get_adapter("cas2").scan(cas2_raw).samples}["cas2/s23/happy2_1"]
    assert sample.apex is None
    assert sample.frames[3].parent.name == "23_0502funnyerrors"
    assert any("s19/23_0502funnyerrors" in n for n in sample.notes)


def test_unknown_stimulus_is_a_failure(cas2_raw):
    (failure,) = get_adapter("cas2").scan(cas2_raw).failures
    assert failure.sample_id == "cas2/s15/sad9_1" and "naming rule2" in failure.message


def test_macro_flag_takes_the_macro_expressions(cas2_raw):
    (sample,) = get_adapter("cas2").scan(cas2_raw, macro=True).samples
    assert (sample.sample_id, sample.kind) == ("cas2/s15/anger1_1", "macro")
    assert sample.frames[5].parent.name == "15_0401girlcrashing"


def test_naming_rules_are_headerless_and_padded():
    assert parse_naming_rule2(RULE2) == {"disgust1": "0101", "anger1": "0401", "happy2": "0502"}
    assert parse_naming_rule1(RULE1) == {1: 15, 2: 23}
    assert parse_naming_rule1([[None, 15, 1]]) == {1: 15}


def test_a_header_row_if_present_is_skipped(tmp_path):
    header = ["subject", "clip", "onset", "apex", "offset", "au", "emotion", "type", "self"]
    labels = parse_table([header] + CODES[:1], tmp_path / "c.xlsx", {1: 15}, {"disgust1": "0101"})
    assert [(l.subject, l.clip) for l in labels] == [("s15", "disgust1_1")]


def test_workbook_without_naming_rules_is_refused(tmp_path):
    book = openpyxl.Workbook()
    book.active.append(CODES[0])
    book.save(tmp_path / "code_final.xlsx")
    (tmp_path / "rawpic" / "s15").mkdir(parents=True)
    with pytest.raises(AnnotationError, match="naming rule1"):
        get_adapter("cas2").scan(tmp_path)
