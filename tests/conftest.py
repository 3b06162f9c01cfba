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
    from mer_pipeline.prepare import prepare

    out = tmp_path_factory.mktemp("shards") / "casme2"
    summary = prepare("casme2", synth_casme2, out, config=PrepConfig(), scheduler="synchronous", shard_size=4,
                      progress=False)
    return out, summary
