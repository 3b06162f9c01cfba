"""The LightmanNet study (issue #14): does the consistent, person-adaptive method beat its baselines
on synthetic data with a realistic micro/macro gap, where, and why? The single source of the numbers
in docs/method.md, `## Results`.

    python benchmarks/study.py --parts pilot          # the schedule pilot, on a tree that is never reported
    python benchmarks/study.py                        # every reported run (resumes: finished runs are reused)
    python benchmarks/study.py --seeds 2 --parts main # fewer seeds (a study cut short says so in its tables)
    python benchmarks/study.py --tables-only          # rewrite the tables and plots from finished runs

Data: `mer-prep synth casme2|ckplus --preset hard` (16 subjects x 10 clips, 20 x 6) with generator
seeds PILOT_TREE (the pilot) and TREES (reported), and factor-switch trees of TREES[0] for the
attribution table, prepared with `mer-prep`. Every run is `mer-train --shards ROOT/sets/TREE
--config configs/study.yaml --method M --seed S --set KEY=VALUE ...` (VARIANTS), through
`mer_train.loso.train_runs`: every (run, fold) a task of a local Dask cluster of `--jobs` workers, one
CPU thread each (the clip-fold bound runs whole, in processes). Statistics are paired: every variant runs on
the same trees, folds and seeds; differences are bootstrapped over subjects (within each tree) and
tested by a paired permutation test that swaps the two variants' predictions subject by subject.

Two references bracket LOSO: the noise-floor **ceiling** (benchmarks/ceiling.py: an oracle that
knows every planted field and labels a clip with the best-matching one; no training) and the
subject-dependent **upper bound** (part `bound`: erm and lightman trained exactly as in the main
table, on clip folds, as many as subjects and stratified by class, so that the test subject's other
clips are in training: `clip_folds` regroups the loaded data, the trainer is unchanged).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from synth_sets import synth_set

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "study.yaml"
DOC = REPO / "docs" / "method.md"
PLOT = REPO / "docs" / "study_amplitude.png"
PLOT_BOUNDS = REPO / "docs" / "study_ceiling.png"
PLOT_FRACTION = REPO / "docs" / "study_fraction.png"
BEGIN, END = "<!-- study:begin (written by benchmarks/study.py) -->", "<!-- study:end -->"

PILOT_TREE, TREES, SEEDS = 100, (1, 2, 3), (0, 1, 2, 3, 4)
SIZES = {"casme2": ("--subjects", "16", "--clips-per-subject", "10"),
         "ckplus": ("--subjects", "20", "--clips-per-subject", "6")}
# factor switches of `mer-prep synth --preset hard` (docs/synth.md): one difficulty off at a time
FACTORS = {"no-noise-floor": "--no-noise-floor", "no-imbalance": "--no-imbalance", "no-traits": "--no-traits",
           "no-confounders": "--no-confounders", "no-gap": "--no-gap"}
PILOT_STEPS = (40, 120)


@dataclass(frozen=True)
class Variant:
    method: str
    changes: tuple = ()
    about: str = ""

    @property
    def protocol(self) -> str:
        changes = dict(self.changes)
        return "transductive" if changes.get("test_adapt_steps", 0) or changes.get("subject_norm") else "inductive"


def named(name: str, about: str) -> Variant:
    """A variant of `mer_train.config.VARIANTS` (the ones `mer-train compare --methods` knows)."""
    from mer_train.config import VARIANTS as NAMED

    method, keys = NAMED[name]
    return Variant(method, tuple(keys.items()), about)


VARIANTS = {
    # inductive
    "erm": Variant("erm", (), "CE only"),
    "multitask": Variant("multitask", (("aux_target", "nearest_macro"),), "CE + lambda align (nearest macro), one level"),
    "maml": Variant("maml", (("outer_base_weight", 1.0),), "bi-level, no auxiliary branch"),
    "lightman-v1": named("lightman-v1", "the first reading: class_macro target, beta = 0, base weights evaluated"),
    "lightman": Variant("lightman", (("aux_target", "nearest_macro"), ("outer_base_weight", 1.0)),
                        "nearest-macro target, beta = 1"),
    "lightman-eval-adapt": Variant("lightman", (("aux_target", "nearest_macro"), ("eval_adapt", 4)),
                                   "nearest-macro target, predict with weights adapted on 4 training episodes"),
    "lightman-self": Variant("lightman", (("aux_target", "self"), ("outer_base_weight", 1.0)),
                             "masked photometric self-alignment, beta = 1"),
    "lightman-shuffled": Variant("lightman", (("aux_target", "nearest_macro"), ("outer_base_weight", 1.0),
                                              ("aux_control", "shuffled")), "control: templates permuted"),
    "lightman-random": Variant("lightman", (("aux_target", "nearest_macro"), ("outer_base_weight", 1.0),
                                            ("aux_control", "random")), "control: random smooth fields"),
    # transductive (never in one table with the above)
    "erm+subject-norm": named("erm+subject-norm", "per-subject mean input removed"),
    "erm+tent": named("erm+tent", "TENT: entropy, norm affine, 5 steps"),
    "multitask+ttt": named("multitask+ttt", "ERM + auxiliary, test-time training, no meta-learning"),
    "lightman-person+tta": named("lightman+tta", "meta-trained for person adaptation (task_unit subject), adapted "
                                                 "on the test person"),
}
MAIN = ("erm", "multitask", "maml", "lightman-v1", "lightman", "lightman-eval-adapt", "lightman-self")
# the questions beyond "better than the reference?": each a paired comparison of two variants
QUESTIONS = [("lightman", "lightman-v1", "main", "does the consistent, label-free reading beat the first one?"),
             ("lightman", "multitask", "main", "does level two add anything to the auxiliary branch?"),
             ("lightman", "maml", "main", "does the auxiliary branch add anything to level two?"),
             ("lightman-person+tta", "multitask+ttt", "transductive",
              "does meta-training for person adaptation beat plain test-time training?")]
CONTROLS = ("lightman", "lightman-shuffled", "lightman-random")
TRANSDUCTIVE = ("erm+subject-norm", "erm+tent", "multitask+ttt", "lightman-person+tta")
ATTRIBUTION = ("erm", "lightman")
# the subject-dependent upper bound: the same runs with clip folds (people mixed) instead of LOSO;
# and ERM's on the factor trees whose factor only a person's own labelled clips reveal
BOUND = ("erm", "lightman")
BOUND_FACTORS = ("no-confounders", "no-imbalance", "no-traits")
# UF1 against the share of each fold's training subjects kept (`subject_fraction`, drawn per fold and
# seed, the same subjects for both variants); 1.0 is the main table's runs. The first FRACTION_SEEDS
# seeds only (compute: a lightman run costs ~7 min of one core whatever the fraction).
FRACTIONS, FRACTION_VARIANTS, FRACTION_SEEDS = (0.25, 0.5), ("erm", "lightman"), 2


@dataclass(frozen=True)
class Run:
    part: str
    tree: str          # "s1", or "s1-no-traits" (a factor switch)
    variant: str
    seed: int
    steps: int | None = None  # the pilot's schedules; None = configs/study.yaml
    fraction: float | None = None  # subject_fraction of the fraction part; None = all training subjects

    @property
    def name(self) -> str:
        suffix = (f"-steps{self.steps}" if self.steps is not None
                  else f"-fraction{self.fraction:g}" if self.fraction is not None
                  else "-clip-folds" if self.part.startswith("bound") else "")
        return f"{self.tree}/{self.variant}{suffix}/seed{self.seed}"


def plan(seeds=SEEDS) -> list[Run]:
    """Every run, most telling first: a study cut short keeps its main table over all trees."""
    runs = [Run("pilot", f"s{PILOT_TREE}", v, s, n) for n in PILOT_STEPS for v in ("erm", "lightman") for s in (0, 1)]
    runs += [Run("main", f"s{t}", v, seed) for seed in seeds for t in TREES for v in MAIN]
    runs += [Run("transductive", f"s{t}", v, seed) for seed in seeds for t in TREES for v in TRANSDUCTIVE]
    runs += [Run("controls", f"s{t}", v, seed) for seed in seeds for t in TREES for v in CONTROLS if v not in MAIN]
    runs += [Run("bound", f"s{t}", v, seed) for seed in seeds for t in TREES for v in BOUND]
    runs += [Run("bound-factors", f"s{TREES[0]}-{f}", "erm", seed) for seed in seeds for f in BOUND_FACTORS]
    for seed in seeds:
        runs += [Run("attribution", f"s{TREES[0]}-{f}", v, seed) for f in FACTORS for v in ATTRIBUTION]
    runs += [Run("fraction", f"s{t}", v, seed, fraction=f) for seed in seeds[:FRACTION_SEEDS] for f in FRACTIONS
             for t in TREES for v in FRACTION_VARIANTS]
    return runs


# ----------------------------------------------------------------------------------------------
# data and runs


def make_tree(root: Path, tree: str) -> Path:
    seed, _, factor = tree[1:].partition("-")
    extra = (FACTORS[factor],) if factor else ()
    for dataset in ("casme2", "ckplus"):
        synth_set(dataset, root / "raw" / f"{dataset}-{tree}", root / "sets" / tree / dataset,
                  ("--preset", "hard", "--seed", seed, *SIZES[dataset], *extra, "--workers", "2"),
                  ("--workers", "2", "-q", "--shard-size", "16"))
    return root / "sets" / tree


_DATA: dict[str, object] = {}


DEVICE = "cpu"  # --device: the runs are small; a GPU runs them unchanged with --device cuda


def run_config(run: Run, root: Path):
    from mer_train.config import load_config

    variant = VARIANTS[run.variant]
    changes = (dict(variant.changes) | ({"steps": run.steps} if run.steps else {})
               | ({"subject_fraction": run.fraction} if run.fraction is not None else {}))
    return load_config(CONFIG, {"shards": [str(root / "sets" / run.tree)], "method": variant.method,
                                "seed": run.seed, "out": str(root / "runs" / run.name), "device": DEVICE, **changes})


def train_bound(run: Run, root: str, device: str = "cpu") -> dict:
    """Train the clip-fold bound run `run` (in a worker process; a tree's data is loaded once per
    process, then regrouped into clip folds)."""
    import mer_train
    from mer_train.data import load_data

    global DEVICE
    DEVICE, root = device, Path(root)
    config = run_config(run, root)
    if run.tree not in _DATA:  # a few MB per tree
        _DATA[run.tree] = load_data(config)
    return mer_train.train(config, data=clip_folds(_DATA[run.tree], run.seed), scheduler="synchronous").metrics


def fold_of_clips(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) a fold 0..k-1 for each clip, stratified by class: each class's clips, shuffled, are dealt
    to the folds in turn, going on where the previous class stopped (folds of N/k clips +-1, each
    with its share of every class). Drawn from (seed, 14): each training seed has its own folds."""
    rng = np.random.default_rng([seed, 14])
    fold, start = np.empty(len(y), dtype=int), 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = (start + np.arange(len(members))) % k
        start += len(members)
    return fold


def clip_folds(data, seed: int):
    """`data` (a MerData) with its subjects replaced by as many clip folds as it has subjects: LOSO
    over them is k-fold cross-validation over clips with people mixed (the test subject's other
    clips are in training), with LOSO's number of folds and mean training-set size. The trainer is
    unchanged; meta-learning tasks are then drawn over folds, not people."""
    from dataclasses import replace

    fold = fold_of_clips(data.y.numpy(), len(data.subjects), seed)
    return replace(data, subject=np.array([f"{d}/clip-fold{j:02d}" for d, j in zip(data.dataset, fold)], dtype=object))


def _same_config(config, path: Path) -> bool:
    if not path.is_file():
        return False
    saved = yaml.safe_load(path.read_text())
    keep = lambda c: {k: v for k, v in c.items() if k not in ("out", "shards", "macro_shards", "eval_batch_size")}  # noqa: E731
    return keep(saved) == keep(config.to_dict())


def run_all(runs: list[Run], root: Path, jobs: int, device: str = "cpu") -> None:
    """Train every run not finished with its current config. The LOSO runs go to
    `mer_train.train_runs`: every (run, fold) one task of a local Dask cluster of `jobs` workers (one
    thread each, a tree's shards loaded once per worker), under one progress bar, each fold's
    checkpoint kept, so an interrupted study resumes mid-run. The clip-fold bound runs train on data
    regrouped in this process (`clip_folds`), so they run whole, `jobs` at a time, in processes."""
    from mer_train.loso import train_runs

    global DEVICE
    DEVICE, start = device, time.perf_counter()
    todo = [run for run in runs if not _finished(run, root)]
    loso = [run for run in todo if not run.part.startswith("bound")]
    if loso:
        results = train_runs([run_config(run, root) for run in loso], progress=True, workers=jobs, desc="study")
        for run, result in zip(loso, results):
            _log_run(start, run, result.metrics)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(train_bound, run, str(root), device): run
                   for run in todo if run.part.startswith("bound")}
        for future in as_completed(futures):
            _log_run(start, futures[future], future.result())


def _finished(run: Run, root: Path) -> bool:
    done = root / "runs" / run.name / "metrics.json"
    return done.is_file() and _same_config(run_config(run, root), done.parent / "config.yaml")


def _log_run(start: float, run: Run, metrics: dict) -> None:
    logging.info("[%5.0f s] %-50s UF1 %.3f UAR %.3f", time.perf_counter() - start, run.name,
                 metrics["overall"]["uf1"], metrics["overall"]["uar"])


# ----------------------------------------------------------------------------------------------
# statistics: paired over the same trees, subjects and seeds


@dataclass
class Predictions:
    """The pooled LOSO predictions of one run: integer labels, predictions and subject of each sample."""

    y: np.ndarray
    p: np.ndarray
    subject: np.ndarray
    sample_id: np.ndarray


def read_run(root: Path, run: Run, classes: dict[str, int]) -> Predictions | None:
    path = root / "runs" / run.name / "predictions.csv"
    if not path.is_file() or not (path.parent / "metrics.json").is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["sample_id"])
    code = lambda name: classes.setdefault(name, len(classes))  # noqa: E731
    return Predictions(np.array([code(r["label"]) for r in rows]), np.array([code(r["prediction"]) for r in rows]),
                       np.array([r["subject"] for r in rows]), np.array([r["sample_id"] for r in rows]))


def uf1(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """MEGC UF1 over the classes present in y (as mer_train.metrics)."""
    return uf1_of(confusion(y, p, k))


def confusion(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows true class, columns predicted."""
    cm = np.zeros((k, k))
    np.add.at(cm, (np.asarray(y, dtype=int), np.asarray(p, dtype=int)), 1)
    return cm


def uf1_of(cm: np.ndarray):
    """UF1 of a confusion matrix (k, k), over the classes present in its rows; of a stack of them
    (n, k, k), an (n,) array."""
    present = cm.sum(-1) > 0
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    f1 = 2 * tp / np.maximum(cm.sum(-1) + cm.sum(-2), 1)
    score = (f1 * present).sum(-1) / present.sum(-1)
    return float(score) if cm.ndim == 2 else score


def paired(a: list[Predictions], b: list[Predictions], k: int, tree_of: list[str], n_boot: int = 2000,
           rng_seed: int = 0) -> dict:
    """The difference UF1(a) - UF1(b), averaged over paired runs (same tree and seed), with a 95 %
    bootstrap interval (subjects resampled within each tree, every seed of a tree with the same
    draw) and a two-sided paired permutation p (each (tree, subject) swaps a and b with prob 1/2).

    a and b are paired by subject: usually the same clips (two variants on one tree), but they may
    be two trees with the same subjects (a factor switched off: other clips or labels), in which
    case a subject's clips and labels are resampled and swapped together. `tree_of` names the
    group of each pair within which subjects are resampled."""
    rng = np.random.default_rng(rng_seed)
    trees = sorted(set(tree_of))
    observed = float(np.mean([uf1(x.y, x.p, k) - uf1(z.y, z.p, k) for x, z in zip(a, b)]))
    subjects = {t: np.unique(next(x.subject for x, tt in zip(a, tree_of) if tt == t)) for t in trees}
    draws = [{t: np.searchsorted(subjects[t], rng.choice(subjects[t], size=len(subjects[t]))) for t in trees}
             for _ in range(n_boot)]
    swaps = [{t: np.array([rng.random() < 0.5 for _ in subjects[t]]) for t in trees} for _ in range(n_boot)]
    # a resampled or swapped pooled score is a sum of per-subject confusion matrices (UF1 depends
    # on the pooled matrix only): every draw of a pair at once
    boot, perms = np.zeros(n_boot), np.zeros(n_boot)
    for x, z, t in zip(a, b, tree_of):
        in_a = np.stack([confusion(x.y[x.subject == s], x.p[x.subject == s], k).ravel() for s in subjects[t]])  # (S, k k)
        in_b = np.stack([confusion(z.y[z.subject == s], z.p[z.subject == s], k).ravel() for s in subjects[t]])
        weight = np.stack([np.bincount(d[t], minlength=len(subjects[t])) for d in draws]).astype(float)  # (n_boot, S)
        flip = np.stack([sw[t] for sw in swaps]).astype(float)                                           # (n_boot, S)
        boot += uf1_of((weight @ in_a).reshape(-1, k, k)) - uf1_of((weight @ in_b).reshape(-1, k, k))
        moved = flip @ (in_b - in_a)  # what the swapped subjects move from b into a
        perms += uf1_of((in_a.sum(0) + moved).reshape(-1, k, k)) - uf1_of((in_b.sum(0) - moved).reshape(-1, k, k))
    boot, perms = boot / len(a), perms / len(a)
    p_value = (1 + sum(abs(d) >= abs(observed) - 1e-12 for d in perms)) / (1 + n_boot)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"delta": observed, "low": float(low), "high": float(high), "p": float(p_value), "pairs": len(a)}


def mean_sd(values: list[float]) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"


def verdict(stat: dict, holm: float | None = None) -> str:
    """ΔUF1 [CI] | p | significance; `holm` is the Holm-adjusted p of a family of comparisons."""
    p = stat["p"] if holm is None else holm
    sig = "significant" if p < 0.05 and (stat["low"] > 0 or stat["high"] < 0) else "not significant"
    def fmt(value: float) -> str:
        return f"{value:.3f}" if value >= 0.001 else "<0.001"  # 2000 permutations: p >= 1/2001

    adjusted = "" if holm is None else f" (Holm {fmt(holm)})"
    return f"{stat['delta']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}] | {fmt(stat['p'])}{adjusted} | {sig}"


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (same order as given)."""
    order = np.argsort(p_values)
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


# ----------------------------------------------------------------------------------------------
# tables


def comparison(root: Path, part: str, variants, reference: str, trees: list[str], seeds, title: str) -> list[str]:
    """Rows of `variants` on `trees` x `seeds` runs that all of them finished (paired), against `reference`."""
    classes: dict[str, int] = {}
    preds = {v: {(t, s): read_run(root, Run(part if v not in MAIN else "main", t, v, s), classes)
                 for t in trees for s in seeds} for v in variants}
    pairs = [(t, s) for t in trees for s in seeds if all(preds[v][(t, s)] is not None for v in variants)]
    lines = [title, "", f"Paired runs: {len(pairs)} (trees {', '.join(sorted({t for t, _ in pairs})) or '-'}; "
             f"seeds {', '.join(map(str, sorted({s for _, s in pairs}))) or '-'}).", "",
             f"| variant | UF1 | accuracy | ΔUF1 vs {reference} [95% CI] | p | |", "|---|---|---|---|---|---|"]
    if not pairs:
        return lines + ["| (no finished runs yet) | | | | | |", ""]
    k = len(classes)
    stats = {v: paired([preds[v][key] for key in pairs], [preds[reference][key] for key in pairs], k,
                       [t for t, _ in pairs]) for v in variants if v != reference}
    adjusted = dict(zip(stats, holm([st["p"] for st in stats.values()]))) if stats else {}
    for v in variants:
        runs = [preds[v][key] for key in pairs]
        scores = [uf1(r.y, r.p, k) for r in runs]
        accuracy = [float((r.y == r.p).mean()) for r in runs]
        cell = "reference | |" if v == reference else verdict(stats[v], adjusted[v])
        lines.append(f"| {v} ({VARIANTS[v].about}) | {mean_sd(scores)} | {mean_sd(accuracy)} | {cell} |")
    return lines + [""]


def questions(root: Path, trees: list[str], seeds) -> list[str]:
    lines = ["**The questions, paired** (same trees, folds and seeds; ΔUF1 = first - second; Holm over the "
             "four questions)", "", "| question | first vs second | pairs | ΔUF1 [95% CI] | p | |",
             "|---|---|---|---|---|---|"]
    found = []
    for first, second, part, question in QUESTIONS:
        classes: dict[str, int] = {}
        a = {(t, s): read_run(root, Run(part, t, first, s), classes) for t in trees for s in seeds}
        b = {(t, s): read_run(root, Run(part, t, second, s), classes) for t in trees for s in seeds}
        keys = [key for key in a if a[key] is not None and b[key] is not None]
        if keys:
            stat = paired([a[key] for key in keys], [b[key] for key in keys], len(classes), [t for t, _ in keys])
            found.append((question, first, second, len(keys), stat))
    for (question, first, second, n, stat), adjusted in zip(found, holm([f[-1]["p"] for f in found])):
        lines.append(f"| {question} | {first} vs {second} | {n} | {verdict(stat, adjusted)} |")
    return lines + [""]


def compact(stat: dict, holm_p: float | None = None) -> str:
    """A verdict in one table cell."""
    return verdict(stat, holm_p).replace(" | ", ", ").replace(", significant", ", **significant**")


def attribution(root: Path, seeds) -> list[str]:
    """UF1 with one difficulty switched off, and its paired difference from the hard tree (same
    subjects and seeds; a subject's clips and labels resampled and swapped together, since a
    switched-off factor can change the clips) and lightman - erm on each tree."""
    hard = f"s{TREES[0]}"
    lines = [f"**Factor attribution** (tree {hard}, one difficulty of the hard preset switched off at a time; UF1 "
             "mean ± std over seeds; Δ paired by seed and subject, 95 % bootstrap interval over subjects, "
             "permutation p, Holm over the five factors in each column)", "",
             "| tree | runs | erm | lightman | erm: ΔUF1 vs hard | lightman: ΔUF1 vs hard | lightman - erm |",
             "|---|---|---|---|---|---|---|"]
    classes: dict[str, int] = {}
    trees = [hard] + [f"{hard}-{f}" for f in FACTORS]
    preds = {(tree, v, s): read_run(root, Run("attribution", tree, v, s), classes)
             for tree in trees for v in ATTRIBUTION for s in seeds}
    k = len(classes)
    rows: dict[str, dict] = {}
    for tree in trees:
        found = [s for s in seeds if all(preds[(t, v, s)] is not None for t in {hard, tree} for v in ATTRIBUTION)]
        if not found:
            continue
        row = {"n": len(found), **{v: [uf1(preds[(tree, v, s)].y, preds[(tree, v, s)].p, k) for s in found]
                                   for v in ATTRIBUTION}}
        for v in ATTRIBUTION if tree != hard else ():
            row[f"d-{v}"] = paired([preds[(tree, v, s)] for s in found], [preds[(hard, v, s)] for s in found], k,
                                   [hard] * len(found))
        row["d-method"] = paired([preds[(tree, "lightman", s)] for s in found],
                                 [preds[(tree, "erm", s)] for s in found], k, [tree] * len(found))
        rows[tree] = row
    adjusted = {}
    for key in ("d-erm", "d-lightman", "d-method"):
        family = [tree for tree in rows if key in rows[tree]]
        adjusted.update({(tree, key): h for tree, h in zip(family, holm([rows[tree][key]["p"] for tree in family]))})
    for tree, row in rows.items():
        cells = [compact(row[key], adjusted[(tree, key)]) if key in row else "reference"
                 for key in ("d-erm", "d-lightman", "d-method")]
        lines.append(f"| {tree} | {row['n']} | {mean_sd(row['erm'])} | {mean_sd(row['lightman'])} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


_ORACLE: dict[tuple, list[dict]] = {}


def oracle(root: Path, tree: int, exclude_own: bool = False) -> list[dict]:
    """The noise-floor oracle's prediction rows (benchmarks/ceiling.py) on a reported tree, computed once."""
    from ceiling import oracle_rows

    key = (str(root), tree, exclude_own)
    if key not in _ORACLE:
        _ORACLE[key] = oracle_rows(root / "raw" / f"casme2-s{tree}", root / "sets" / f"s{tree}" / "casme2", CONFIG,
                                   exclude_own)
    return _ORACLE[key]


def oracle_predictions(root: Path, classes: dict[str, int], exclude_own: bool = False) -> dict[str, Predictions]:
    """The noise-floor oracle on each reported tree, as Predictions."""
    out = {}
    for t in TREES:
        rows = sorted(oracle(root, t, exclude_own), key=lambda r: r["sample_id"])
        code = lambda name: classes.setdefault(name, len(classes))  # noqa: E731
        out[f"s{t}"] = Predictions(np.array([code(r["label"]) for r in rows]),
                                   np.array([code(r["prediction"]) for r in rows]),
                                   np.array([r["subject"] for r in rows]), np.array([r["sample_id"] for r in rows]))
    return out


def read_bound(root: Path, tree: str, variant: str, seed: int, classes: dict[str, int],
               truth: dict) -> Predictions | None:
    """A clip-fold run's predictions with each clip's real subject (its predictions.csv names the
    fold), so that it pairs with LOSO runs subject by subject."""
    found = read_run(root, Run("bound", tree, variant, seed), classes)
    if found is not None:
        found.subject = np.array([f"{truth[s]['dataset']}/{truth[s]['subject']}" for s in found.sample_id])
    return found


def bound_runs(root: Path, seeds, truths: dict, classes: dict[str, int]) -> dict[str, dict]:
    """name -> {(tree, seed): Predictions} of the ceiling, the clip-fold bound and LOSO, on the
    (tree, seed) pairs that all of them finished; the oracle has no seed (the same on every one)."""
    trees = [f"s{t}" for t in TREES]
    oracle = oracle_predictions(root, classes)
    nearest = oracle_predictions(root, classes, exclude_own=True)
    runs = {f"{v}, clip folds": {(t, s): read_bound(root, t, v, s, classes, truths[int(t[1:])])
                                 for t in trees for s in seeds} for v in BOUND}
    runs |= {f"{v}, LOSO": {(t, s): read_run(root, Run("main", t, v, s), classes) for t in trees for s in seeds}
             for v in BOUND}
    pairs = [(t, s) for t in trees for s in seeds if all(r[(t, s)] is not None for r in runs.values())]
    table = {"ceiling": {key: oracle[key[0]] for key in pairs},
             "nearest other": {key: nearest[key[0]] for key in pairs}}
    return table | {name: {key: r[key] for key in pairs} for name, r in runs.items()}


GAP = [("ceiling", "erm, LOSO", "the whole gap: what ERM leaves below the flow's ceiling"),
       ("ceiling", "erm, clip folds", "not reached even with the person's own clips in training (ERM)"),
       ("erm, clip folds", "erm, LOSO", "what person-to-person differences cost ERM"),
       ("lightman, clip folds", "lightman, LOSO", "what person-to-person differences cost lightman"),
       ("lightman, LOSO", "erm, LOSO", "what lightman recovers under LOSO"),
       ("lightman, clip folds", "erm, clip folds", "lightman vs ERM with the person's own clips in training")]


def bounds(root: Path, seeds, truths: dict) -> list[str]:
    """The noise-floor ceiling and the subject-dependent upper bound against LOSO (overall, paired)."""
    classes: dict[str, int] = {}
    table = bound_runs(root, seeds, truths, classes)
    pairs = list(table["ceiling"])
    trees = sorted({t for t, _ in pairs})
    lines = ["**Ceiling and upper bound** (trees s1-s3, casme2-5): the **ceiling** is an oracle that knows every clip's "
             "planted apex field and labels a clip with the label of the planted field, over all the tree's clips, "
             "that best matches (cosine) the flow the trainer sees (benchmarks/ceiling.py; no seed); *nearest other* "
             "is the same oracle with the clip's own field left out; the **upper bound** trains erm and lightman "
             "exactly as in the main table but on clip folds (as many as subjects, stratified by class, people "
             "mixed: the test subject's other clips are in training) instead of LOSO. UF1 per tree (mean over seeds) "
             "and mean ± std over the paired (tree, seed) runs", "",
             f"Paired runs: {len(pairs)} (trees {', '.join(trees) or '-'}; seeds "
             f"{', '.join(map(str, sorted({s for _, s in pairs}))) or '-'}).", ""]
    if not pairs:
        return lines + ["(no finished clip-fold runs yet)", ""]
    k = len(classes)
    score = {name: {key: uf1(p.y, p.p, k) for key, p in runs.items()} for name, runs in table.items()}
    lines += ["| | " + " | ".join(trees) + " | UF1 | accuracy |", "|---" * (3 + len(trees)) + "|"]
    for name, runs in table.items():
        per_tree = [np.mean([score[name][key] for key in pairs if key[0] == t]) for t in trees]
        accuracy = [float((p.y == p.p).mean()) for p in runs.values()]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in per_tree)
                     + f" | {mean_sd(list(score[name].values()))} | {mean_sd(accuracy)} |")
    lines += ["", "**The gap, decomposed** (ΔUF1 = first - second, paired by tree, seed and subject; Holm over the six "
              "rows)", "", "| part of the gap | first - second | ΔUF1 [95% CI] | p | |", "|---|---|---|---|---|"]
    stats = [paired([table[a][key] for key in pairs], [table[b][key] for key in pairs], k, [t for t, _ in pairs])
             for a, b, _ in GAP]
    for (a, b, about), stat, adjusted in zip(GAP, stats, holm([st["p"] for st in stats])):
        lines.append(f"| {about} | {a} - {b} | {verdict(stat, adjusted)} |")
    return lines + [""]


def bound_factors(root: Path, seeds) -> list[str]:
    """ERM's clip-fold bound against its LOSO run on the hard tree and on the factor trees: how much
    of the person-to-person gap is the person's label mix, cues and traits."""
    hard = f"s{TREES[0]}"
    lines = [f"**The bound without one factor** (ERM, tree {hard} and its factor switches; ΔUF1 = clip folds - LOSO, "
             "paired by seed and subject; Holm over the rows)", "",
             "| tree | pairs | erm, LOSO | erm, clip folds | ΔUF1 [95% CI] | p | |", "|---|---|---|---|---|---|---|"]
    rows = []
    for tree in [hard] + [f"{hard}-{f}" for f in BOUND_FACTORS]:
        classes: dict[str, int] = {}
        truth = _tree_truth(root, tree)
        found = [(read_bound(root, tree, "erm", s, classes, truth),
                  read_run(root, Run("attribution", tree, "erm", s), classes)) for s in seeds]
        found = [(a, b) for a, b in found if a is not None and b is not None]
        if found:
            k = len(classes)
            stat = paired([a for a, _ in found], [b for _, b in found], k, [tree] * len(found))
            rows.append((tree, found, k, stat))
    for (tree, found, k, stat), adjusted in zip(rows, holm([r[-1]["p"] for r in rows])):
        lines.append(f"| {tree} | {len(found)} | {mean_sd([uf1(b.y, b.p, k) for _, b in found])} | "
                     f"{mean_sd([uf1(a.y, a.p, k) for a, _ in found])} | {verdict(stat, adjusted)} |")
    return lines + [""]


def _tree_truth(root: Path, tree: str) -> dict:
    from stratify import clip_truth, load_truth

    return clip_truth([load_truth(root / "raw" / f"casme2-{tree}")])


def bound_strata(root: Path, seeds, truths: dict) -> dict[str, dict[str, list[float]]]:
    """name -> amplitude bin -> UF1 of each tree (ceiling) or each finished (tree, seed) run."""
    from stratify import stratified_scores

    found: dict[str, dict[str, list[float]]] = {"ceiling": {}}
    for t in TREES:
        for key, value in stratified_scores(oracle(root, t), truths[t], "amplitude_bin").items():
            found["ceiling"].setdefault(key, []).append(value["uf1"])
    for v in BOUND:
        found[f"{v}, LOSO"] = stratum_scores(root, seeds, v, "main", "amplitude_bin", truths)
        found[f"{v}, clip folds"] = stratum_scores(root, seeds, v, "bound", "amplitude_bin", truths)
    return found


def bound_bins(root: Path, seeds, truths: dict, strata: dict) -> list[str]:
    from stratify import bin_order

    clips: dict[str, int] = {}
    for t in TREES:  # the clips of the class set, of all three trees
        for row in oracle(root, t):
            key = truths[t][row["sample_id"]]["amplitude_bin"]
            clips[key] = clips.get(key, 0) + 1
    names = list(strata)
    lines = ["**By planted amplitude** (aligned pixels of the 128 px crop; UF1 within the bin, mean ± std over trees "
             "for the ceiling, over (tree, seed) runs for the others; clips: the three trees together)", "",
             "| amplitude bin | clips | " + " | ".join(names) + " |", "|---" * (2 + len(names)) + "|"]
    for b in bin_order():
        lines.append(f"| {b} | {clips.get(b, 0)} | "
                     + " | ".join(mean_sd(strata[n][b]) if strata[n].get(b) else "-" for n in names) + " |")
    return lines + [""]


def pilot(root: Path) -> list[str]:
    lines = [f"**Pilot** (tree s{PILOT_TREE}, never reported): UF1 and final training loss by schedule length "
             "(seeds 0-1)", "", "| variant | " + " | ".join(f"{n} steps UF1 | {n} steps loss" for n in PILOT_STEPS) + " |",
             "|---" * (1 + 2 * len(PILOT_STEPS)) + "|"]
    for v in ("erm", "lightman"):
        cells = []
        for n in PILOT_STEPS:
            ms = [json.loads(p.read_text()) for s in (0, 1)
                  if (p := root / "runs" / Run("pilot", f"s{PILOT_TREE}", v, s, n).name / "metrics.json").is_file()]
            cells += [mean_sd([m["overall"]["uf1"] for m in ms]) if ms else "-",
                      mean_sd([np.mean([f["final_loss"] for f in m["folds"]]) for m in ms]) if ms else "-"]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines + [""]


def stratum_scores(root: Path, seeds, variant: str, part: str, by: str, truths: dict) -> dict[str, list[float]]:
    """UF1 per stratum `by` of every finished run of `variant` on the reported trees (stratify.py)."""
    from stratify import read_predictions, stratified_scores

    found: dict[str, list[float]] = {}
    for t in TREES:
        for s in seeds:
            path = root / "runs" / Run(part, f"s{t}", variant, s).name / "predictions.csv"
            if path.is_file():
                for key, score in stratified_scores(read_predictions(path), truths[t], by).items():
                    found.setdefault(key, []).append(score["uf1"])
    return found


def tree_truths(root: Path) -> dict[int, dict]:
    """The planted truth of each reported casme2 tree, read once."""
    sys.path.insert(0, str(Path(__file__).parent))
    from stratify import clip_truth, load_truth

    return {t: clip_truth([load_truth(root / "raw" / f"casme2-s{t}")]) for t in TREES}


def strata(root: Path, seeds, truths: dict) -> list[str]:
    """UF1 by planted amplitude and by confounded vs clean subject (benchmarks/stratify.py)."""
    from stratify import bin_order

    lines = ["**Where it helps** (pooled over trees and seeds of the main table; UF1 per stratum)", ""]
    for by in ("amplitude_bin", "subject_cues"):
        table: dict[str, dict[str, list]] = {}
        for v in ("erm", "lightman-v1", "lightman"):
            for key, values in stratum_scores(root, seeds, v, "main", by, truths).items():
                table.setdefault(key, {})[v] = values
        if table:
            lines += [f"| {by} | erm | lightman-v1 | lightman |", "|---|---|---|---|"]
            order = bin_order() if by == "amplitude_bin" else sorted(table)
            for key in [k for k in order if k in table]:
                lines.append(f"| {key} | " + " | ".join(mean_sd(table[key][v]) if table[key].get(v) else "-"
                                                       for v in ("erm", "lightman-v1", "lightman")) + " |")
            lines.append("")
    return lines


def plot_amplitude(root: Path, seeds, path: Path, truths: dict) -> None:
    """UF1 by planted amplitude (aligned pixels) for the main variants: where the signal is."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from stratify import bin_order

    shown = [("erm", "main"), ("lightman-v1", "main"), ("lightman", "main"), ("lightman-person+tta", "transductive")]
    bins = bin_order()
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
    for i, (variant, part) in enumerate(shown):
        values = {b: [] for b in bins} | stratum_scores(root, seeds, variant, part, "amplitude_bin", truths)
        xs = [j + (i - 1.5) * 0.08 for j, b in enumerate(bins) if values[b]]
        if xs:
            ax.errorbar(xs, [np.mean(values[b]) for b in bins if values[b]],
                        yerr=[np.std(values[b], ddof=1) if len(values[b]) > 1 else 0 for b in bins if values[b]],
                        marker="o", capsize=3, label=variant + (" (transductive)" if part == "transductive" else ""))
    ax.set_xticks(range(len(bins)), bins)
    ax.set_xlabel("planted amplitude at apex, pixels of the 128 px aligned face")
    ax.set_ylabel("UF1 within the bin")
    ax.set_title(f"Hard synthetic CASME II, trees s{', s'.join(map(str, TREES))}, seeds 0-{len(seeds) - 1}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fraction_scores(root: Path, seeds) -> tuple[dict, dict, int]:
    """Predictions of the fraction part by (variant, fraction) -> {(tree, seed): Predictions}; 1.0 =
    the main table's runs of the same trees and seeds."""
    classes: dict[str, int] = {}
    preds = {}
    for v in FRACTION_VARIANTS:
        for f in (*FRACTIONS, 1.0):
            run = lambda t, s: Run("main", t, v, s) if f == 1.0 else Run("fraction", t, v, s, fraction=f)  # noqa: E731
            preds[(v, f)] = {(f"s{t}", s): read_run(root, run(f"s{t}", s), classes)
                             for t in TREES for s in seeds[:FRACTION_SEEDS]}
    return preds, classes, len(classes)


def fractions(root: Path, seeds) -> list[str]:
    """UF1 of erm and lightman with a share of each fold's training subjects, and lightman - erm at
    each share, paired by tree, seed and subject."""
    preds, _, k = fraction_scores(root, seeds)
    lines = ["**UF1 vs the share of training subjects** (`subject_fraction`: each fold trains on that share of its "
             "15 training subjects, drawn per fold and seed, the same for both variants; 1.0 = the main table; trees "
             f"s1-s3, seed{'s' if FRACTION_SEEDS > 1 else ''} 0{f'-{FRACTION_SEEDS - 1}' if FRACTION_SEEDS > 1 else ''}; "
             "Holm over the shares)", "",
             "| share of training subjects | subjects per fold | runs | erm | lightman | lightman - erm [95% CI] | p | |",
             "|---|---|---|---|---|---|---|---|"]
    rows = []
    for f in (*FRACTIONS, 1.0):
        keys = [key for key in preds[("erm", f)] if all(preds[(v, f)][key] is not None for v in FRACTION_VARIANTS)]
        if not keys:
            continue
        scores = {v: [uf1(preds[(v, f)][key].y, preds[(v, f)][key].p, k) for key in keys] for v in FRACTION_VARIANTS}
        stat = paired([preds[("lightman", f)][key] for key in keys], [preds[("erm", f)][key] for key in keys], k,
                      [t for t, _ in keys])
        rows.append((f, len(keys), scores, stat))
    for (f, n, scores, stat), adjusted in zip(rows, holm([r[-1]["p"] for r in rows])):
        kept = max(2, round(f * 15))
        lines.append(f"| {f:g} | {kept} | {n} | {mean_sd(scores['erm'])} | {mean_sd(scores['lightman'])} | "
                     f"{verdict(stat, adjusted)} |")
    if not rows:
        lines.append("| (no finished runs yet) | | | | | | | |")
    return lines + [""]


def plot_fraction(root: Path, seeds, path: Path) -> None:
    """UF1 against the share of training subjects, erm and lightman (mean and std over trees)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds, _, k = fraction_scores(root, seeds)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for i, (v, color) in enumerate(zip(FRACTION_VARIANTS, ("C0", "C2"))):
        shown = [f for f in (*FRACTIONS, 1.0) if all(p is not None for p in preds[(v, f)].values())]
        values = [[uf1(p.y, p.p, k) for p in preds[(v, f)].values()] for f in shown]
        if shown:
            ax.errorbar([f + (i - 0.5) * 0.01 for f in shown], [np.mean(x) for x in values],
                        yerr=[np.std(x, ddof=1) if len(x) > 1 else 0 for x in values], marker="o", capsize=3,
                        color=color, label=v)
    ax.set_xlabel("share of each fold's 15 training subjects used")
    ax.set_ylabel("LOSO UF1 (casme2-5)")
    ax.set_xticks([*FRACTIONS, 1.0])
    ax.set_title(f"Hard synthetic CASME II, trees s{', s'.join(map(str, TREES))} x seeds 0-{FRACTION_SEEDS - 1} (std over runs)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_bounds(strata: dict, seeds, path: Path) -> None:
    """UF1 by planted amplitude: the ceiling, the clip-fold bound and LOSO, for erm and lightman."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from stratify import bin_order

    bins = bin_order()
    style = {"ceiling": dict(color="black", linestyle="--", label="ceiling: oracle with the planted fields"),
             "erm, clip folds": dict(color="C0", linestyle=":", label="erm, clip folds (person's clips in training)"),
             "lightman, clip folds": dict(color="C2", linestyle=":", label="lightman, clip folds"),
             "erm, LOSO": dict(color="C0", linestyle="-", label="erm, LOSO"),
             "lightman, LOSO": dict(color="C2", linestyle="-", label="lightman, LOSO")}
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=120)
    for i, (name, kw) in enumerate(style.items()):
        values = strata.get(name, {})
        shown = [b for b in bins if values.get(b)]
        if shown:
            ax.errorbar([bins.index(b) + (i - 2) * 0.06 for b in shown], [np.mean(values[b]) for b in shown],
                        yerr=[np.std(values[b], ddof=1) if len(values[b]) > 1 else 0 for b in shown],
                        marker="o", capsize=3, **kw)
    ax.set_xticks(range(len(bins)), bins)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("planted amplitude at apex, pixels of the 128 px aligned face")
    ax.set_ylabel("UF1 within the bin")
    ax.set_title(f"Hard synthetic CASME II, trees s{', s'.join(map(str, TREES))}, seeds 0-{len(seeds) - 1} "
                 "(ceiling: std over trees)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def tables(root: Path, seeds) -> str:
    trees = [f"s{t}" for t in TREES]
    lines = pilot(root)
    lines += comparison(root, "main", MAIN, "erm", trees, seeds,
                        "**Inductive protocol** (the test subject is never touched): LOSO over 16 subjects, "
                        "casme2-5, pooled UF1; mean ± std over paired (tree, seed) runs; ΔUF1 bootstrapped over "
                        "subjects within trees, paired permutation p (2000 draws)")
    lines += comparison(root, "controls", CONTROLS, "lightman", trees, seeds,
                        "**Controls** (inductive): do the macro-expressions add anything?")
    lines += comparison(root, "transductive", TRANSDUCTIVE, "erm+tent", trees, seeds,
                        "**Transductive protocol** (adapted on the test subject's unlabelled clips; not comparable "
                        "with the inductive table above)")
    lines += questions(root, trees, seeds)
    lines += attribution(root, seeds)
    lines += fractions(root, seeds)
    try:
        truths = tree_truths(root)
        lines += strata(root, seeds, truths)
        lines += bounds(root, seeds, truths)
        lines += bound_factors(root, seeds)
        lines += bound_bins(root, seeds, truths, bound_strata(root, seeds, truths))
    except (ImportError, FileNotFoundError) as error:  # a tree deleted since: the strata need its truth
        lines += [f"(strata, ceiling and bound not computed: {error})", ""]
    done = sum((root / "runs" / r.name / "metrics.json").is_file() for r in plan(seeds))
    lines += [f"Runs finished: {done} of {len(plan(seeds))} planned with seeds {', '.join(map(str, seeds))}."]
    return "\n".join(lines) + "\n"


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: no {BEGIN} ... {END} block to write the tables into")
    head, rest = doc.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + text + rest[rest.index(END):], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO / "benchmarks" / "results" / "study" / "i14",
                        help="data and runs go here (git-ignored)")
    parser.add_argument("--parts", default="pilot,main,transductive,controls,bound,attribution,bound-factors,fraction")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="use the first N seeds")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--tables-only", action="store_true")
    parser.add_argument("--no-doc", action="store_true", help="print the tables, leave docs/method.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("mer_train").setLevel(logging.WARNING)
    root, seeds = args.root.absolute(), SEEDS[:args.seeds]
    if not args.tables_only:
        runs = [r for r in plan(seeds) if r.part in args.parts.split(",")]
        for tree in sorted({r.tree for r in runs}):
            make_tree(root, tree)
        run_all(runs, root, args.jobs, args.device)
    text = tables(root, seeds)
    (root / "tables.md").write_text(text, encoding="utf-8")
    if not args.no_doc:
        write_doc(text)
        truths = tree_truths(root)
        plot_amplitude(root, seeds, PLOT, truths)
        plot_bounds(bound_strata(root, seeds, truths), seeds, PLOT_BOUNDS)
        plot_fraction(root, seeds, PLOT_FRACTION)
    print(text)


if __name__ == "__main__":
    main()
