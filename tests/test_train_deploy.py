"""mer-train fit / predict: one final model on all subjects, then labels for new shards."""
import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mer_train
from mer_train.cli import main
from mer_train.deploy import check_prep, fit, load_model, predict
from mer_train.errors import DataError, TrainError
from mer_train.labels import CLASS_SETS

CI = Path(__file__).resolve().parents[1] / "configs" / "ci.yaml"


@pytest.fixture(scope="module")
def sets(fake_shards, tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    train = root / "train"
    fake_shards.write_set(train / "casme2", dataset="casme2", kind="micro", emotions=fake_shards.MICRO_EMOTIONS,
                          subjects=4, per_emotion=2, amplitude=0.3, noise=0.1, seed=1)
    fake_shards.write_set(train / "ckplus", dataset="ckplus", kind="macro", emotions=fake_shards.MACRO_EMOTIONS,
                          subjects=3, per_emotion=2, amplitude=8.0, noise=0.5, seed=2)
    # a held-back person (other noise draws), with one emotion the model was not trained on
    new = fake_shards.write_set(root / "new", dataset="casme2", kind="micro",
                                emotions=fake_shards.MICRO_EMOTIONS + ("fear",), subjects=1, per_emotion=3,
                                amplitude=0.3, noise=0.1, seed=9)
    return train, new


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [{}, {"aux_target": "nearest_macro", "test_adapt_steps": 1}])
def test_fit_then_predict_labels_a_held_back_person_well_above_chance(fake_shards, sets, tmp_path, overrides):
    train, new = sets
    result = fit(CI, shards=[str(train)], out=str(tmp_path / "model"), **overrides)
    checkpoint = load_model(result.model_path)
    assert checkpoint["classes"] == list(CLASS_SETS["casme2-5"].classes) and checkpoint["class_set"] == "casme2-5"
    assert checkpoint["trained_on"]["subjects"] == 4 and checkpoint["protocol"] == (
        "transductive" if overrides else "inductive")
    out = predict(result.model_path, [str(new)], tmp_path / "predictions.csv")
    rows = read(out.out)
    assert list(rows[0]) == ["sample_id", "predicted", *[f"p_{c}" for c in checkpoint["classes"]]]
    assert len(rows) == 18 and out.n == 18  # every sample, the untrained emotion included
    known = [r for r in rows if not r["sample_id"].endswith(("EP015", "EP016", "EP017"))]  # fear is last
    truth = {f"casme2/sub00/EP{i:03d}": e.lower() for i, e in enumerate(np.repeat(fake_shards.MICRO_EMOTIONS, 3))}
    correct = np.mean([r["predicted"] == truth[r["sample_id"]] for r in known])
    assert correct >= 0.6, f"accuracy {correct:.2f} on a held-back person (chance 0.2)"
    for r in rows:
        assert sum(float(r[f"p_{c}"]) for c in checkpoint["classes"]) == pytest.approx(1, abs=1e-4)


@pytest.mark.slow
def test_predict_takes_a_loso_run_directory_and_the_cli_runs_both(sets, tmp_path):
    from click.testing import CliRunner

    train, new = sets
    runner = CliRunner()
    fitted = runner.invoke(main, ["fit", "--shards", str(train), "--config", str(CI), "--set", "steps=5",
                                  "--out", str(tmp_path / "m"), "-q"])
    assert fitted.exit_code == 0, fitted.output
    assert (tmp_path / "m" / "model.pt").is_file()
    run = mer_train.train(CI, shards=[str(train)], out=str(tmp_path / "run"), steps=5)
    labelled = runner.invoke(main, ["predict", "--model", str(run.out), "--shards", str(new),
                                    "--out", str(tmp_path / "p.csv"), "-q"])
    assert labelled.exit_code == 0, labelled.output
    assert "18 samples" in labelled.output
    assert len(read(tmp_path / "p.csv")) == 18
    missing = runner.invoke(main, ["predict", "--model", str(tmp_path / "nothing.pt"), "--shards", str(new),
                                   "--out", str(tmp_path / "q.csv")])
    assert missing.exit_code == 1 and "mer-train fit" in missing.output


def test_predict_refuses_shards_made_with_other_stage_one_settings():
    checkpoint = {"prep": {"size": 128, "flow": "tvl1", "backend": "dlib", "stabilize": True}}
    ok = SimpleNamespace(sources=[{"path": "a", "dataset": "casme2", "prep": dict(checkpoint["prep"])}])
    check_prep(checkpoint, ok)
    wrong = SimpleNamespace(sources=[{"path": "new/shards", "dataset": "casme2",
                                      "prep": {"size": 64, "flow": "farneback", "backend": "dlib", "stabilize": True}}])
    with pytest.raises(DataError) as error:
        check_prep(checkpoint, wrong)
    message = str(error.value)
    assert "new/shards" in message and "flow 'farneback'" in message and "size 64" in message
    assert "mer-prep casme2 RAW OUT --size 128 --flow tvl1 --backend dlib" in message


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"something": 1}, path)
    with pytest.raises(TrainError, match="not a mer-train-model/1 file"):
        load_model(path)
    with pytest.raises(TrainError, match="no fold checkpoints"):
        load_model(tmp_path)
