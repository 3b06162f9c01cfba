"""The study's paired statistics (benchmarks/study.py): bootstrap interval and permutation test."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from study import Predictions, holm, paired, plan, uf1  # noqa: E402


def predictions(y, p, subjects):
    return Predictions(np.asarray(y), np.asarray(p), np.asarray(subjects), np.arange(len(y)).astype(str))


def fake_runs(rng, accuracy, n_subjects=8, per=12, k=3):
    y = rng.integers(0, k, n_subjects * per)
    subjects = np.repeat([f"s{i}" for i in range(n_subjects)], per)
    right = rng.random(len(y)) < accuracy
    p = np.where(right, y, (y + rng.integers(1, k, len(y))) % k)
    return predictions(y, p, subjects)


def test_uf1_is_the_macro_f1_over_present_classes():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    y[y == 3] = 0  # class 3 absent from the truth: not averaged
    assert uf1(y, p, 4) == np.float64(f1_score(y, p, labels=sorted(set(y)), average="macro"))


def test_identical_variants_differ_by_nothing_and_are_not_significant():
    rng = np.random.default_rng(1)
    runs = [fake_runs(rng, 0.6) for _ in range(3)]
    stat = paired(runs, runs, 3, ["t1", "t1", "t2"], n_boot=200)
    assert stat["delta"] == 0 and stat["low"] == 0 and stat["high"] == 0 and stat["p"] == 1.0


def test_a_clearly_better_variant_is_significant_and_a_small_noisy_gap_is_not():
    rng = np.random.default_rng(2)
    good = [fake_runs(rng, 0.9) for _ in range(4)]
    bad = [predictions(g.y, np.where(rng.random(len(g.y)) < 0.5, g.p, (g.p + 1) % 3), g.subject) for g in good]
    stat = paired(good, bad, 3, ["t1", "t1", "t2", "t2"], n_boot=300)
    assert stat["delta"] > 0.2 and stat["low"] > 0 and stat["p"] < 0.01
    noisy = [predictions(g.y, np.where(rng.random(len(g.y)) < 0.03, (g.p + 1) % 3, g.p), g.subject) for g in good]
    stat = paired(good, noisy, 3, ["t1", "t1", "t2", "t2"], n_boot=300)
    assert stat["low"] < stat["delta"] < stat["high"]


def test_the_plan_pairs_every_variant_on_the_same_trees_and_seeds():
    runs = plan(seeds=(0, 1))
    main = {(r.tree, r.seed) for r in runs if r.part == "main"}
    for variant in {r.variant for r in runs if r.part == "main"}:
        assert {(r.tree, r.seed) for r in runs if r.part == "main" and r.variant == variant} == main
    assert not any(r.tree == "s100" for r in runs if r.part != "pilot")  # the pilot tree is never reported


def test_holm_adjusts_a_family_of_p_values_step_down():
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5]) == [0.5]


def test_pairs_of_two_trees_resample_and_swap_each_subjects_clips_and_labels_together():
    """A factor switched off makes another tree (other clips, other labels) with the same subjects:
    the difference is paired by subject, each subject's rows moving together."""
    rng = np.random.default_rng(3)
    hard = [fake_runs(rng, 0.4, per=10) for _ in range(3)]
    easy = [fake_runs(rng, 0.9, per=14) for _ in range(3)]  # other clips and labels per subject
    stat = paired(easy, hard, 3, ["t1"] * 3, n_boot=300)
    expected = np.mean([uf1(e.y, e.p, 3) - uf1(h.y, h.p, 3) for e, h in zip(easy, hard)])
    assert stat["delta"] == expected and stat["low"] > 0.2 and stat["p"] < 0.01
    same = paired(easy, easy, 3, ["t1"] * 3, n_boot=100)
    assert (same["delta"], same["low"], same["high"], same["p"]) == (0, 0, 0, 1.0)


def test_the_plan_has_the_bound_and_five_seed_attribution():
    runs = plan(seeds=(0, 1, 2, 3, 4))
    bound = [r for r in runs if r.part == "bound"]
    assert {(r.tree, r.seed) for r in bound} == {(r.tree, r.seed) for r in runs if r.part == "main"}
    assert all(r.name.split("/")[1].endswith("-clip-folds") for r in bound)  # never a LOSO run's folder
    assert {r.seed for r in runs if r.part == "attribution"} == {0, 1, 2, 3, 4}


def test_the_fraction_part_trains_on_a_share_of_the_subjects_in_its_own_folders(tmp_path):
    from study import FRACTIONS, run_config

    runs = [r for r in plan(seeds=(0, 1, 2, 3, 4)) if r.part == "fraction"]
    assert {r.fraction for r in runs} == set(FRACTIONS) and all(0 < f < 1 for f in FRACTIONS)
    assert len({r.name for r in runs}) == len(runs)
    assert not {r.name for r in runs} & {r.name for r in plan(seeds=(0, 1, 2, 3, 4)) if r.part != "fraction"}
    assert all(run_config(r, tmp_path).subject_fraction == r.fraction for r in runs)
    main = next(r for r in plan(seeds=(0,)) if r.part == "main")
    assert run_config(main, tmp_path).subject_fraction == 1.0
