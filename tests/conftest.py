"""Shared fixtures: small synthetic raw trees made by the project's own generator, and their shards.

Session-scoped so that the real pipeline (dlib, TV-L1, HDF5) runs once per tree for all tests.
"""
from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture(autouse=True)
def folds_in_process(monkeypatch):
    """mer-train's default runs LOSO folds on a local Dask cluster; the suite's folds are tiny, so they
    run in the test process unless a test asks for workers (tests/test_train_dask.py does)."""
    from mer_train import distributed

    monkeypatch.setattr(distributed, "DEFAULT_SCHEDULER", distributed.SYNCHRONOUS)


# The real annotation files (not ours to ship) beside the clone; CI checks ../shared out next to it.
REFERENCE_ANNOTATIONS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "annotations"


@pytest.fixture(scope="session")
def reference_annotations() -> Path:
    """The folder of the real annotation sheets (CASME2-coding-20190701.xlsx, ...); a test that asks for
    it is skipped, saying where it looked, when the folder is absent."""
    if not REFERENCE_ANNOTATIONS.is_dir():
        pytest.skip(f"reference annotations not found at {REFERENCE_ANNOTATIONS} (CI has ../shared beside the clone)")
    return REFERENCE_ANNOTATIONS


# A small CASME II tree with every planted quirk: 4 subjects x 4 clips, quick to prepare.
CASME2_SYNTH = dict(subjects=4, clips_per_subject=4, seed=11, quirks=True)


@pytest.fixture(scope="session")
def synth_casme2(tmp_path_factory) -> Path:
    from mer_pipeline.synth import generate

    raw = tmp_path_factory.mktemp("raw") / "casme2"
    generate("casme2", raw, **CASME2_SYNTH)
    return raw


@pytest.fixture(scope="session")
def casme2_shards(synth_casme2, tmp_path_factory):
    """(OUT, PrepareSummary) of the synchronous pipeline on `synth_casme2`."""
    from mer_pipeline.config import PrepConfig
    from mer_pipeline.runner import prepare

    out = tmp_path_factory.mktemp("shards") / "casme2"
    summary = prepare("casme2", synth_casme2, out, config=PrepConfig(), scheduler="synchronous", shard_size=4,
                      progress=False)
    return out, summary


# Fake shard sets for the trainer tests (tests/fake_shards.py): fixtures, so no test imports the maker by name.
@pytest.fixture(scope="session")
def fake_shards():
    """The fake shard maker: `fake_shards.write_set(OUT, dataset=..., kind=..., emotions=..., ...)`,
    `fake_shards.build_root(ROOT)`, `fake_shards.MICRO_EMOTIONS`, `fake_shards.MACRO_EMOTIONS`."""
    import fake_shards

    return fake_shards


@pytest.fixture(scope="session")
def fake_root(fake_shards, tmp_path_factory) -> Path:
    """ROOT/casme2 (5 micro subjects, 5 classes + fear to drop) and ROOT/ckplus (macro), made once."""
    return fake_shards.build_root(tmp_path_factory.mktemp("fake-shards"))
