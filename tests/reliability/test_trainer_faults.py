"""Stage two under faults: a NaN loss, a killed training run, `--shards` that is no shard set.

(Damaged shard sets refused by `mer-train --shards` are in test_damaged_shards.py.)
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mer_pipeline.shards import sha256_file
from mer_train.cli import main

CI = Path(__file__).resolve().parents[2] / "configs" / "ci.yaml"
MER_TRAIN = Path(sys.executable).parent / "mer-train"
ERM = ["--config", str(CI), "--method", "erm", "--scheduler", "synchronous", "-q"]  # folds in fold order


@pytest.fixture(scope="module")
def fake_root(fake_shards, tmp_path_factory) -> Path:
    """5 micro subjects (casme2/sub00..sub04) and a macro set, as in tests/test_train.py."""
    return fake_shards.build_root(tmp_path_factory.mktemp("trainer-faults"))


def train_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def poison_subject(root: Path, subject: str) -> None:
    """NaN flow for every sample of `subject` in root/casme2, sha256 kept consistent: a shard set
    made by a buggy third-party tool, which verification cannot catch."""
    shard = next((root / "casme2" / "shards").glob("*.h5"))
    with h5py.File(shard, "r+") as h5:
        rows = [s.decode() == subject for s in h5["meta/subject"][()]]
        flow = h5["flow"][()]
        flow[np.array(rows)] = np.nan
        h5["flow"][...] = flow
    manifest_path = root / "casme2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["sha256"] = sha256_file(shard)
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_leaves_only_sound_checkpoints(fake_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(fake_root, root)
    poison_subject(root, "sub00")  # fold 0 tests sub00 (trains without it); fold 1 trains on it
    run = tmp_path / "run"
    result = train_cli("--shards", root, *ERM, "--set", "steps=10", "--out", run)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "fold 1 (casme2/sub01): the training loss is nan at step" in result.output
    assert "this fold is not saved" in result.output and "NaN or infinite flow values" in result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["fold-000.pt"]
    checkpoint = torch.load(run / "checkpoints" / "fold-000.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
    assert not (run / "metrics.json").exists()


def predictions(run: Path) -> str:
    return (run / "predictions.csv").read_text()


@pytest.mark.slow
def test_a_killed_training_run_resumes_from_its_last_checkpoint(fake_root, tmp_path):
    steps = ["--set", "steps=60"]
    reference = tmp_path / "reference"
    assert train_cli("--shards", fake_root, *ERM, *steps, "--out", reference).exit_code == 0

    run = tmp_path / "run"
    command = [MER_TRAIN, "--shards", fake_root, *ERM, *steps, "--out", run]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "fold-001.pt").exists():
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert not (run / "metrics.json").exists()
    saved = sorted((run / "checkpoints").glob("fold-*.pt"))
    assert 2 <= len(saved) < 5
    for path in saved:  # every checkpoint under its final name is complete
        torch.load(path, weights_only=True)
    mtimes = {p: p.stat().st_mtime_ns for p in saved}

    result = train_cli("--shards", fake_root, *ERM, *steps, "--out", run)
    assert result.exit_code == 0, result.output
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # resumed, not retrained
    assert predictions(run) == predictions(reference)
    overall = json.loads((run / "metrics.json").read_text())["overall"]
    assert overall == json.loads((reference / "metrics.json").read_text())["overall"]


def interrupted_set(root: Path) -> Path:
    """A shard set whose mer-prep run was killed: shards written, no manifest yet."""
    (root / "casme2" / "manifest.json").unlink()
    return root / "casme2"


@pytest.mark.parametrize("make,words", [
    (lambda root: root / "nowhere", "no such folder; pass a shard set made by mer-prep"),
    (lambda root: root / "casme2" / "shards", "one level down: pass its parent"),
    (lambda root: root / "casme2" / "manifest.json", "no such folder"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "make one with `mer-prep DATASET RAW OUT`"),
    (interrupted_set, "an interrupted mer-prep run writes the manifest only when it completes: rerun it to resume"),
], ids=["missing", "shards-subfolder", "a-file", "empty-folder", "interrupted-set"])
def test_shards_that_are_no_shard_set_are_refused_with_the_fix(make, words, fake_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(fake_root, root)
    path = make(root)
    result = train_cli("--shards", path, *ERM, "--out", tmp_path / "run")
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
    assert str(path) in result.output and words in result.output, result.output
    assert not (tmp_path / "run").exists()
