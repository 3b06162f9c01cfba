"""SMIC adapter on hand-made SMIC_all_raw / SMIC_all_cropped trees; quirks of datasets.md section 4."""
from pathlib import Path

import pytest

from mer_pipeline.datasets import get_adapter
from mer_pipeline.errors import AnnotationError, DatasetLayoutError


def write_clip(subset_dir: Path, subject: str, emotion: str, clip: str, numbers, prefix="image", micro=True):
    folder = subset_dir / subject / ("micro" if micro else "") / emotion / clip
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"{prefix}{n:06d}.bmp").write_bytes(b"")
    return folder


@pytest.fixture
def smic_raw(tmp_path):
    raw = tmp_path / "SMIC"
    hs = raw / "SMIC_all_raw" / "HS"
    write_clip(hs, "s1", "negative", "s1_ne_01", range(106273, 106280))
    write_clip(hs, "s1", "positive", "s1_po_01", [10, 11, 13, 14])  # frame 12 missing
    write_clip(hs, "s12", "surprise", "s12_sur_01", range(500, 505))
    (hs / "s1" / "non_micro" / "s1_x").mkdir(parents=True)  # not micro-expressions: ignored
    write_clip(raw / "SMIC_all_raw" / "VIS", "s1", "negative", "s1_ne_01", range(1, 6))
    write_clip(raw / "SMIC_all_cropped" / "HS", "s1", "negative", "s1_ne_01", range(106273, 106280), prefix="reg_image")
    return raw


def scan(raw, **options):
    return get_adapter("smic").scan(raw, None, **options)


def test_parses_back_from_the_parent_folder(smic_raw):
    result = scan(smic_raw)
    assert not result.failures
    by_id = {s.sample_id: s for s in result.samples}
    assert sorted(by_id) == ["smic/s1/s1_ne_01", "smic/s1/s1_po_01", "smic/s12/s12_sur_01"]
    sample = by_id["smic/s1/s1_ne_01"]
    assert (sample.onset, sample.apex, sample.offset) == (106273, None, 106279)
    assert sample.emotion == "negative" and sample.fps == 100.0 and sample.kind == "micro"
    assert sample.frames[106273].name == "image106273.bmp"  # raw tree preferred over cropped
    assert by_id["smic/s12/s12_sur_01"].emotion == "surprise"


@pytest.mark.parametrize("where", ["SMIC_all_raw", "SMIC_all_raw/HS", "SMIC_all_cropped"])
def test_raw_may_point_at_the_release_or_the_subset(smic_raw, where):
    result = scan(smic_raw / where)
    assert len(result.samples) == (1 if where == "SMIC_all_cropped" else 3)


def test_cropped_tree_reg_image_names(smic_raw):
    (sample,) = scan(smic_raw / "SMIC_all_cropped").samples
    assert sample.frames[106279].name == "reg_image106279.bmp"


def test_missing_frames_are_tolerated_and_noted(smic_raw):
    sample = {s.sample_id: s for s in scan(smic_raw).samples}["smic/s1/s1_po_01"]
    assert sorted(sample.frames) == [10, 11, 13, 14]
    assert any("1 of 5 frames" in n for n in sample.notes)


def test_empty_clip_folder_is_a_failure(smic_raw):
    (smic_raw / "SMIC_all_raw" / "HS" / "s18" / "micro" / "surprise" / "s18_sur_03").mkdir(parents=True)
    result = scan(smic_raw)
    (failure,) = result.failures
    assert failure.sample_id == "smic/s18/s18_sur_03" and "no frames" in failure.message


def test_subsets_and_their_frame_rates(smic_raw):
    (sample,) = scan(smic_raw, subset="VIS").samples
    assert sample.fps == 25.0 and sample.extra["subset"] == "VIS"
    assert any("not verified" in n for n in sample.notes)
    with pytest.raises(DatasetLayoutError, match="no SMIC NIR tree"):
        scan(smic_raw, subset="NIR")


def test_subset_folder_given_with_another_subset_says_so(smic_raw):
    with pytest.raises(DatasetLayoutError, match="pass --subset HS"):
        scan(smic_raw / "SMIC_all_raw" / "HS", subset="VIS")


def test_tree_without_micro_level_is_accepted(tmp_path):
    write_clip(tmp_path / "HS", "s2", "negative", "s2_ne_01", range(3), micro=False)
    assert [s.sample_id for s in scan(tmp_path).samples] == ["smic/s2/s2_ne_01"]


def test_annotations_are_refused_with_the_reason(smic_raw, tmp_path):
    with pytest.raises(AnnotationError, match="no annotation sheet"):
        get_adapter("smic").scan(smic_raw, tmp_path / "x.xlsx")


def test_subset_is_an_option_defaulting_to_hs():
    (option,) = get_adapter("smic").options
    assert option.name == "subset" and option.default == "HS" and option.choices == ("HS", "VIS", "NIR")
