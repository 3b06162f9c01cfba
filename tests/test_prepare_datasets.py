"""Every dataset with a synthetic layout prepares end to end through the real pipeline (dlib,
TV-L1, HDF5), and its shards carry the dataset, kind and apex source the adapter decided."""
import json

import pytest

from mer_pipeline.runner import prepare
from mer_pipeline.shards import open_shards, verify_shards

synth = pytest.importorskip("mer_pipeline.synth", reason="the synthetic generator is not in this checkout")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dataset", sorted(set(synth.DATASETS) - {"casme2"}))  # casme2: tests/test_prepare.py
def test_synthetic_tree_prepares_end_to_end(tmp_path, dataset):
    raw, out = tmp_path / "raw", tmp_path / "out"
    synth.generate(dataset, raw, subjects=2, clips_per_subject=2, seed=5)
    truth = {c["sample_id"]: c for c in json.loads((raw / synth.TRUTH_FILE).read_text())["clips"]}
    summary = prepare(dataset, raw, out, scheduler="synchronous", limit=3, shard_size=2, progress=False)
    assert summary.ok >= 2, (out / "failures.jsonl").read_text()
    assert verify_shards(out) == []
    shards = open_shards(out)
    for i, sid in enumerate(shards.meta["sample_id"]):
        assert shards.meta["dataset"][i] == dataset
        assert shards.meta["kind"][i] == truth[sid]["kind"]
        assert shards.meta["apex_source"][i] in ("annotated", "spotted", "midpoint")
        if dataset == "smic":  # SMIC has no apex anywhere: always spotted
            assert shards.meta["apex_source"][i] == "spotted"
    assert shards.arrays["flow"].shape[1:] == (2, 128, 128)
