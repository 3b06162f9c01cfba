"""End to end: fake shard sets -> LOSO with configs/ci.yaml -> run directory, for every method.

The fake data (tests/fake_shards.py, the `fake_root` fixture) plants a class-specific motion blob in
every micro sample (~0.3 px, noise 0.1 px) and the same blobs at ~8 px in CK+-like macro samples.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from sklearn.metrics import balanced_accuracy_score, f1_score

import mer_train
from mer_train import trainer
from mer_train.cli import main
from mer_train.config import load_config
from mer_train.data import FoldSampler, load_data, macro_targets, motion_input
from mer_train.errors import MissingMacroShards

CI = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"
SUBJECTS = 5


def run(fake_root, out, **overrides):
    return mer_train.train(CI, shards=[str(fake_root)], out=str(out), **overrides)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["erm", "multitask", "maml", "lightman"])
def test_every_method_runs_loso_and_learns_the_planted_patterns(fake_root, tmp_path, method):
    result = run(fake_root, tmp_path / "run", method=method)
    overall = result.metrics["overall"]
    assert overall["n"] == 50 and len(result.metrics["folds"]) == SUBJECTS
    assert overall["uf1"] >= 0.7, f"{method} learned too little: UF1 {overall['uf1']:.3f} (chance 0.2)"

    out = result.out
    assert {p.name for p in out.iterdir()} == {"metrics.json", "predictions.csv", "confusion.png", "curves.png",
                                              "config.yaml", "checkpoints"}
    # the pooled metrics are the scikit-learn ones on the predictions written
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50 and {r["subject"] for r in rows} == {f"casme2/sub{i:02d}" for i in range(SUBJECTS)}
    labels, predictions = [r["label"] for r in rows], [r["prediction"] for r in rows]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["uf1"] == pytest.approx(f1_score(labels, predictions, labels=sorted(set(labels)),
                                                               average="macro", zero_division=0))
    assert metrics["overall"]["uar"] == pytest.approx(balanced_accuracy_score(labels, predictions))
    assert metrics["dropped"] == {"micro": {"casme2:fear": 10}, "macro": {"ckplus:anger": 8, "ckplus:sadness": 8}}
    # the resolved config is saved with the run and inside every checkpoint, with its fold
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == method and saved["steps"] == load_config(CI).steps
    checkpoints = sorted((out / "checkpoints").glob("fold-*.pt"))
    assert len(checkpoints) == SUBJECTS
    checkpoint = torch.load(checkpoints[0], weights_only=True)
    assert checkpoint["config"] == saved
    assert checkpoint["fold"]["subject"] == "casme2/sub00"
    assert "casme2/sub00" not in checkpoint["fold"]["train_subjects"]
    assert set(checkpoint["state_dict"]) == set(mer_train.trainer.create_model(
        saved["model"], num_classes=5, input_size=saved["input_size"]).state_dict())


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(fake_root, tmp_path):
    quick = {"method": "lightman", "steps": 4}
    first, second = run(fake_root, tmp_path / "a", **quick), run(fake_root, tmp_path / "b", **quick)
    assert first.metrics["overall"] == second.metrics["overall"]
    assert (first.out / "predictions.csv").read_bytes() == (second.out / "predictions.csv").read_bytes()
    other = run(fake_root, tmp_path / "c", seed=1, **quick)
    assert (other.out / "predictions.csv").read_bytes() != (first.out / "predictions.csv").read_bytes()


@pytest.mark.parametrize("method", ["erm", "lightman"])
def test_after_step_sees_the_predictions_of_a_shorter_schedule(fake_root, method):
    """benchmarks/config_pilot.py reads 3 steps' predictions on the way to 6: the 3-step run's own."""
    config = load_config(CI, {"shards": [str(fake_root)], "method": method, "steps": 6})
    data = load_data(config)
    subject = data.subjects[1]
    test = torch.as_tensor(np.flatnonzero(data.subject == subject))
    seen = {}

    def snapshot(step, model, x):
        seen[step] = trainer.predict_subject(model, [None], x[test], config, None)

    trainer.train_model(config, data, 1, subject, torch.device("cpu"), after_step=snapshot)
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    short = trainer.train_fold(config.replace(steps=3), data, 1, subject, torch.device("cpu"))
    assert np.array_equal(np.asarray(short["probs"]), seen[3]) and not np.array_equal(seen[3], seen[6])


def test_rerun_skips_complete_folds_and_retrains_missing_or_stale_ones(fake_root, tmp_path, monkeypatch):
    first = run(fake_root, tmp_path / "run", method="erm", steps=3)
    trained = []
    original = trainer.train_fold
    monkeypatch.setattr(trainer, "train_fold", lambda config, data, fold, *a, **k: trained.append(fold)
                        or original(config, data, fold, *a, **k))
    (first.out / "checkpoints" / "fold-002.pt").unlink()
    (first.out / "checkpoints" / "fold-003.pt").write_bytes(b"half a file")
    again = run(fake_root, tmp_path / "run", method="erm", steps=3)
    assert trained == [2, 3]
    assert again.metrics["overall"] == first.metrics["overall"]
    trained.clear()
    run(fake_root, tmp_path / "run", method="erm", steps=4)  # another config: nothing is reused
    assert trained == list(range(SUBJECTS))


def test_lightman_and_multitask_without_macro_shards_stop_with_the_fix(fake_root, tmp_path):
    for method in ("lightman", "multitask"):
        result = CliRunner().invoke(main, ["--shards", str(fake_root / "casme2"), "--config", str(CI),
                                           "--method", method, "--out", str(tmp_path / method)])
        assert result.exit_code == 1, result.output
        assert result.output == (
            f"Error: --method {method} aligns micro-expressions with macro-expressions of the same emotion, but no "
            f"macro-expression shard set was found in --shards {fake_root / 'casme2'}. Pass macro-expression shards "
            "with --macro-shards DIR: make them with `mer-prep ckplus RAW OUT` (CK+), or for a try-out "
            "`mer-prep synth ckplus RAW && mer-prep ckplus RAW OUT`. Or train without the auxiliary branch: "
            "--method erm or --method maml.\n")
        assert not (tmp_path / method).exists()
    with pytest.raises(MissingMacroShards):
        mer_train.train(CI, shards=[str(fake_root / "casme2")], out=str(tmp_path / "api"))


@pytest.mark.parametrize("subjects, method, message", [
    (1, "erm", "1 subject(s) in --shards: leave-one-subject-out needs at least 2"),
    (2, "maml", "2 subject(s) in --shards: leave-one-subject-out needs at least 2, and --method maml at least 3 "
                "(tasks take support and query sets from different training subjects); use --method erm"),
])
def test_too_few_subjects_stop_before_training(fake_shards, tmp_path, subjects, method, message):
    shards = fake_shards.write_set(tmp_path / "casme2", dataset="casme2", kind="micro",
                                   emotions=fake_shards.MICRO_EMOTIONS, subjects=subjects, per_emotion=1,
                                   amplitude=0.3, noise=0.1)
    result = CliRunner().invoke(main, ["--shards", str(shards), "--method", method, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_macro_sets_are_found_in_a_folder_of_shard_sets_or_named_explicitly(fake_root):
    folder = load_data(load_config(CI, {"shards": [str(fake_root)]}))
    explicit = load_data(load_config(CI, {"shards": [str(fake_root / "casme2")],
                                          "macro_shards": [str(fake_root / "ckplus")]}))
    for data in (folder, explicit):
        assert data.class_set == "casme2-5" and len(data.y) == 50 and len(data.macro_y) == 24
        assert sorted(data.classes[c] for c in set(data.macro_y.tolist())) == ["disgust", "happiness", "surprise"]
        assert data.subjects == [f"casme2/sub{i:02d}" for i in range(SUBJECTS)]
    megc = load_data(load_config(CI, {"shards": [str(fake_root)], "classes": "megc2019-3"}))
    # negative = disgust + repression; "others" and fear are dropped; CK+ anger and sadness are negative
    assert np.bincount(megc.y.numpy()).tolist() == [20, 10, 10]
    assert np.bincount(megc.macro_y.numpy()).tolist() == [24, 8, 8]
    assert megc.dropped["micro"] == {"casme2:Others": 10, "casme2:fear": 10}


def test_inputs_are_magnitude_normalised_per_sample():
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(2, 2, 48, 48)).astype(np.float32)
    strain = np.abs(rng.normal(size=(2, 48, 48))).astype(np.float32)
    mask = torch.ones(1, 1, 32, 32)
    small = motion_input(flow * 0.01, strain * 0.01, 32, mask, "rms")
    large = motion_input(flow * 30, strain * 30, 32, mask, "rms")
    torch.testing.assert_close(small, large)
    assert small.shape == (2, 3, 32, 32)
    rms = small[:, :2].pow(2).sum(1).mean((1, 2)).sqrt()
    torch.testing.assert_close(rms, torch.ones(2))


def test_targets_leave_out_the_test_subject_and_tasks_keep_subjects_apart(fake_root):
    data = load_data(load_config(CI, {"shards": [str(fake_root)]}))
    targets, has_target = macro_targets(data, exclude_subject="casme2/sub00")
    assert has_target.tolist() == [True, True, False, True, False]  # no macro repression / others
    norms = (targets * data.face_mask).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms[has_target], torch.ones(3))
    left_out = macro_targets(data, exclude_subject="ckplus/sub00")[0]
    assert not torch.allclose(left_out, targets)

    y, subject = data.y.numpy(), data.subject
    train_index = np.flatnonzero(subject != "casme2/sub00")
    sampler = FoldSampler(y, subject, train_index, np.random.default_rng(0))
    for _ in range(20):
        support, query = sampler.episode(shots=2, query_shots=3)
        assert set(subject[support]).isdisjoint(subject[query])
        assert "casme2/sub00" not in set(subject[support]) | set(subject[query])
        assert np.bincount(y[support], minlength=5).tolist() == [2] * 5
        assert np.bincount(y[query], minlength=5).tolist() == [3] * 5
    batch = sampler.batch(4000)
    assert "casme2/sub00" not in set(subject[batch])
    assert np.bincount(y[batch]).min() > 700  # class-balanced


def test_cli_help_texts_have_examples():
    runner = CliRunner()
    commands = main.list_commands(main.make_context("mer-train", ["--help"], resilient_parsing=True))
    assert {"train", "compare", "list", "tune", "fit", "predict"} <= set(commands)
    for args in (["--help"], *([name, "--help"] for name in commands)):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output, args
    top = runner.invoke(main, ["--help"]).output
    assert all(name in top for name in commands)
    compare_help = runner.invoke(main, ["compare", "--help"]).output
    for option in ("--seeds", "--methods", "--shards", "--macro-shards", "--config", "--device", "--set"):
        assert option in compare_help


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "mer_train", "list"], capture_output=True, text=True, check=True)
    assert "methods: lightman, erm, multitask, maml" in result.stdout
    assert "casme2-5: happiness, disgust, repression, surprise, others" in result.stdout


def test_cli_train_is_the_default_command(fake_root, tmp_path):
    result = CliRunner().invoke(main, ["--shards", str(fake_root), "--config", str(CI), "--method", "erm",
                                       "--set", "steps=3", "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"erm on casme2-5, {SUBJECTS} LOSO folds, 50 samples: UF1 ")
    assert result.output.endswith(f"Run directory: {tmp_path / 'run'}\n")


def test_cli_compare_writes_a_markdown_table(fake_root, tmp_path):
    result = CliRunner().invoke(main, ["compare", "--shards", str(fake_root), "--config", str(CI), "--methods",
                                       "erm,multitask", "--seeds", "2", "--set", "steps=3", "--out",
                                       str(tmp_path / "cmp"), "-q"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert table in result.output
    lines = table.splitlines()
    assert lines[2:4] == ["| method | UF1 | UAR |", "|---|---|---|"]
    assert lines[4].startswith("| erm | ") and lines[5].startswith("| multitask | ") and " ± " in lines[4]
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {
        "compare.md", "compare.json", "erm-seed0", "erm-seed1", "multitask-seed0", "multitask-seed1"}


def test_cli_compare_checks_methods_before_training(fake_root, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["compare", "--shards", str(fake_root), "--methods", "erm,tentt"])
    assert result.exit_code == 1
    assert "unknown method(s) tentt" in result.output and "erm+tent" in result.output  # the named variants too
    result = runner.invoke(main, ["compare", "--shards", str(fake_root / "casme2"), "--methods", "erm,lightman",
                                  "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 1 and "--macro-shards" in result.output
    assert not (tmp_path / "cmp").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(fake_root, tmp_path):
    result = CliRunner().invoke(main, ["--shards", str(fake_root), "--device", "cuda", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "sees no CUDA device; use --device cpu (or auto, which falls back to the CPU)" in result.output


def test_compare_table_has_per_dataset_columns_for_a_composite():
    from mer_train.ablation import markdown_table, mean_std

    def metrics(uf1, uar):
        part = {"uf1": uf1, "uar": uar}
        return {"overall": part, "per_dataset": {"casme2": part, "samm": {"uf1": uf1 / 2, "uar": uar / 2}}}

    table = markdown_table({"erm": [metrics(0.5, 0.6), metrics(0.7, 0.8)]}, [0, 1], "megc2019-3")
    assert table.splitlines()[2:] == [
        "| method | UF1 | UAR | casme2 UF1 | casme2 UAR | samm UF1 | samm UAR |",
        "|---|---|---|---|---|---|---|",
        "| erm | 0.600 ± 0.141 | 0.700 ± 0.141 | 0.600 ± 0.141 | 0.700 ± 0.141 | 0.300 ± 0.071 | 0.350 ± 0.071 |",
    ]
    assert mean_std([0.5]) == "0.500 ± 0.000"


def test_a_composite_is_one_loso_over_the_subjects_of_every_dataset(fake_shards, fake_root, tmp_path):
    fake_shards.write_set(tmp_path / "samm", dataset="samm", kind="micro",
                          emotions=("Anger", "Happiness", "Surprise", "Fear"), subjects=3, per_emotion=1,
                          amplitude=0.3, noise=0.1, seed=3)
    result = mer_train.train(CI, shards=[str(fake_root), str(tmp_path / "samm")], method="erm", steps=3,
                             out=str(tmp_path / "run"))
    metrics = result.metrics
    assert metrics["class_set"] == "megc2019-3"  # inferred from two datasets
    assert len(metrics["folds"]) == SUBJECTS + 3
    assert {f["subject"] for f in metrics["folds"]} >= {"samm/sub00", "casme2/sub00"}
    # CASME II: fear and others dropped (40 left); SAMM: fear is negative (12 kept)
    assert metrics["per_dataset"]["casme2"]["n"] == 40 and metrics["per_dataset"]["samm"]["n"] == 12
    assert metrics["overall"]["n"] == 52
    assert metrics["dropped"]["micro"] == {"casme2:Others": 10, "casme2:fear": 10}


def test_runs_of_one_method_and_seed_are_told_apart_by_their_folders():
    """compare's named variants and a study's trees: same method and seed, other run folders."""
    from mer_train.config import TrainConfig
    from mer_train.loso import _run_name

    taken: set[str] = set()
    for out in ("runs/s1/lightman/seed0", "runs/s1/lightman-v1/seed0", "runs/s2/lightman/seed0", "runs/s2/lightman-v1/seed0"):
        taken.add(_run_name(TrainConfig(method="lightman", seed=0, out=out), taken))
    assert taken == {"lightman seed 0", "lightman seed 0 (seed0)", "lightman seed 0 (lightman/seed0)",
                     "lightman seed 0 (lightman-v1/seed0)"}
