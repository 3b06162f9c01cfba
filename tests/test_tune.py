"""Nested LOSO (`mer-train tune`): values are chosen on each fold's training subjects only.

Tiny fake shard sets (tests/fake_shards.py, the `fake_shards` fixture): 4 CASME II-like subjects
whose micro samples and macro samples share subject ids (as in CAS(ME)^3), so the test subject's
macro samples are something a careless inner loop could still read. configs/ci.yaml at 5 steps.
"""
import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import f1_score

from mer_train import trainer
from mer_train.cli import main
from mer_train.config import load_config
from mer_train.data import load_data
from mer_train.errors import ConfigError, DataError
from mer_train.loso import train
from mer_train.tune import grid_points, parse_grid, tune, without_subject

CI = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"
SUBJECTS = 4
GRID = {"lr": [0.003, 0.03]}
ALL = [f"casme2/sub{i:02d}" for i in range(SUBJECTS)]


@pytest.fixture(scope="module")
def root(fake_shards, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tune-shards")
    fake_shards.write_set(root / "casme2", dataset="casme2", kind="micro", emotions=fake_shards.MICRO_EMOTIONS,
                          subjects=SUBJECTS, per_emotion=2, amplitude=0.3, noise=0.1, seed=1)
    fake_shards.write_set(root / "casme2-macro", dataset="casme2", kind="macro",
                          emotions=fake_shards.MICRO_EMOTIONS[:4], subjects=SUBJECTS, per_emotion=1, amplitude=8.0,
                          noise=0.5, seed=2)
    return root


def config(root, **overrides):
    return load_config(CI, {"shards": [str(root)], "steps": 5, "method": "erm", **overrides})


@pytest.fixture
def trained(monkeypatch):
    """The (fold index, test subject, subjects in the data) of every training, in order."""
    calls = []
    original = trainer.train_fold

    def spy(config, data, fold, subject, *args, **kwargs):
        calls.append((fold, subject, tuple(data.subjects)))
        return original(config, data, fold, subject, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_fold", spy)
    return calls


def relabelled(data, subject):
    """`data` with every label of `subject` (micro and macro) moved to the next class."""
    k = len(data.classes)
    micro = torch.as_tensor(data.subject == subject)
    macro = torch.as_tensor(data.macro_subject == subject)
    assert micro.any() and macro.any()
    return replace(data, y=torch.where(micro, (data.y + 1) % k, data.y),
                   macro_y=torch.where(macro, (data.macro_y + 1) % k, data.macro_y))


def without_times(metrics):
    return {**metrics, "folds": [{k: v for k, v in fold.items() if "seconds" not in k} for fold in metrics["folds"]]}


def outer_probs(out, subject):
    with open(out / "predictions.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["subject"] == subject]
    return [[row[k] for k in row if k.startswith("p_")] for row in rows]


@pytest.mark.slow
def test_the_outer_subjects_labels_cannot_change_what_is_chosen_for_it(root, tmp_path):
    """The issue's leakage test. For each subject s, rerun with s's labels (micro and macro) changed:
    fold s must choose the same values from the same inner scores and predict s the same way."""
    cfg = config(root, method="multitask")  # the auxiliary branch reads the macro samples' labels
    data = load_data(cfg)
    base = tune(cfg, GRID, data=data, out=str(tmp_path / "base")).metrics
    for i, subject in enumerate(data.subjects):
        other = tune(cfg, GRID, data=relabelled(data, subject), out=str(tmp_path / f"s{i}")).metrics
        assert other["folds"][i]["subject"] == subject
        assert other["folds"][i]["chosen"] == base["folds"][i]["chosen"]
        assert other["folds"][i]["inner"] == base["folds"][i]["inner"]
        assert outer_probs(tmp_path / f"s{i}", subject) == outer_probs(tmp_path / "base", subject)
        # the control: s's labels do reach the other folds' inner scores and the pooled score
        assert any(other["folds"][j]["inner"] != base["folds"][j]["inner"] for j in range(SUBJECTS) if j != i)
        assert other["overall"]["uf1"] != base["overall"]["uf1"]


def test_without_subject_drops_its_micro_and_macro_samples_only(root):
    data = load_data(config(root))
    assert len(data.macro_y) == SUBJECTS * 4 and set(data.macro_subject) == set(data.subjects)
    rest = without_subject(data, "casme2/sub01")
    assert rest.subjects == ["casme2/sub00", "casme2/sub02", "casme2/sub03"]
    assert set(rest.macro_subject) == set(rest.subjects) and len(rest.macro_y) == 12
    keep = data.subject != "casme2/sub01"
    assert torch.equal(rest.x, data.x[torch.as_tensor(keep)]) and torch.equal(rest.y, data.y[torch.as_tensor(keep)])
    assert rest.sample_id.tolist() == data.sample_id[keep].tolist()
    assert torch.equal(rest.macro_field, data.macro_field[torch.as_tensor(data.macro_subject != "casme2/sub01")])


def test_tune_chooses_from_the_grid_on_inner_scores_and_pools_the_outer_folds(root, tmp_path, trained):
    result = tune(config(root), GRID, out=str(tmp_path / "run"))
    out, metrics = result.out, result.metrics
    assert {p.name for p in out.iterdir()} == {"metrics.json", "predictions.csv", "confusion.png", "curves.png",
                                              "config.yaml", "checkpoints", "inner"}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["tuning"]["grid"] == GRID and metrics["tuning"]["trainings"] == SUBJECTS * (2 * 3 + 1)
    assert metrics["protocol"] == "inductive" and metrics["method"] == "erm"
    assert len(trained) == SUBJECTS * (2 * 3 + 1)
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i, fold in enumerate(metrics["folds"]):
        subject = f"casme2/sub{i:02d}"
        assert fold["subject"] == subject and fold["chosen"] in grid_points(result.config, GRID)
        assert [score["values"] for score in fold["inner"]] == grid_points(result.config, GRID)
        # the inner scores are the pooled UF1 of the stored inner predictions, of training subjects only
        for p, score in enumerate(fold["inner"]):
            folder = out / "inner" / f"fold-{i:03d}" / f"point-{p:02d}"
            records = [json.loads(f.read_text()) for f in sorted(folder.iterdir())]
            assert [r["test_subject"] for r in records] == fold["inner_subjects"] == fold["train_subjects"]
            assert all(subject not in r["subjects"] for r in records)
            label = {r["sample_id"]: r["label"] for r in rows}
            truth = [label[s] for r in records for s in r["sample_id"]]
            guess = [metrics["classes"][int(np.argmax(q))] for r in records for q in r["probs"]]
            assert score["uf1"] == pytest.approx(f1_score(truth, guess, labels=sorted(set(truth)), average="macro"))
        best = max(score["uf1"] for score in fold["inner"])
        assert fold["chosen"] == next(s["values"] for s in fold["inner"] if s["uf1"] == best)  # ties: the first
        # the outer fold is a plain LOSO fold of the chosen values
        checkpoint = torch.load(out / "checkpoints" / f"fold-{i:03d}.pt", weights_only=True)
        assert checkpoint["config"]["lr"] == fold["chosen"]["lr"] and checkpoint["fold"]["subject"] == subject
    assert len(rows) == 40 and {r["fold"] for r in rows} == {"0", "1", "2", "3"}
    labels, predictions = [r["label"] for r in rows], [r["prediction"] for r in rows]
    assert metrics["overall"]["uf1"] == pytest.approx(f1_score(labels, predictions, labels=sorted(set(labels)),
                                                               average="macro"))


def test_a_one_point_grid_is_plain_loso(root, tmp_path):
    tune(config(root), {"lr": [0.003]}, out=str(tmp_path / "tune"))
    train(config(root, lr=0.003), out=str(tmp_path / "loso"))
    assert (tmp_path / "tune" / "predictions.csv").read_bytes() == (tmp_path / "loso" / "predictions.csv").read_bytes()


def test_rerun_skips_finished_work_and_redoes_missing_or_stale_results(root, tmp_path, trained):
    first = tune(config(root), GRID, out=str(tmp_path / "run"))
    trained.clear()
    assert tune(config(root), GRID, out=str(tmp_path / "run")).metrics == first.metrics
    assert trained == []
    (first.out / "inner" / "fold-001" / "point-01" / "inner-02.json").unlink()
    (first.out / "inner" / "fold-002" / "point-00" / "inner-00.json").write_text("{half a fi")
    (first.out / "checkpoints" / "fold-003.pt").unlink()
    again = tune(config(root), GRID, out=str(tmp_path / "run"))
    assert [(fold, subject) for fold, subject, _ in trained] == [(2, "casme2/sub03"), (0, "casme2/sub00"),
                                                                 (3, "casme2/sub03")]
    assert without_times(again.metrics) == without_times(first.metrics)
    trained.clear()
    changed = tune(config(root), {"lr": [0.003, 0.01]}, out=str(tmp_path / "run"))  # point 1 changed: it is redone,
    moved = sum(a["chosen"] != b["chosen"] for a, b in zip(first.metrics["folds"], changed.metrics["folds"]))
    assert len(trained) == SUBJECTS * 3 + moved  # and the outer folds whose choice moved


def test_inner_folds_caps_the_cost_with_held_out_subjects_spread_over_the_list(root, tmp_path, trained):
    metrics = tune(config(root), GRID, inner_folds=2, out=str(tmp_path / "run")).metrics
    assert len(trained) == SUBJECTS * (2 * 2 + 1) and metrics["tuning"]["inner_folds"] == 2
    assert metrics["folds"][0]["inner_subjects"] == ["casme2/sub01", "casme2/sub03"]
    assert metrics["folds"][3]["inner_subjects"] == ["casme2/sub00", "casme2/sub02"]
    assert all(fold["inner"][0]["n"] == 20 for fold in metrics["folds"])
    for outer in range(SUBJECTS):  # the inner trainings of outer fold o never see its subject; the outer one does
        for _, subject, subjects in trained[4 * outer:4 * outer + 4]:
            assert subjects == tuple(s for s in ALL if s != ALL[outer])
            assert subject in metrics["folds"][outer]["inner_subjects"]
    assert [(fold, subjects) for fold, _, subjects in trained[16:]] == [(o, tuple(ALL)) for o in range(SUBJECTS)]


def test_a_grid_over_a_data_key_loads_the_data_per_point(root, tmp_path):
    metrics = tune(config(root), {"input_size": [16, 32], "steps": [3, 5]}, out=str(tmp_path / "run")).metrics
    assert metrics["overall"]["n"] == 40 and metrics["tuning"]["points"] == 4
    for i, fold in enumerate(metrics["folds"]):
        checkpoint = torch.load(tmp_path / "run" / "checkpoints" / f"fold-{i:03d}.pt", weights_only=True)
        assert (checkpoint["input_size"], len(checkpoint["curve"])) == (fold["chosen"]["input_size"],
                                                                        fold["chosen"]["steps"])
    same_steps = len({fold["chosen"]["steps"] for fold in metrics["folds"]}) == 1
    assert (tmp_path / "run" / "curves.png").exists() == same_steps
    with pytest.raises(ConfigError, match="--grid input_size: changes the data loaded"):
        tune(config(root), {"input_size": [16, 32]}, data=load_data(config(root)), out=str(tmp_path / "x"))


@pytest.mark.parametrize("options, message", [
    (["lrr=0.1,0.2"], "--grid lrr=0.1: unknown config key 'lrr' in overrides; did you mean 'lr'?"),
    (["steps=10,many"], "--grid steps=many: steps = 'many' in overrides: expected an integer"),
    (["method=erm,adam"], "--grid method=adam: method = 'adam' in overrides: choose one of lightman, erm, "
                          "multitask, maml"),
    (["seed=0,1"], "--grid seed: seed sets the seed (choosing a seed is not tuning), not the model; it cannot be "
                   "tuned. Set it with its flag or --set seed=VALUE"),
    (["lr=0.1,0.1"], "--grid lr: the value 0.1 is given twice"),
    (["lr=0.1", "lr=0.2"], "--grid lr is given twice; put all its values in one option: --grid lr=V1,V2"),
    (["lr"], "--grid 'lr': expected KEY=V1,V2,..., e.g. --grid lr=0.001,0.003"),
    (["lr=0.1,,0.2"], "--grid 'lr=0.1,,0.2': an empty value; separate values by single commas"),
])
def test_a_bad_grid_fails_before_anything_trains(root, tmp_path, trained, options, message):
    with pytest.raises(ConfigError) as error:
        tune(config(root), parse_grid(options), out=str(tmp_path / "api"))
    assert str(error.value) == message
    args = ["tune", "--shards", str(root), "--config", str(CI), "--out", str(tmp_path / "cli"), "-q"]
    result = CliRunner().invoke(main, args + [f"--grid={o}" for o in options])
    assert result.exit_code == 1 and result.output == f"Error: {message}\n"
    assert trained == [] and not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


def test_a_grid_never_mixes_the_inductive_and_transductive_protocols(root, tmp_path, trained):
    with pytest.raises(ConfigError, match="the grid mixes inductive and transductive points"):
        tune(config(root, test_adapt_loss="entropy"), {"test_adapt_steps": [0, 2]}, out=str(tmp_path / "run"))
    assert trained == [] and not (tmp_path / "run").exists()


def test_too_few_subjects_for_nested_loso_is_a_clear_error(fake_shards, tmp_path, trained):
    shards = fake_shards.write_set(tmp_path / "casme2", dataset="casme2", kind="micro",
                                   emotions=fake_shards.MICRO_EMOTIONS, subjects=3, per_emotion=1, amplitude=0.3,
                                   noise=0.1)
    message = (r"^3 subjects in --shards: nested LOSO trains each inner fold on 1 subject\(s\) .* --method maml needs "
               r"at least 2; use at least 4 subjects, or --method erm$")
    with pytest.raises(DataError, match=message):
        tune(config(shards, method="maml"), GRID, out=str(tmp_path / "run"))
    assert trained == []


def test_cli_tune_prints_the_score_and_the_values_chosen_per_fold(root, tmp_path):
    result = CliRunner().invoke(main, ["tune", "--shards", str(root), "--config", str(CI), "--method", "erm",
                                       "--set", "steps=3", "--grid", "lr=0.003,0.03", "--inner-folds", "2",
                                       "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"tune erm on casme2-5: {SUBJECTS} outer folds x 2 grid points (20 trainings), "
                               "40 samples: UF1 ")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert lines[1:-1] == [f"  {fold['subject']}: lr={fold['chosen']['lr']} (inner UF1 "
                           f"{max(s['uf1'] for s in fold['inner']):.3f})" for fold in metrics["folds"]]
    assert lines[-1] == f"Run directory: {tmp_path / 'run'}"


QUICK = ["--config", str(CI), "--method", "erm", "--set", "steps=3", "--grid", "lr=0.003,0.03", "--inner-folds", "2",
         "-q"]


def test_tune_on_two_workers_chooses_and_predicts_as_the_synchronous_run(root, tmp_path, trained):
    """Every training is a task on a local cluster of 2 worker processes: the same inner scores,
    choices and outer predictions as in this process, bit for bit (same seed, one thread each)."""
    runs = {}
    for name, where in [("sync", ["--scheduler", "synchronous"]), ("workers", ["--workers", "2"])]:
        trained.clear()
        args = ["tune", "--shards", str(root), *QUICK, *where, "--out", str(tmp_path / name)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        runs[name] = (result.output.replace(str(tmp_path / name), "RUN"), len(trained))
    assert runs["sync"][1] == SUBJECTS * (2 * 2 + 1) and runs["workers"][1] == 0  # there, none trained here
    assert runs["workers"][0] == runs["sync"][0]  # the score and every fold's choice, as printed
    sync, workers = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("sync", "workers"))
    assert without_times(workers) == without_times(sync) and workers["device"] == "cpu"
    predictions = [(tmp_path / name / "predictions.csv").read_bytes() for name in ("sync", "workers")]
    assert predictions[1] == predictions[0]
    inner = sorted(p.relative_to(tmp_path / "sync") for p in (tmp_path / "sync" / "inner").rglob("*.json"))
    assert len(inner) == SUBJECTS * 2 * 2
    for path in inner:  # the stored inner predictions too, which a rerun reuses
        records = [json.loads((tmp_path / name / path).read_text()) for name in ("sync", "workers")]
        assert [{**r, "seconds": 0} for r in records[1:]] == [{**records[0], "seconds": 0}]


@pytest.fixture
def by_value():
    """This module's functions travel to the workers by value (they cannot import a test module)."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def dying_fold(config, data, fold, subject, device, progress=False):
    """train_fold, except that the worker process exits (no exception, no cleanup) in one inner
    training: outer fold 1 (sub01 removed), grid point lr=0.003, inner fold 0 (sub00)."""
    if "casme2/sub01" not in data.subjects and config.lr == 0.003 and fold == 0:
        import os

        os._exit(1)
    return trainer.train_fold(config, data, fold, subject, device, progress)


@pytest.mark.slow
def test_a_worker_dying_twice_in_a_tune_training_stops_naming_it_and_a_rerun_resumes(
        root, tmp_path, monkeypatch, by_value):
    real = trainer.train_fold
    monkeypatch.setattr(trainer, "train_fold", dying_fold)
    run = tmp_path / "run"
    args = ["tune", "--shards", str(root), *QUICK, "--out", str(run)]
    result = CliRunner().invoke(main, args + ["--workers", "2"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: inner fold 0 (casme2/sub00) of outer fold 1 (casme2/sub01), grid point 0 "
                                    "(lr=0.003): the Dask worker process died on every attempt")
    assert "rerun the same command to resume" in result.output and "Traceback" not in result.output
    stored = {p: p.stat().st_mtime_ns for p in (run / "inner").rglob("*.json")}
    assert stored and run / "inner" / "fold-001" / "point-00" / "inner-00.json" not in stored
    assert not (run / "metrics.json").exists()

    trained = []  # the cause is gone: the rerun trains what is missing, and nothing stored again
    monkeypatch.setattr(trainer, "train_fold", lambda config, data, fold, *a: trained.append(fold)
                        or real(config, data, fold, *a))
    result = CliRunner().invoke(main, args + ["--scheduler", "synchronous"])
    assert result.exit_code == 0, result.output
    assert all(p.stat().st_mtime_ns == t for p, t in stored.items())
    assert len(trained) == SUBJECTS * (2 * 2 + 1) - len(stored)
    reference = CliRunner().invoke(main, ["tune", "--shards", str(root), *QUICK, "--scheduler", "synchronous",
                                          "--out", str(tmp_path / "clean")])
    assert (run / "predictions.csv").read_bytes() == (tmp_path / "clean" / "predictions.csv").read_bytes()
    assert reference.output.replace(str(tmp_path / "clean"), "RUN") == result.output.replace(str(run), "RUN")
