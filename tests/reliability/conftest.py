"""Fixtures of the reliability suite: one tiny synthetic CASME II tree (2 subjects x 2 clips) and
its clean shard set, both made once per session and never modified (cases work on linked copies)."""
from __future__ import annotations

from pathlib import Path

import pytest

from reliability_helpers import link_tree, prep


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory) -> Path:
    from mer_pipeline.synth import generate

    raw = tmp_path_factory.mktemp("reliability-raw") / "casme2"
    generate("casme2", raw, subjects=2, clips_per_subject=2, seed=0, quirks=False, workers=1)
    return raw


@pytest.fixture(scope="session")
def clean_out(tiny_raw, tmp_path_factory) -> Path:
    """The shard set of an undisturbed run: the reference every recovery must match byte for byte."""
    out = tmp_path_factory.mktemp("reliability-clean") / "out"
    summary = prep(tiny_raw, out)
    assert summary.ok == 4 and summary.failed == 0
    return out


@pytest.fixture
def raw(tiny_raw, tmp_path) -> Path:
    """A private copy of the tiny tree (hard links) that a case may damage."""
    return link_tree(tiny_raw, tmp_path / "raw" / "casme2")
