"""--fold-batch K (mer_train.fold_batch): K LOSO folds trained at once, their weights stacked and
vmapped over folds, give the predictions of one fold at a time within float tolerance.

TOLERANCE: the K folds see the same samples and the same arithmetic as alone; only the order of the
float32 sums inside the batched kernels differs (grouped convolutions instead of K small ones). Over
the schedules below that moves probabilities by about 1e-6 (measured); 1e-4 leaves room for other
CPUs and BLAS builds while still catching any fold that drew other samples, started from other
weights or saw another fold's labels (those change probabilities by 1e-2 and more).
"""
from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

import mer_train
from mer_train import distributed, fold_batch, loso, models, trainer
from mer_train.cli import main
from mer_train.config import load_config
from mer_train.data import load_data
from mer_train.errors import ConfigError, TrainError

CI = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"
TOLERANCE = 1e-4   # absolute, on class probabilities (module docstring)
SUBJECTS = 5       # fake_root: groups of 3 are folds 0-2 and 3-4


def run(fake_root, out, fold_batch=1, **overrides):
    return mer_train.train(CI, shards=[str(fake_root)], out=str(out), fold_batch=fold_batch, **overrides)


def probabilities(run_dir: Path) -> tuple[list[str], np.ndarray]:
    with open(run_dir / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["sample_id"] for r in rows], np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in rows])


def assert_same_run(one: Path, many: Path) -> None:
    ids_one, p_one = probabilities(one)
    ids_many, p_many = probabilities(many)
    assert ids_one == ids_many
    assert np.abs(p_one - p_many).max() <= TOLERANCE
    assert (p_one.argmax(1) == p_many.argmax(1)).all()
    m_one, m_many = (json.loads((run / "metrics.json").read_text()) for run in (one, many))
    assert set(m_one) == set(m_many)
    assert [f["subject"] for f in m_one["folds"]] == [f["subject"] for f in m_many["folds"]]  # same fold order
    assert [f["final_loss"] for f in m_one["folds"]] == pytest.approx([f["final_loss"] for f in m_many["folds"]],
                                                                      abs=TOLERANCE)
    assert m_one["overall"] == m_many["overall"]
    for path in sorted((one / "checkpoints").glob("fold-*.pt")):
        a, b = (torch.load(run / "checkpoints" / path.name, weights_only=True) for run in (one, many))
        assert set(a) == set(b) and a["fold"] == b["fold"]
        assert {**a["config"], "out": None} == {**b["config"], "out": None}
        for name, tensor in a["state_dict"].items():
            assert torch.allclose(tensor.float(), b["state_dict"][name].float(), atol=TOLERANCE, rtol=0), name


@pytest.fixture
def groups(monkeypatch):
    """The folds of each group that fold_batch.train_folds trains, in order."""
    seen = []
    original = fold_batch.train_folds

    def spy(config, data, folds, *args, **kwargs):
        seen.append([fold for fold, _ in folds])
        return original(config, data, folds, *args, **kwargs)

    monkeypatch.setattr(fold_batch, "train_folds", spy)
    yield seen


@pytest.mark.parametrize("method", ["erm", "multitask", "lightman"])
def test_three_folds_at_once_predict_what_one_at_a_time_predicts(fake_root, tmp_path, method, groups):
    one = run(fake_root, tmp_path / "one", method=method, steps=12)
    many = run(fake_root, tmp_path / "many", fold_batch=3, method=method, steps=12)
    assert groups == [[0, 1, 2], [3, 4]]
    assert_same_run(one.out, many.out)
    assert many.metrics["overall"]["uf1"] >= 0.5  # it learned (chance 0.2): the comparison is not of noise


@pytest.fixture(scope="module")
def fake_data(fake_root):
    return load_data(load_config(CI, {"shards": [str(fake_root)]}))


def same_folds(config, data, folds):
    """Probabilities and curves of `folds` trained one at a time and all at once."""
    cpu = torch.device("cpu")
    with loso.cpu_threads(config.threads):  # one thread, as a run's folds train
        alone = [trainer.train_fold(config, data, fold, subject, cpu) for fold, subject in folds]
        fold_batch.check_batchable(config, data)
        together = fold_batch.train_folds(config, data, folds, cpu)
    for a, b in zip(alone, together):
        assert a["sample_id"] == b["sample_id"] and a["fold"] == b["fold"]
        assert np.abs(np.array(a["probs"]) - np.array(b["probs"])).max() <= TOLERANCE
        assert a["curve"] == pytest.approx(b["curve"], abs=TOLERANCE)
    return alone, together


@pytest.mark.parametrize("overrides", [
    {"method": "maml", "first_order": True},
    # each fold its own training subjects and flipped labels, eval_adapt episodes from its own generator
    {"method": "lightman", "subject_fraction": 0.75, "label_noise": 0.2, "eval_adapt": 2},
    # one person per task (sets of different sizes, padded across folds), masked self target, adapted on the test person
    {"method": "lightman", "aux_target": "self", "task_unit": "subject", "test_adapt_steps": 2},
    {"method": "erm", "label_noise": 0.2, "test_adapt_steps": 2, "test_adapt_loss": "entropy",  # TENT
     "test_adapt_params": "norm"},
])
def test_per_fold_draws_labels_and_evaluation_stay_each_folds_own(fake_root, fake_data, overrides):
    config = load_config(CI, {"shards": [str(fake_root)], "steps": 4, **overrides})
    alone, _ = same_folds(config, fake_data, list(enumerate(fake_data.subjects))[1:4])
    # the folds differ from each other (a group that mixed them up could not pass the comparison above)
    assert alone[0]["curve"] != alone[1]["curve"]


def test_folds_with_their_own_auxiliary_targets(fake_root, fake_data):
    """When the macro-expressions come from the micro subjects (CAS(ME)^2, CAS(ME)^3), each fold
    leaves its test subject's out of its targets: the targets are stacked per fold."""
    data = replace(fake_data, macro_subject=np.array([fake_data.subjects[i % SUBJECTS]
                                                      for i in range(len(fake_data.macro_subject))], dtype=object))
    config = load_config(CI, {"shards": [str(fake_root)], "steps": 4, "method": "multitask", "aux_target": "class_macro"})
    folds = list(enumerate(data.subjects))[:3]
    aligns = [trainer.make_align(config, data, subject) for _, subject in folds]
    assert not torch.equal(aligns[0].targets, aligns[1].targets)
    same_folds(config, data, folds)


def test_a_non_finite_loss_stops_the_group_naming_its_folds(fake_root, fake_data):
    """NaN inputs of subject 0: every fold that trains on them stops, as one fold alone does."""
    x = fake_data.x.clone()
    x[torch.as_tensor(np.flatnonzero(fake_data.subject == fake_data.subjects[0]))] = float("nan")
    config = load_config(CI, {"shards": [str(fake_root)], "steps": 2, "method": "erm"})
    folds = list(enumerate(fake_data.subjects))[1:3]
    with pytest.raises(TrainError, match=r"fold 1 \(casme2/sub01\), fold 2 \(casme2/sub02\): the training loss is "
                                         r"nan at step 1 of 2; no fold of folds 1-2 .* is saved"):
        fold_batch.train_folds(config, replace(fake_data, x=x), folds, torch.device("cpu"))


# ----------------------------------------------------------------------------------------------
# what cannot be batched exactly is refused, naming the key and --fold-batch 1


def test_a_model_with_dropout_is_refused_before_anything_is_written(fake_root, tmp_path):
    with pytest.raises(ConfigError, match=r"model = ststnet has dropout .*p = 0.5.*--fold-batch 1"):
        run(fake_root, tmp_path / "run", fold_batch=2, method="erm", model="ststnet", input_size=28)
    assert not (tmp_path / "run").exists()
    result = CliRunner().invoke(main, ["train", "--shards", str(fake_root), "--config", str(CI), "--method", "erm",
                                       "--model", "ststnet", "--fold-batch", "2", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 1 and "--fold-batch 1" in result.output


def test_fold_batch_options_are_checked(fake_root, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--shards", str(fake_root), "--fold-batch", "0"])
    assert result.exit_code == 2 and "--fold-batch" in result.output
    result = runner.invoke(main, ["tune", "--shards", str(fake_root), "--grid", "lr=0.001", "--fold-batch", "2"])
    assert result.exit_code == 2 and "does not take --fold-batch" in result.output
    with pytest.raises(ConfigError, match="--fold-batch 0: must be at least 1"):
        run(fake_root, tmp_path / "run", fold_batch=0)


class NormNet(nn.Module):
    """A model with BatchNorm (running statistics), following the registry's contract."""

    def __init__(self, num_classes: int, input_size: int = 32):
        super().__init__()
        self.input_size = input_size
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(8 * 16, num_classes))
        self.aux_head = nn.Conv2d(8, 2, 3, 1, 1)

    def forward(self, x, aux=False):
        features = self.encoder(x)
        logits = self.head(features)
        field = F.interpolate(self.aux_head(features), size=(self.input_size, self.input_size), mode="bilinear")
        return (logits, field) if aux else logits


@pytest.fixture
def norm_net(monkeypatch):
    monkeypatch.setitem(models._MODELS, "norm_net", NormNet)
    monkeypatch.setitem(models._SPECS, "norm_net", models.InputSpec(32))
    return "norm_net"


def test_batch_norm_running_statistics_end_as_one_fold_at_a_time(fake_root, fake_data, norm_net):
    config = load_config(CI, {"shards": [str(fake_root)], "steps": 6, "method": "erm", "model": norm_net})
    alone, together = same_folds(config, fake_data, list(enumerate(fake_data.subjects))[:3])
    for a, b in zip(alone, together):
        for name in ("encoder.1.running_mean", "encoder.1.running_var", "encoder.1.num_batches_tracked"):
            assert torch.allclose(a["state_dict"][name].double(), b["state_dict"][name].double(), atol=TOLERANCE), name
        assert a["state_dict"]["encoder.1.num_batches_tracked"].item() == 6
    # a bi-level method would update them inside level one's vmap over tasks: refused
    with pytest.raises(ConfigError, match="keeps running statistics .*method = maml.*--fold-batch 1"):
        fold_batch.check_batchable(config.replace(method="maml"), fake_data)


# ----------------------------------------------------------------------------------------------
# checkpoints, resume and the Dask path


def test_a_rerun_with_fold_batch_trains_only_the_missing_folds(fake_root, tmp_path, groups):
    first = run(fake_root, tmp_path / "run", fold_batch=3, method="erm", steps=4)
    (first.out / "checkpoints" / "fold-001.pt").unlink()
    (first.out / "checkpoints" / "fold-004.pt").unlink()
    groups.clear()
    again = run(fake_root, tmp_path / "run", fold_batch=3, method="erm", steps=4)
    assert groups == [[1, 4]]
    assert again.metrics["overall"] == first.metrics["overall"]
    # the checkpoints of a fold-batch run resume a plain run (same format, same config), and back
    plain = run(fake_root, tmp_path / "run", method="erm", steps=4)
    assert plain.metrics["overall"] == first.metrics["overall"]


def test_groups_are_consecutive_folds_of_one_run():
    config = load_config(CI)
    tasks = [distributed.FoldTask(config, fold, f"s{fold}", Path(f"r{run}/fold-{fold}.pt"), f"run {run}")
             for run in (0, 1) for fold in range(5)]
    groups = distributed.group_folds(tasks, 2)
    assert [[t.fold for t in g.tasks] for g in groups] == [[0, 1], [2, 3], [4], [0, 1], [2, 3], [4]]
    assert {g.run for g in groups[:3]} == {"run 0"} and groups[3].name == "folds 0-1 (s0, s1) of run 1"


@pytest.mark.slow
def test_fold_groups_on_dask_workers_give_the_synchronous_predictions(fake_root, tmp_path):
    synchronous = run(fake_root, tmp_path / "sync", fold_batch=3, method="erm", steps=4, scheduler="synchronous")
    workers = run(fake_root, tmp_path / "dask", fold_batch=3, method="erm", steps=4, workers=2)
    assert (workers.out / "predictions.csv").read_bytes() == (synchronous.out / "predictions.csv").read_bytes()
    assert len(list((workers.out / "checkpoints").glob("fold-*.pt"))) == SUBJECTS


def test_compare_trains_each_runs_folds_in_groups(fake_root, tmp_path, groups):
    args = ["compare", "--shards", str(fake_root), "--config", str(CI), "--methods", "erm,multitask", "--seeds", "1",
            "--set", "steps=3", "-q"]
    for name, extra in (("one", []), ("many", ["--fold-batch", "5"])):
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
    assert groups == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]  # one group per run, never across runs
    for run in ("erm-seed0", "multitask-seed0"):
        assert_same_run(tmp_path / "one" / run, tmp_path / "many" / run)
