"""The LightmanNet study (issue #7): does dual-branch bi-level learning beat its baselines on hard
synthetic data, and when? The single source of the numbers in docs/method.md, `## Results`.

    python benchmarks/study.py                      # everything, from scratch (resumes when rerun)
    python benchmarks/study.py --parts main,easy    # some parts only
    python benchmarks/study.py --tables-only        # rewrite the tables and the plot from finished runs

It makes the data with `mer-prep` (hard and easy presets of synthetic CASME II + CK+), runs every
LOSO run of the study with `configs/study.yaml` through `mer_train.train` (one key changed at a time,
`--jobs` runs in parallel, each with one CPU thread), then writes ROOT/tables.md, the block between
the `study:begin`/`study:end` markers of docs/method.md and docs/study_subject_fraction.png. A run
whose metrics.json exists for the same config is not run again; an interrupted run resumes from its
fold checkpoints. Each run is what `mer-train --shards ROOT/sets/PRESET --config configs/study.yaml
--method M --seed S --set KEY=VALUE` computes.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from synth_sets import synth_set

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "study.yaml"
DOC = REPO / "docs" / "method.md"
PLOT = REPO / "docs" / "study_subject_fraction.png"
METHODS = ("erm", "multitask", "maml", "lightman")
BEGIN, END = "<!-- study:begin (written by benchmarks/study.py) -->", "<!-- study:end -->"

# the synthetic data: casme2 16 subjects x 10 clips (mean; hard deals them unevenly), ckplus 20 x 6
SIZES = {"casme2": ("--subjects", "16", "--clips-per-subject", "10"),
         "ckplus": ("--subjects", "20", "--clips-per-subject", "6")}
PRESETS = ("hard", "easy")


@dataclass(frozen=True)
class Run:
    part: str                  # which table it belongs to
    preset: str                # hard | easy
    method: str
    seed: int
    changes: tuple = ()        # ((key, value), ...) on top of configs/study.yaml

    @property
    def name(self) -> str:
        extra = "".join(f"-{k}={v}" for k, v in self.changes)
        return f"{self.preset}-{self.method}{extra}-seed{self.seed}"


def plan() -> list[Run]:
    """Every run of the study, most important first: a study cut short still has its main table,
    the easy/hard check and one seed of everything, then the second seeds."""
    runs = [Run("main", "hard", m, s) for s in (0, 1, 2) for m in METHODS]
    runs += [Run("easy", "easy", "erm", s) for s in (0, 1, 2)]
    ablations = [(("first_order", True),), (("align_weight", 0.1),), (("align_weight", 1.0),),
                 (("inner_steps", 3),), (("inner_steps", 5),), (("outer_align", False),)]
    for seed in (0, 1):
        for key, values in (("subject_fraction", (0.25, 0.5)), ("label_noise", (0.1, 0.2))):
            runs += [Run("robust", "hard", m, seed, ((key, v),)) for v in values for m in METHODS]
        runs += [Run("schedule", "hard", m, seed, (("steps", n),)) for n in (10, 20) for m in METHODS]
        runs += [Run("ablation", "hard", "lightman", seed, changes) for changes in ablations]
    runs += [Run("easy", "easy", m, 0) for m in ("multitask", "maml", "lightman")]
    return runs


# ----------------------------------------------------------------------------------------------
# data


def make_data(root: Path, presets=PRESETS) -> None:
    """RAW trees with `mer-prep synth`, shard sets with `mer-prep DATASET` (skipped when present)."""
    for preset in presets:
        for dataset in ("casme2", "ckplus"):
            synth_set(dataset, root / "raw" / f"{dataset}-{preset}", root / "sets" / preset / dataset,
                      ("--preset", preset, *SIZES[dataset], "--workers", "2"), ("--workers", "2", "-q"))


# ----------------------------------------------------------------------------------------------
# runs


_DATA: dict[str, object] = {}


def run_one(run: Run, root: str) -> dict:
    """Train `run` (in a worker process; the data of a preset is loaded once per process)."""
    import mer_train
    from mer_train.config import load_config
    from mer_train.data import load_data

    root = Path(root)
    config = load_config(CONFIG, {"shards": [str(root / "sets" / run.preset)], "method": run.method,
                                  "seed": run.seed, "out": str(root / "runs" / run.name), **dict(run.changes)})
    done = root / "runs" / run.name / "metrics.json"
    if done.is_file() and _same_config(config, done.parent / "config.yaml"):
        return json.loads(done.read_text())
    if run.preset not in _DATA:
        _DATA[run.preset] = load_data(config)
    return mer_train.train(config, data=_DATA[run.preset]).metrics


def _same_config(config, path: Path) -> bool:
    if not path.is_file():
        return False
    saved = yaml.safe_load(path.read_text())
    keep = lambda c: {k: v for k, v in c.items() if k not in ("out", "shards", "macro_shards", "eval_batch_size")}  # noqa: E731
    return keep(saved) == keep(config.to_dict())


def run_all(runs: list[Run], root: Path, jobs: int) -> None:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, run, str(root)): run for run in runs}
        for future in as_completed(futures):
            run, metrics = futures[future], future.result()
            logging.info("[%5.0f s] %-60s UF1 %.3f UAR %.3f (%.0f s of training)", time.perf_counter() - start,
                         run.name, metrics["overall"]["uf1"], metrics["overall"]["uar"], train_seconds(metrics))


# ----------------------------------------------------------------------------------------------
# tables and plot


def train_seconds(metrics: dict) -> float:
    return sum(fold["seconds"] for fold in metrics["folds"])


def results(root: Path) -> dict[Run, dict]:
    found = {}
    for run in plan():
        path = root / "runs" / run.name / "metrics.json"
        if path.is_file():
            found[run] = json.loads(path.read_text())
    return found


def cell(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}" + ("" if len(values) > 1 else " (1 seed)")


def pick(found: dict, preset: str, method: str, changes: tuple = (), seeds=(0, 1, 2)) -> list[dict]:
    """The metrics of the finished runs of (preset, method, changes) for `seeds`; runs are looked up
    by what they compute, not by their part (the main runs also serve the robustness table)."""
    by_key = {(r.preset, r.method, r.seed, r.changes): m for r, m in found.items()}
    return [by_key[key] for s in seeds if (key := (preset, method, s, changes)) in by_key]


def metric(runs: list[dict], key: str) -> list[float]:
    return [m["overall"][key] for m in runs]


def tables(found: dict) -> str:
    lines = []
    # main table
    lines += ["**Main comparison, hard preset** (LOSO over 16 subjects, casme2-5, pooled UF1/UAR; mean ± std "
              "over seeds; training wall time of the whole LOSO run, summed over folds, on the loaded 2-core "
              "machine)", "",
              "| method | seeds | UF1 | UAR | accuracy | training time (s) | s / step |", "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        runs = pick(found, "hard", method)
        if runs:
            secs = [train_seconds(m) for m in runs]
            per_step = [train_seconds(m) / (len(m["folds"]) * 40) for m in runs]
            lines.append(f"| {method} | {len(runs)} | {cell(metric(runs, 'uf1'))} | {cell(metric(runs, 'uar'))} | "
                         f"{cell(metric(runs, 'accuracy'))} | {np.mean(secs):.0f} | {np.mean(per_step):.3f} |")
    # easy vs hard
    lines += ["", "**Is the hard preset hard?** Same size, same config, preset easy vs hard", "",
              "| method | easy UF1 | hard UF1 | easy UAR | hard UAR |", "|---|---|---|---|---|"]
    for method in METHODS:
        easy, hard = pick(found, "easy", method), pick(found, "hard", method)
        if easy:
            lines.append(f"| {method} | {cell(metric(easy, 'uf1'))} | {cell(metric(hard, 'uf1'))} | "
                         f"{cell(metric(easy, 'uar'))} | {cell(metric(hard, 'uar'))} |")
    # robustness
    lines += ["", "**Robustness, hard preset** (UF1, mean ± std over seeds 0-1; the 1.0 / 0.0 columns are "
              "seeds 0-1 of the main table)", "",
              "| method | subjects 0.25 | subjects 0.5 | subjects 1.0 | label noise 0.1 | label noise 0.2 | noise 0.0 |",
              "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        row = [cell(metric(pick(found, "hard", method, (("subject_fraction", f),), (0, 1)), "uf1"))
               for f in (0.25, 0.5)]
        base = cell(metric(pick(found, "hard", method, (), (0, 1)), "uf1"))
        row += [base] + [cell(metric(pick(found, "hard", method, (("label_noise", n),), (0, 1)), "uf1"))
                         for n in (0.1, 0.2)] + [base]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    # ablations
    lines += ["", "**Ablations of LightmanNet, hard preset** (mean ± std over seeds 0-1; the full method is "
              "second order, k = 1, lambda = 0.5, query loss CE + lambda align)", "",
              "| variant | UF1 | UAR | training time (s) |", "|---|---|---|---|"]
    variants = [("LightmanNet (full)", "lightman", ()), ("no auxiliary branch (= maml)", "maml", ()),
                ("no level two (= multitask)", "multitask", ()),
                ("first-order inner loop", "lightman", (("first_order", True),)),
                ("inner steps k = 3", "lightman", (("inner_steps", 3),)),
                ("inner steps k = 5", "lightman", (("inner_steps", 5),)),
                ("lambda = 0.1", "lightman", (("align_weight", 0.1),)),
                ("lambda = 1.0", "lightman", (("align_weight", 1.0),)),
                ("query loss CE only (outer_align false)", "lightman", (("outer_align", False),))]
    for label, method, changes in variants:
        runs = pick(found, "hard", method, changes, (0, 1))
        if runs:
            lines.append(f"| {label} | {cell(metric(runs, 'uf1'))} | {cell(metric(runs, 'uar'))} | "
                         f"{np.mean([train_seconds(m) for m in runs]):.0f} |")
    # schedule length
    lines += ["", "**UF1 vs schedule length, hard preset** (each a fixed schedule, scored once at its end; "
              "seeds 0-1)", "", "| method | 10 steps (25 %) | 20 steps (50 %) | 40 steps (100 %) |",
              "|---|---|---|---|"]
    for method in METHODS:
        row = [cell(metric(pick(found, "hard", method, (("steps", n),), (0, 1)), "uf1")) for n in (10, 20)]
        row.append(cell(metric(pick(found, "hard", method, (), (0, 1)), "uf1")))
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines += ["", f"Runs finished: {len(found)} of {len(plan())}."]
    return "\n".join(lines) + "\n"


def plot(found: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    fractions = (0.25, 0.5, 1.0)
    for i, method in enumerate(METHODS):
        means, stds, xs = [], [], []
        for f in fractions:
            runs = pick(found, "hard", method, () if f == 1.0 else (("subject_fraction", f),), (0, 1))
            if runs:
                values = metric(runs, "uf1")
                xs.append(f + (i - 1.5) * 0.012)
                means.append(np.mean(values))
                stds.append(np.std(values, ddof=1) if len(values) > 1 else 0)
        if xs:
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
    ax.set_xticks(fractions, ["0.25\n(~4 subjects)", "0.5\n(~8)", "1.0\n(15)"])
    ax.set_xlabel("fraction of the training subjects used per fold")
    ax.set_ylabel("UF1 (pooled LOSO, hard preset)")
    ax.set_title("Fewer training people, hard synthetic CASME II", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: no {BEGIN} ... {END} block to write the tables into")
    head, rest = doc.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + text + rest[rest.index(END):], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO / "benchmarks" / "results" / "study" / "i7",
                        help="data and runs go here (git-ignored)")
    parser.add_argument("--parts", default="main,easy,robust,ablation,schedule")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("mer_train").setLevel(logging.WARNING)
    root = args.root.absolute()
    if not args.tables_only:
        parts = args.parts.split(",")
        runs = [r for r in plan() if r.part in parts]
        make_data(root, sorted({r.preset for r in runs}))
        run_all(runs, root, args.jobs)
    found = results(root)
    text = tables(found)
    (root / "tables.md").write_text(text, encoding="utf-8")
    write_doc(text)
    plot(found, PLOT)
    print(text)


if __name__ == "__main__":
    main()
