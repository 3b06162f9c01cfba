"""Both stages end to end, as `make demo` runs them: synthetic CASME II and CK+ raw trees -> mer-prep
(real dlib, TV-L1, HDF5, a local Dask cluster) -> mer-train LightmanNet with configs/ci.yaml, LOSO.

The synthetic data plants class-specific action units, so a working pipeline must score well above
chance (0.2 on 5 classes)."""
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory):
    from mer_pipeline.runner import prepare
    from mer_pipeline.synth import generate

    work = tmp_path_factory.mktemp("e2e")
    generate("casme2", work / "raw" / "casme2", seed=0)  # the demo's default size
    generate("ckplus", work / "raw" / "ckplus", seed=0)
    prepare("casme2", work / "raw" / "casme2", work / "shards" / "casme2", workers=2, progress=False)
    prepare("ckplus", work / "raw" / "ckplus", work / "shards" / "ckplus", workers=2, progress=False)
    return work / "shards"


def test_lightman_learns_the_planted_emotions_under_loso(demo_shards, tmp_path):
    from click.testing import CliRunner

    from mer_train.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["--shards", str(demo_shards), "--config", str(ROOT / "configs" / "ci.yaml"),
                                       "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "lightman" and metrics["class_set"] == "casme2-5"
    assert len(metrics["folds"]) == 12  # one fold per subject
    assert metrics["overall"]["uf1"] >= 0.6, metrics["overall"]
    assert metrics["overall"]["uar"] >= 0.6, metrics["overall"]
    for name in ("predictions.csv", "confusion.png", "curves.png", "config.yaml"):
        assert (out / name).is_file(), name
