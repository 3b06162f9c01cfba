"""benchmarks/stratify.py: a run's pooled predictions joined to the planted truth of its synthetic tree,
scored by planted-amplitude bin and by confounded vs clean subject.

The truth is a real small hard tree's (`synth_truth`: the generator without rendering), the
predictions file is written by mer-train's own writer (`mer_train.report.write_predictions`).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mer_pipeline.synth.generate import synth_truth
from mer_train.report import write_predictions

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CLASSES = ("disgust", "happiness", "others", "repression", "surprise")


def bench(name: str):
    if str(BENCHMARKS) not in sys.path:  # the benchmarks import one another as scripts do
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stratify = bench("stratify")


@pytest.fixture(scope="module")
def truth():
    return synth_truth("casme2", preset="hard", subjects=5, clips_per_subject=6, seed=12)


def predictions(path: Path, truth: dict, predict) -> Path:
    """A predictions.csv as mer-train writes it, for the truth's clips of CLASSES; `predict(clip)` gives
    the predicted class."""
    clips = [c for c in truth["clips"] if c["emotion"] in CLASSES]
    data = SimpleNamespace(sample_id=[c["sample_id"] for c in clips], dataset=[c["dataset"] for c in clips],
                           subject=[c["subject"] for c in clips], emotion=[c["emotion"] for c in clips],
                           y=torch.tensor([CLASSES.index(c["emotion"]) for c in clips]), classes=CLASSES)
    probs = np.full((len(clips), len(CLASSES)), 0.01)
    for i, c in enumerate(clips):
        probs[i, CLASSES.index(predict(c))] = 0.96
    folds = [{"fold": {"index": k}, "sample_id": [c["sample_id"] for c in clips if c["subject"] == s]}
             for k, s in enumerate(sorted({c["subject"] for c in clips}))]
    write_predictions(path, data, np.arange(len(clips)), probs, folds)
    return path


def wrong(clip: dict) -> str:
    return CLASSES[(CLASSES.index(clip["emotion"]) + 1) % len(CLASSES)]


def test_amplitude_bins_separate_what_a_run_got_right(truth, tmp_path):
    strata = stratify.clip_truth([truth])
    floor = 0.25  # a run that sees only motion of 0.25 px of the 128 crop and more
    path = predictions(tmp_path / "predictions.csv", truth,
                       lambda c: c["emotion"] if strata[c["sample_id"]]["aligned_amplitude"] >= floor else wrong(c))
    rows = stratify.read_predictions(tmp_path)  # the run directory
    by_bin = stratify.stratified_scores(rows, strata, "amplitude_bin")
    assert list(by_bin) == [b for b in stratify.bin_order() if b in by_bin]  # weakest first
    assert sum(s["n"] for s in by_bin.values()) == len(rows) == len(path.read_text().splitlines()) - 1
    assert len(by_bin) >= 3, by_bin  # the hard preset spreads amplitudes over the bins
    for label, score in by_bin.items():
        below = label.startswith("<") or float(label.split("-")[0].lstrip(">=")) < floor
        assert score["accuracy"] == (0.0 if below else 1.0), (label, score)
        assert score["uar"] == score["accuracy"]  # all right or all wrong in every class
    overall = stratify.stratify(rows, strata)["all"]
    right = sum(s["accuracy"] * s["n"] for s in by_bin.values())
    assert overall["accuracy"] == pytest.approx(right / len(rows))


def test_confounded_and_clean_subjects_follow_the_truth(truth, tmp_path):
    strata = stratify.clip_truth([truth])
    kinds = {name.split("/")[1]: s["confounders"]["kind"] for name, s in truth["subjects"].items()}
    assert {"none"} < set(kinds.values()), kinds  # both kinds of subject in this tree
    # a run that is right exactly on the confounded subjects
    predictions(tmp_path / "p.csv", truth, lambda c: c["emotion"] if kinds[c["subject"]] != "none" else wrong(c))
    rows = stratify.read_predictions(tmp_path / "p.csv")
    table = stratify.stratify(rows, strata)
    assert set(table["subject_cues"]) == {"confounded", "clean"}
    assert table["subject_cues"]["confounded"]["uf1"] == 1.0 and table["subject_cues"]["clean"]["uf1"] == 0.0
    assert table["subject_cues"]["clean"]["subjects"] == len({r["subject"] for r in rows if kinds[r["subject"]] == "none"})
    assert set(table["cue_kind"]) <= {"none", "light", "head", "both"}
    assert set(table["expression"]) == {"spontaneous"} and set(table["habit"]) <= {"yes", "no"}
    subjects = stratify.per_subject(rows, strata)
    assert {k.split("/")[1] for k in subjects} == {r["subject"] for r in rows}
    for key, score in subjects.items():
        assert score["subject_cues"] == ("clean" if kinds[key.split("/")[1]] == "none" else "confounded")
    assert "| subject_cues | n | subjects | UF1 | UAR | accuracy |" in stratify.markdown(table)


def test_scores_by_hand():
    rows = [{"sample_id": str(i), "subject": s, "label": t, "prediction": p}
            for i, (s, t, p) in enumerate([("a", "x", "x"), ("a", "x", "y"), ("b", "y", "y"), ("b", "z", "y")])]
    score = stratify.scores(rows, ["x", "y", "z"])
    # F1 = 2TP / (2TP + FP + FN): x 2/3 (TP 1, FN 1), y 1/2 (TP 1, FP 2), z 0; recall x 1/2, y 1, z 0
    assert score["uf1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert score["uar"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert (score["n"], score["subjects"], score["accuracy"]) == (4, 2, 0.5)
    assert [stratify.bin_label(v) for v in (0.05, 0.1, 0.3, 0.99, 1.0, 7)] == \
        ["<0.1", "0.1-0.25", "0.25-0.5", "0.5-1", ">=1", ">=1"]


def test_aligned_amplitude_is_the_largest_motion_in_the_crop(truth):
    oracle = bench("template_oracle")
    strata = stratify.clip_truth([truth])
    for clip in truth["clips"][:6]:
        landmarks = truth["subjects"][f"casme2/{clip['subject']}"]["landmarks"]
        field = oracle.aligned_field(clip, landmarks, stratify.ALIGNED_SIZE)
        peak = float(np.sqrt((field ** 2).sum(axis=0)).max())
        assert peak == pytest.approx(strata[clip["sample_id"]]["aligned_amplitude"], rel=0.06), clip["sample_id"]
        assert strata[clip["sample_id"]]["aligned_amplitude"] < clip["amplitude"]  # the crop is smaller than the face


def test_errors_name_the_fix(truth, tmp_path):
    strata = stratify.clip_truth([truth])
    rows = [{"sample_id": "casme2/sub99/EP01_01", "subject": "sub99", "label": "x", "prediction": "x"}]
    with pytest.raises(KeyError, match="raw tree"):
        stratify.stratified_scores(rows, strata, "amplitude_bin")
    with pytest.raises(FileNotFoundError, match="mer-prep synth"):
        stratify.load_truth(tmp_path)
    (tmp_path / "synth_truth.json").write_text(json.dumps(truth))
    assert stratify.load_truth(tmp_path)["dataset"] == "casme2"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="predictions.csv"):
        stratify.read_predictions(tmp_path / "bad.csv")


# ---------------------------------------------------------------------------------------------
# the noise-floor ceiling (benchmarks/ceiling.py): an oracle that knows every planted field

ceiling = bench("ceiling")


def test_planted_inputs_are_the_aligned_fields_at_the_trainers_size(truth):
    strata = stratify.clip_truth([truth])
    ids = [c["sample_id"] for c in truth["clips"][:5]]
    full = ceiling.planted_inputs(truth, ids, stratify.ALIGNED_SIZE, stratify.ALIGNED_SIZE)  # no resizing
    assert full.shape == (5, 2, 128, 128)
    for i, sample_id in enumerate(ids):
        peak = float(full[i].pow(2).sum(0).sqrt().max())
        assert peak == pytest.approx(strata[sample_id]["aligned_amplitude"], rel=0.06), sample_id
    small = ceiling.planted_inputs(truth, ids, stratify.ALIGNED_SIZE, 32)
    assert small.shape == (5, 2, 32, 32)
    # in pixels of the 32 px input: a quarter of the motion, smoothed (antialiased) but pointing the same way
    assert 0.1 < float(small.abs().max() / full.abs().max()) <= 0.25 + 1e-6
    with pytest.raises(KeyError, match="raw tree"):
        ceiling.planted_inputs(truth, ["casme2/sub99/EP01_01"], 128, 32)


def test_cosines_and_the_oracle_by_hand():
    fields = torch.zeros(3, 2, 4, 4)
    fields[0, 0, 0, 0] = 1.0                 # a motion at one pixel, to the right
    fields[1, 1, 3, 3] = 2.0                 # another place, downwards
    fields[2, 0, 0, 0], fields[2, 1, 3, 3] = 1.0, 1.0
    measured = torch.stack([fields[0] * 5, fields[2], torch.zeros(2, 4, 4)])
    similarity = ceiling.cosines(measured, fields)
    assert similarity.shape == (3, 3)
    assert similarity[0] == pytest.approx([1.0, 0.0, 2 ** -0.5])
    assert similarity[1] == pytest.approx([2 ** -0.5, 2 ** -0.5, 1.0])
    assert (similarity[2] == 0).all()        # no motion: no match, not NaN
    labels = np.array(["a", "b", "c"])
    assert list(ceiling.oracle_predictions(similarity, labels)) == ["a", "c", "a"]
    # without its own field, clip 0 is closest to clip 2's; clip 1 still to clip 2's; clip 2 (no
    # motion) ties at 0 and takes the first
    assert list(ceiling.oracle_predictions(similarity, labels, exclude_own=True)) == ["c", "c", "a"]


def test_the_oracle_is_right_on_clean_flow_and_loses_the_weak_clips_first_in_noise(truth):
    strata = stratify.clip_truth([truth])
    clips = [c for c in truth["clips"] if c["emotion"] in CLASSES]
    ids = [c["sample_id"] for c in clips]
    labels = np.array([c["emotion"] for c in clips])
    planted = ceiling.planted_inputs(truth, ids, stratify.ALIGNED_SIZE, 32)
    clean = ceiling.oracle_predictions(ceiling.cosines(planted, planted), labels)
    assert (clean == labels).all()           # own field: cosine 1
    amplitude = np.array([strata[s]["aligned_amplitude"] for s in ids])
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.05, planted.shape)).float()  # px of the 32 input
    hits = ceiling.oracle_predictions(ceiling.cosines(planted + noise, planted), labels) == labels
    strong, weak = amplitude >= np.median(amplitude), amplitude < np.median(amplitude)
    assert hits[strong].mean() > hits[weak].mean(), (hits[strong].mean(), hits[weak].mean())
    assert hits[strong].mean() >= 0.8


def test_the_ceiling_of_real_shards_matches_each_clip_to_its_own_planted_field(synth_casme2, casme2_shards):
    out, _ = casme2_shards
    rows = ceiling.oracle_rows(synth_casme2, out)
    assert rows and {r["sample_id"] for r in rows} <= set(stratify.clip_truth([stratify.load_truth(synth_casme2)]))
    table = ceiling.ceiling(synth_casme2, out)
    assert table["all"]["n"] == len(rows) and sum(s["n"] for s in table["amplitude_bin"].values()) == len(rows)
    # the flow of stage one, in the trainer's input, points like the clip's own planted field (the
    # mapping into the aligned frame is right); the default preset's motions are well above the floor
    own = np.array([r["own_cosine"] for r in rows])
    assert np.median(own) > 0.4, own
    assert table["all"]["accuracy"] >= 0.7, table["all"]
