"""Oulu-CASIA adapter on hand-made OriginalImg / PreProcess trees; datasets.md section 10."""
from pathlib import Path

import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.errors import DatasetLayoutError


def write_sequence(lighting_dir: Path, subject: str, emotion: str, count: int):
    folder = lighting_dir / subject / emotion
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (folder / f"{n:03d}.jpeg").write_bytes(b"")


@pytest.fixture
def oulu_raw(tmp_path):
    raw = tmp_path / "Oulu_CASIA_NIR_VIS"
    write_sequence(raw / "OriginalImg" / "VL" / "Strong", "P001", "Anger", 12)
    write_sequence(raw / "OriginalImg" / "VL" / "Strong", "P001", "Happiness", 9)
    write_sequence(raw / "OriginalImg" / "VL" / "Weak", "P002", "Surprise", 7)
    write_sequence(raw / "OriginalImg" / "NI" / "Strong", "P003", "Fear", 5)
    write_sequence(raw / "PreProcess" / "VL_Acropped" / "Strong", "P009", "Anger", 4)
    return raw


def test_default_vl_strong_parses_back_as_macro(oulu_raw):
    result = get_adapter("oulu").scan(oulu_raw)
    assert not result.failures
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["oulu/P001/Anger", "oulu/P001/Happiness"]  # OriginalImg wins over PreProcess
    sample = by_id["oulu/P001/Anger"]
    assert (sample.onset, sample.apex, sample.offset, sample.kind, sample.fps) == (0, 11, 11, "macro", 25.0)
    assert sample.emotion == "Anger" and sample.frames[0].name == "000.jpeg"


@pytest.mark.parametrize("options, expected", [
    ({"lighting": "Weak"}, ["oulu/P002/Surprise"]),
    ({"spectrum": "NI"}, ["oulu/P003/Fear"]),
    ({"lighting": "weak", "spectrum": "vl"}, ["oulu/P002/Surprise"]),
])
def test_lighting_and_spectrum_options(oulu_raw, options, expected):
    result = get_adapter("oulu").scan(oulu_raw, **options)
    assert [s.sample_id for s in result.samples] == expected
    assert result.samples[0].extra["lighting"] in ("Weak", "Strong")


def test_preprocess_copy_and_lighting_folder_as_raw(oulu_raw):
    cropped = get_adapter("oulu").scan(oulu_raw / "PreProcess")
    assert [s.sample_id for s in cropped.samples] == ["oulu/P009/Anger"]
    direct = get_adapter("oulu").scan(oulu_raw / "OriginalImg" / "VL" / "Weak")
    assert [s.sample_id for s in direct.samples] == ["oulu/P002/Surprise"]


def test_empty_sequence_is_a_failure_and_missing_tree_explained(oulu_raw, tmp_path):
    (oulu_raw / "OriginalImg" / "VL" / "Strong" / "P001" / "Sadness").mkdir()
    (failure,) = get_adapter("oulu").scan(oulu_raw).failures
    assert failure.sample_id == "oulu/P001/Sadness"
    with pytest.raises(DatasetLayoutError, match="--spectrum/--lighting"):
        get_adapter("oulu").scan(oulu_raw, lighting="Dark")
