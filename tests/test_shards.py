"""The shard format: atomic, deterministic writes; manifest; verification; the reader."""
import json

import h5py
import numpy as np
import pytest

from mer_pipeline.errors import ShardError
from mer_pipeline.shards import (SCHEMA, find_shard_sets, open_shards, verify_shards, write_manifest, write_shard)


def _record(i, size=16, kind="micro"):
    rng = np.random.default_rng(i)
    return {
        "onset": rng.integers(0, 255, (size, size), dtype=np.uint8),
        "apex": rng.integers(0, 255, (size, size), dtype=np.uint8),
        "flow": rng.normal(size=(2, size, size)).astype(np.float32),
        "strain": rng.random((size, size)).astype(np.float32),
        "landmarks": rng.random((68, 2)).astype(np.float32),
        "meta": {"sample_id": f"casme2/sub0{i}/EP0{i}", "dataset": "casme2", "subject": f"sub0{i}", "clip": f"EP0{i}",
                 "emotion": "happiness", "action_units": "6+12", "kind": kind, "apex_source": "annotated",
                 "onset_frame": 10 + i, "apex_frame": 20 + i, "offset_frame": 30 + i, "fps": 200.0},
    }


def make_set(out, n=3, **kwargs):
    (out / "shards").mkdir(parents=True)
    sha = write_shard(out / "shards" / "casme2-00000.h5", [_record(i) for i in range(n)], size=16, landmarks=68,
                      config_hash="abc")
    manifest = write_manifest(out, dataset="casme2", config={"x": 1}, failed=0, class_counts={"happiness": n},
                              pipeline_version="0", shards=[{"file": "casme2-00000.h5", "n": n, "sha256": sha}])
    # the config hash in the shard must equal the manifest's
    with h5py.File(out / "shards" / "casme2-00000.h5", "a") as h5:
        h5.attrs["config_hash"] = manifest["config_hash"]
    manifest["shards"][0]["sha256"] = __import__("mer_pipeline.shards", fromlist=["x"]).sha256_file(out / "shards" / "casme2-00000.h5")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_same_records_give_identical_bytes(tmp_path):
    a = write_shard(tmp_path / "a.h5", [_record(0), _record(1)], size=16, landmarks=68, config_hash="h")
    b = write_shard(tmp_path / "b.h5", [_record(0), _record(1)], size=16, landmarks=68, config_hash="h")
    assert a == b
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert not list(tmp_path.glob(".*tmp*"))


def test_roundtrip_through_the_reader(tmp_path):
    out = make_set(tmp_path / "set")
    shards = open_shards(out)
    assert len(shards) == 3
    assert shards.arrays["flow"].shape == (3, 2, 16, 16) and shards.arrays["flow"].dtype == np.float32
    np.testing.assert_array_equal(shards.arrays["onset"][1], _record(1)["onset"])
    assert shards.meta["subject"].tolist() == ["sub00", "sub01", "sub02"]
    assert shards.rows()[2]["apex_frame"] == 22
    assert verify_shards(out) == []


def test_empty_shard_is_valid(tmp_path):
    write_shard(tmp_path / "e.h5", [], size=16, landmarks=68, config_hash="h")
    with h5py.File(tmp_path / "e.h5") as h5:
        assert h5["flow"].shape == (0, 2, 16, 16) and h5.attrs["schema"] == SCHEMA


def test_flipped_byte_is_caught_by_verify_and_reader(tmp_path):
    out = make_set(tmp_path / "set")
    path = out / "shards" / "casme2-00000.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_shards(out)
    assert len(problems) == 1 and "casme2-00000.h5" in problems[0] and "sha256" in problems[0]
    with pytest.raises(ShardError, match="casme2-00000.h5"):
        open_shards(out)


def test_unknown_schema_and_missing_manifest(tmp_path):
    out = make_set(tmp_path / "set")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["schema"] = "mer-shards/99"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="unknown shard schema 'mer-shards/99'"):
        open_shards(out)
    with pytest.raises(ShardError, match="manifest.json is missing"):
        open_shards(tmp_path)


def test_find_shard_sets(tmp_path):
    make_set(tmp_path / "root" / "a")
    make_set(tmp_path / "root" / "b")
    assert [p.name for p in find_shard_sets(tmp_path / "root")] == ["a", "b"]
    assert find_shard_sets(tmp_path / "root" / "a") == [tmp_path / "root" / "a"]
    with pytest.raises(ShardError, match="neither a shard set"):
        find_shard_sets(tmp_path / "root" / "a" / "shards")


def test_reader_needs_no_torch_or_cv2():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['cv2'] = None; sys.modules['dask'] = None; "
            "import mer_pipeline.shards")
    subprocess.run([sys.executable, "-c", code], check=True)
