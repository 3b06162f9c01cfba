"""CK+ adapter on a hand-made tree: labelled sequences only, peak frame as apex; datasets.md section 10."""
from pathlib import Path

import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.datasets.ckplus import read_emotion
from mer_pipeline.errors import AnnotationError, DatasetLayoutError


def write_sequence(raw: Path, subject: str, sequence: str, count: int, code: str | None):
    images = raw / "cohn-kanade-images" / subject / sequence
    images.mkdir(parents=True)
    for n in range(1, count + 1):
        (images / f"{subject}_{sequence}_{n:08d}.png").write_bytes(b"")
    (images / ".DS_Store").write_bytes(b"")
    if code is not None:
        labels = raw / "Emotion" / subject / sequence
        labels.mkdir(parents=True)
        (labels / f"{subject}_{sequence}_{count:08d}_emotion.txt").write_text(code)


@pytest.fixture
def ck_raw(tmp_path):
    raw = tmp_path / "CK+"
    write_sequence(raw, "S005", "001", 11, "   3.0000000e+00\n")
    write_sequence(raw, "S010", "002", 14, "7.0000000e+00")
    write_sequence(raw, "S010", "003", 9, None)  # no emotion file: skipped, not a failure
    return raw


def test_labelled_sequences_parse_back_as_macro(ck_raw, caplog):
    with caplog.at_level("INFO", logger="mer_pipeline.datasets.ckplus"):
        result = get_adapter("ckplus").scan(ck_raw)
    assert not result.failures  # S010/003 has no emotion file: skipped, counted in the log
    assert "1 without an emotion file skipped" in caplog.text
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["ckplus/S005/001", "ckplus/S010/002"]
    sample = by_id["ckplus/S005/001"]
    assert (sample.onset, sample.apex, sample.offset, sample.kind) == (1, 11, 11, "macro")
    assert sample.emotion == "disgust" and sample.extra["emotion_code"] == 3
    assert sorted(sample.frames) == list(range(1, 12))  # .DS_Store ignored
    assert by_id["ckplus/S010/002"].emotion == "surprise"


def test_action_units_from_the_facs_files(ck_raw):
    facs = ck_raw / "FACS" / "S005" / "001"
    facs.mkdir(parents=True)
    (facs / "S005_001_00000011_facs.txt").write_text(
        "   9.0000000e+00   0.0000000e+00\n   1.7000000e+01   2.0000000e+00\n   1.0000000e+00   0.0000000e+00\n")
    by_id = {s.sample_id: s for s in get_adapter("ckplus").scan(ck_raw).samples}
    assert by_id["ckplus/S005/001"].action_units == "1+9+17"
    assert by_id["ckplus/S010/002"].action_units == ""


def test_bad_code_is_a_failure_naming_the_file(ck_raw):
    write_sequence(ck_raw, "S011", "001", 5, "0.0000000e+00")
    write_sequence(ck_raw, "S011", "002", 5, "three")
    failures = {f.sample_id: f.message for f in get_adapter("ckplus").scan(ck_raw).failures}
    assert "not one of 1..7" in failures["ckplus/S011/001"]
    assert "cannot read an emotion code" in failures["ckplus/S011/002"] and "_emotion.txt" in failures["ckplus/S011/002"]


def test_read_emotion_reads_float_text(tmp_path):
    (tmp_path / "e.txt").write_text(" 5.0000000e+00 ")
    assert read_emotion(tmp_path / "e.txt") == 5
    (tmp_path / "f.txt").write_text("nan")
    with pytest.raises(AnnotationError):
        read_emotion(tmp_path / "f.txt")


def test_missing_folders_say_what_is_expected(tmp_path):
    with pytest.raises(DatasetLayoutError, match="cohn-kanade-images"):
        get_adapter("ckplus").scan(tmp_path)
