"""The schedule pilot of the shipped configs (issue #14, item 5): `steps` and `lr` of configs/*.yaml
chosen on a synthetic tree that no doc reports, never on a reported one (STYLE.md 14).

    python benchmarks/config_pilot.py --root /tmp/pilot                 # every config, resumes
    python benchmarks/config_pilot.py --root /tmp/pilot --configs erm   # one of them
    python benchmarks/config_pilot.py --root /tmp/pilot --tables-only   # the table from finished folds

Data: the study's hard tree (`mer-prep synth casme2|ckplus --preset hard`, 16 subjects x 10 clips
+ 20 x 6, made by benchmarks/study.py's own `make_tree`) of generator seed TREE. The study reports
trees 1-3 and ran its own pilot on tree 100; this one is neither.

Score: plain LOSO UF1 (pooled over the folds) of each (steps, lr) point, per seed. With a constant
learning rate a shorter schedule is a prefix of a longer one, so each (lr, seed, fold) trains once,
for the longest schedule, and the predictions of the shorter ones are read on the way
(`trainer.train_model(after_step=...)`): the same predictions as those schedules' own runs (tests/
test_train.py checks it). A CONFIGS entry may test
N subjects spread evenly over the sorted list, each trained on all 15 others. Each fold's
predictions are stored as JSON, so a rerun trains only what is missing. Chosen: the point with the
best mean UF1 over the seeds.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study import make_tree

REPO = Path(__file__).resolve().parents[1]
TREE = 200
STEPS = (40, 100, 200)
LRS = (0.001, 0.002, 0.004)
SEEDS = (0, 1)
# config -> (method it is run with, test subjects: None = all 16). A lightman fold of 200 steps took
# ~3 min on the shared 2-core machine (load ~11): lightman and multitask test 5 subjects, to fit an hour
CONFIGS = {"erm": ("erm", None), "lightman": ("lightman", 5), "multitask": ("multitask", 5), "cpu": ("lightman", 5),
           "maml": ("maml", 5)}


@dataclass(frozen=True)
class Job:
    config: str
    lr: float
    seed: int
    fold: int
    subject: str

    def path(self, root: Path) -> Path:
        return root / "pilot" / self.config / f"lr{self.lr}" / f"seed{self.seed}" / f"fold-{self.fold:03d}.json"


def load(config_name: str, root: Path, **changes):
    from mer_train.config import load_config

    method, _ = CONFIGS[config_name]
    return load_config(REPO / "configs" / f"{config_name}.yaml",
                       {"shards": [str(root / "sets" / f"s{TREE}")], "method": method, "device": "cpu",
                        "threads": 1, **changes})


_DATA: dict[str, object] = {}


def run_job(job: Job, root: str) -> dict:
    """Train one fold for max(STEPS) steps; its test subject's probabilities after each of STEPS."""
    import torch

    from mer_train import trainer
    from mer_train.data import load_data

    root = Path(root)
    config = load(job.config, root, lr=job.lr, seed=job.seed, steps=max(STEPS))
    torch.set_num_threads(1)
    if job.config not in _DATA:
        _DATA[job.config] = load_data(config)
    data = _DATA[job.config]
    test = torch.as_tensor(np.flatnonzero(data.subject == job.subject))
    probs = {}

    def snapshot(step, model, x):
        if step in STEPS:
            probs[step] = trainer.predict_subject(model, [None], x[test], config, None).tolist()

    start = time.perf_counter()
    trained = trainer.train_model(config, data, job.fold, job.subject, torch.device("cpu"), after_step=snapshot)
    record = {"sample_id": data.sample_id[test.numpy()].tolist(), "probs": {str(s): probs[s] for s in STEPS},
              "loss": {str(s): trained.curve[s - 1] for s in STEPS}, "seconds": time.perf_counter() - start}
    path = job.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)
    return record


def test_folds(name: str, subjects: list[str]) -> list[int]:
    """The folds a config is scored on: every subject, or CONFIGS' number of them spread evenly over
    the sorted list (label-free, as `mer-train tune --inner-folds`)."""
    n = CONFIGS[name][1]
    if n is None or n >= len(subjects):
        return list(range(len(subjects)))
    return [int(i) for i in np.unique(np.linspace(0, len(subjects) - 1, n).round().astype(int))]


def plan(root: Path, configs: list[str]) -> list[Job]:
    """Seed 0 of every config first: a pilot cut short still has one seed of each point."""
    from mer_train.data import load_data

    subjects = {name: load_data(load(name, root)).subjects for name in configs}
    return [Job(name, lr, seed, i, subjects[name][i]) for seed in SEEDS for name in configs for lr in LRS
            for i in test_folds(name, subjects[name])]


def table(root: Path, configs: list[str]) -> str:
    """Markdown: UF1 mean ± std over seeds for every (steps, lr), the chosen point marked."""
    from mer_train.data import load_data
    from mer_train.metrics import pooled_metrics

    lines = [f"Pilot on tree s{TREE} (hard preset, never reported): plain LOSO UF1, mean ± std over seeds "
             f"{', '.join(map(str, SEEDS))}; rows steps, columns lr", ""]
    for name in configs:
        data = load_data(load(name, root))
        index = {s: i for i, s in enumerate(data.sample_id.tolist())}
        y = data.y.numpy()
        method = CONFIGS[name][0]
        picks = test_folds(name, data.subjects)
        folds = len(picks)
        scores, losses = {}, {}
        for steps in STEPS:
            for lr in LRS:
                per_seed, loss = [], []
                for seed in SEEDS:  # a seed counts when all its folds are in (a pilot cut short)
                    paths = [Job(name, lr, seed, i, "").path(root) for i in picks]
                    if not all(path.is_file() for path in paths):
                        continue
                    records = [json.loads(path.read_text()) for path in paths]
                    rows = np.array([index[s] for r in records for s in r["sample_id"]])
                    pred = np.concatenate([np.asarray(r["probs"][str(steps)]) for r in records]).argmax(1)
                    per_seed.append(pooled_metrics(y[rows], pred, data.dataset[rows], data.classes)["overall"]["uf1"])
                    loss.append(np.mean([r["loss"][str(steps)] for r in records]))
                scores[steps, lr], losses[steps, lr] = per_seed, loss
        most = max(len(v) for v in scores.values())  # the points compared have the same seeds
        done = {k: v for k, v in scores.items() if most and len(v) == most}
        best = max(done, key=lambda k: np.mean(done[k])) if done else None
        lines += [f"**{name}.yaml** (--method {method}; {folds} test subjects of "
                  f"{len(data.subjects)}; chosen: {'none yet' if best is None else f'steps {best[0]}, lr {best[1]}'})",
                  "", "| steps | " + " | ".join(f"lr {lr}" for lr in LRS) + " |", "|---|" + "---|" * len(LRS)]
        for steps in STEPS:
            cells = []
            for lr in LRS:
                v = scores[steps, lr]
                text = ("" if not v else f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1
                        else f"{v[0]:.3f} (1 seed)")
                if v:
                    text += f" (loss {np.mean(losses[steps, lr]):.3f})"
                cells.append(f"**{text}**" if (steps, lr) == best else text)
            lines.append(f"| {steps} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="where the tree, the fold results and the table go")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, of " + ", ".join(CONFIGS))
    parser.add_argument("--jobs", type=int, default=2, help="folds trained at once, one CPU thread each")
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    root = args.root.absolute()
    make_tree(root, f"s{TREE}")
    if not args.tables_only:
        jobs = [job for job in plan(root, configs) if not job.path(root).is_file()]
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(run_job, job, str(root)): job for job in jobs}
            for i, future in enumerate(as_completed(futures), 1):
                job, record = futures[future], future.result()
                logging.info("[%5.0f s] %d/%d %s lr %s seed %d fold %d: %.0f s", time.perf_counter() - start, i,
                             len(jobs), job.config, job.lr, job.seed, job.fold, record["seconds"])
    text = table(root, configs)
    (root / "pilot" / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
