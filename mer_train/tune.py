"""Honest tuning: nested leave-one-subject-out over a grid of config values (`mer-train tune`).

For each outer fold (test subject s), the outer subject's samples, micro and macro, are removed
first; every grid point is then scored by an inner LOSO over the remaining (training) subjects only:
the pooled UF1 of its inner folds' predictions. The best point (ties: the first in grid order) is
retrained on all training subjects, exactly as a plain LOSO fold, and tested once on s. The outer
predictions are pooled as in `mer_train.loso`. Nothing that chooses a value for s reads s's labels:
tests/test_tune.py changes them and checks that every choice stays the same.

Cost: outer folds x (grid points x inner folds + 1) trainings. `inner_folds=N` scores each grid
point on N inner folds (held-out subjects spread evenly over the sorted training subjects) instead
of all of them: cheaper, but each choice rests on fewer held-out people (more variance).

Every training is one task of `mer_train.distributed` (`TuneTask`), as the folds of `mer-train
train` are: in this process, on a local Dask cluster or on an existing one. The inner trainings of
all outer folds go out together; when they are in, each outer fold's choice is made and the
retrainings go out. A worker loads a shard set once and derives every inner fold's data from it
(`without_subject`). Each result is stored by the task that made it as soon as it is made: an inner
fold as a JSON file, an outer fold as the usual checkpoint, so a rerun into the same run directory
(after a failure, a kill or a worker that died twice) skips finished work.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from . import distributed, trainer
from .config import TrainConfig, as_config, protocol, save_config
from .data import DATA_KEYS, MerData, load_data
from .errors import ConfigError, DataError
from .loso import _comparable, _local_device, cpu_threads, load_fold, require_runnable, resolve_device
from .metrics import pooled_metrics
from .report import plot_confusion, write_json, write_predictions, write_report
from .trainer import METHODS

log = logging.getLogger("mer_train")

INNER_FORMAT = "mer-train-inner/1"
# Keys a grid cannot hold: they change what is evaluated (the data, the class set) or only where
# and how fast it runs, never the model.
NOT_TUNABLE = {"shards": "the data", "macro_shards": "the data", "classes": "the class set evaluated",
               "out": "the run directory", "device": "the device", "threads": "the thread count",
               "eval_batch_size": "the evaluation batch size", "seed": "the seed (choosing a seed is not tuning)"}
SELECTION = "pooled UF1 of the inner folds; ties go to the first grid point in grid order"


@dataclass
class TuneResult:
    """A finished nested LOSO: its directory, the resolved config and the metrics pooled over the outer
    folds (with the values chosen per fold)."""

    out: Path
    config: TrainConfig
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TuneTask:
    """One training of the nested LOSO, a task of `mer_train.distributed` like a LOSO fold: `config`
    on its grid point's data without `subject` (and, in an inner fold, without the outer test subject
    `without` first), then predict `subject`. Plain values only: it travels to a worker."""

    config: TrainConfig      # resolved: absolute shard paths, `out` set
    fold: int                # seeds the training (trainer.train_fold): inner fold k, or the outer fold
    subject: str             # the subject predicted
    checkpoint: Path         # where the task stores its result: inner/.../inner-KK.json or checkpoints/fold-NNN.pt
    run: str                 # with `fold`, unique in a call (the Dask key): "outer 3 point 1", "outer 3"
    name: str                # names the training in errors
    without: str | None = None  # inner folds: the outer test subject


# ----------------------------------------------------------------------------------------------
# the grid


def parse_grid(options: Iterable[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2` texts (the --grid options) -> {key: [values]}; each value is read as YAML, like a
    --set value (`lr=0.001,0.003`, `first_order=true,false`)."""
    grid: dict[str, list[Any]] = {}
    for text in options:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,..., e.g. --grid lr=0.001,0.003")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; put all its values in one option: --grid {key}=V1,V2")
        values = [yaml.safe_load(v) for v in raw.split(",")]
        if any(v is None for v in values):
            raise ConfigError(f"--grid {text!r}: an empty value; separate values by single commas")
        grid[key] = values
    return grid


def grid_points(config: TrainConfig, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of `grid`, in order (first key slowest), each value checked by
    `TrainConfig.replace` and stored as the config holds it (`lr=1e-3` -> 0.001). Fails before any
    training on an unknown key, a key that cannot be tuned, a bad or repeated value."""
    if not grid:
        raise ConfigError("no --grid given: pass at least one, e.g. --grid lr=0.001,0.003")
    checked: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key in NOT_TUNABLE:
            raise ConfigError(f"--grid {key}: {key} sets {NOT_TUNABLE[key]}, not the model; it cannot be tuned. "
                              f"Set it with its flag or --set {key}=VALUE")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"--grid {key}: expected a list of values, got {values!r}")
        checked[key] = []
        for value in values:
            try:
                value = getattr(config.replace(**{key: value}), key)
            except ConfigError as error:
                raise ConfigError(f"--grid {key}={value}: {error}") from error
            if value in checked[key]:
                raise ConfigError(f"--grid {key}: the value {value!r} is given twice")
            checked[key].append(value)
    return [dict(zip(checked, values)) for values in itertools.product(*checked.values())]


# ----------------------------------------------------------------------------------------------
# nested LOSO


def tune(config: TrainConfig | str | os.PathLike | None, grid: Mapping[str, Sequence[Any]], *,
         inner_folds: int | None = None, data: MerData | None = None, progress: bool = False,
         workers: int | None = None, scheduler: str | None = None, **overrides: Any) -> TuneResult:
    """Nested LOSO of `config` (a TrainConfig, a YAML path or None, with `overrides`) over `grid`
    ({key: [values]}); returns the run directory and the metrics pooled over the outer folds. Every
    training is one task, run as `mer_train.train` runs folds: `workers` processes of a local Dask
    cluster, the cluster at `scheduler` (an address), or `scheduler="synchronous"` in this process
    (also what `data=` implies). Same choices and predictions whichever runs them.

        result = mer_train.tune.tune("configs/ci.yaml", {"lr": [0.001, 0.003]}, shards=["out"], workers=2)
        [fold["chosen"] for fold in result.metrics["folds"]]   # e.g. [{"lr": 0.003}, {"lr": 0.001}, ...]

    `data` (already loaded) cannot be combined with a grid over a key `load_data` reads (input_size, ...).
    """
    config = as_config(config, overrides)
    points = grid_points(config, grid)
    if inner_folds is not None and inner_folds < 1:
        raise ConfigError(f"inner_folds {inner_folds}: must be at least 1 (or None: every training subject)",
                          param="inner_folds")
    data_keys = sorted(set(DATA_KEYS) & {key for point in points for key in point})
    if data is not None and data_keys:
        raise ConfigError(f"--grid {', '.join(data_keys)}: changes the data loaded, so tune() cannot take data=; "
                          "leave data out and it is loaded per grid point")
    scheduler = distributed.choose_scheduler(workers, scheduler, data is not None)
    with cpu_threads(config.threads):
        return _tune(config, points, inner_folds, data, progress, workers, scheduler)


def _tune(config: TrainConfig, points: list[dict[str, Any]], inner_folds: int | None, data: MerData | None,
          progress: bool, workers: int | None, scheduler: str | None) -> TuneResult:
    here = scheduler == distributed.SYNCHRONOUS
    if not distributed.is_remote(scheduler):  # a remote cluster's workers have their own devices
        device = resolve_device(config.device)
    loaded: dict[tuple, MerData] = {}
    moved: dict[tuple, MerData] = {}

    def key_of(point_config: TrainConfig) -> tuple:
        return tuple(repr(getattr(point_config, k)) for k in DATA_KEYS)

    def data_for(point_config: TrainConfig) -> MerData:  # one loaded set per value of the data keys, on the CPU
        key = key_of(point_config)
        if key not in loaded:
            loaded[key] = data if data is not None else load_data(point_config)
        return loaded[key]

    def on_device(point_config: TrainConfig) -> MerData:  # in this process: the same, on the device
        key = key_of(point_config)
        if key not in moved:
            moved[key] = data_for(point_config).to(device)
        return moved[key]

    out = Path(config.out or f"runs/{config.method}-{datetime.now():%Y%m%d-%H%M%S}").absolute()
    config = config.replace(out=str(out), shards=[str(Path(p).absolute()) for p in config.shards],
                            macro_shards=[str(Path(p).absolute()) for p in config.macro_shards])
    configs = [config.replace(**point) for point in points]
    protocols = sorted({protocol(c) for c in configs})
    if len(protocols) > 1:
        raise ConfigError("the grid mixes inductive and transductive points (test_adapt_steps 0 and > 0); they are "
                          "never compared in one table: tune each protocol with its own command")
    for point_config in configs:  # every point can run (macro shards, subjects) before anything trains
        require_runnable(point_config, data_for(point_config))
    base = data_for(configs[0])  # sample ids, labels and subjects are the same for every point
    subjects = base.subjects
    _require_nested(configs, len(subjects))
    held_out = [_inner_subjects(subjects, subject, inner_folds) for subject in subjects]
    total = sum(len(points) * len(h) + 1 for h in held_out)
    log.info("tune %s on %s: %d outer folds x (%d grid points x %s inner folds + 1) = %d trainings",
             config.method, base.class_set, len(subjects), len(points), inner_folds or "all", total)

    def run(tasks: list[TuneTask], client, bar) -> list[dict[str, Any]]:
        local = {task.run: on_device(task.config) for task in tasks} if here else None
        return distributed.run_folds(tasks, trainer.train_fold, client, local_data=local, bar=bar,
                                     task_fn=train_tune_task)

    with tqdm(total=total, desc=f"tune {config.method}", unit="training", disable=not progress) as bar, \
            ExitStack() as stack:
        inner, tasks = _plan_inner(out, subjects, configs, points, held_out, data_for, bar)
        client = stack.enter_context(distributed.fold_runner(tasks, scheduler=scheduler, workers=workers))
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        for task, result in zip(tasks, run(tasks, client, bar)):
            inner[task.checkpoint] = result
        choices = [_choose(base, [[inner[path] for path in point] for point in paths], h)
                   for paths, h in zip(_inner_paths(out, configs, held_out), held_out)]
        for outer, (subject, choice) in enumerate(zip(subjects, choices)):
            log.info("fold %d (%s): chose %s (inner UF1 %.3f)", outer, subject, points[choice["best"]],
                     choice["scores"][choice["best"]]["uf1"])
        chosen = [(configs[choice["best"]], points[choice["best"]]) for choice in choices]
        folds, tasks = _plan_outer(out, subjects, chosen, data_for, bar)
        if tasks and client is None:  # every inner result was stored, some outer fold is not
            client = stack.enter_context(distributed.fold_runner(tasks, scheduler=scheduler, workers=workers))
        for task, result in zip(tasks, run(tasks, client, bar)):
            folds[task.fold] = result

    index = {sample_id: i for i, sample_id in enumerate(base.sample_id.tolist())}
    rows = np.array([index[s] for fold in folds for s in fold["sample_id"]])
    probs = np.concatenate([np.asarray(fold["probs"]).reshape(-1, len(base.classes)) for fold in folds])
    metrics = pooled_metrics(base.y.cpu().numpy()[rows], probs.argmax(1), base.dataset[rows], base.classes)
    grid = {key: list(dict.fromkeys(point[key] for point in points)) for key in points[0]}
    devices = sorted({fold["device"] for fold in folds if "device" in fold})  # none when every fold was reused
    metrics |= {
        "method": config.method if "method" not in grid else "tuned", "protocol": protocols[0],
        "classes": list(base.classes), "class_set": base.class_set, "seed": config.seed,
        "device": ", ".join(devices) or _local_device(config.device),
        "dropped": base.dropped, "sources": base.sources,
        "tuning": {"scheme": "nested LOSO", "grid": grid, "points": len(points), "inner_folds": inner_folds,
                   "selection": SELECTION, "trainings": total},
        "folds": [{**fold["fold"], "seconds": round(fold["seconds"], 3), "final_loss": fold["curve"][-1],
                   "chosen": points[choice["best"]], "inner_subjects": choice["held_out"],
                   "inner": [{"values": point, **score} for point, score in zip(points, choice["scores"])],
                   "inner_seconds": round(choice["seconds"], 3)}
                  for fold, choice in zip(folds, choices)],
    }
    _write_report(out, base, rows, probs, folds, metrics)
    log.info("tune %s: UF1 %.3f, UAR %.3f over %d samples -> %s", config.method, metrics["overall"]["uf1"],
             metrics["overall"]["uar"], len(rows), out)
    return TuneResult(out, config, metrics)


def _inner_paths(out: Path, configs: list[TrainConfig], held_out: list[list[str]]) -> list[list[list[Path]]]:
    """[outer fold][grid point][inner fold] -> where that inner fold's predictions are stored."""
    return [[[out / "inner" / f"fold-{outer:03d}" / f"point-{p:02d}" / f"inner-{k:02d}.json" for k in range(len(h))]
             for p in range(len(configs))] for outer, h in enumerate(held_out)]


def _plan_inner(out: Path, subjects: list[str], configs: list[TrainConfig], points: list[dict[str, Any]],
                held_out: list[list[str]], data_for: Callable[[TrainConfig], MerData],
                bar) -> tuple[dict[Path, dict[str, Any] | None], list[TuneTask]]:
    """Every inner training of every outer fold (outer fold, grid point, inner fold, in that order):
    the results already stored, and the tasks for the rest."""
    stored: dict[Path, dict[str, Any] | None] = {}
    tasks = []
    for outer, (subject, point_paths) in enumerate(zip(subjects, _inner_paths(out, configs, held_out))):
        for p, (point_config, paths) in enumerate(zip(configs, point_paths)):
            inner_data = without_subject(data_for(point_config), subject)
            for k, (inner_subject, path) in enumerate(zip(held_out[outer], paths)):
                name = (f"inner fold {k} ({inner_subject}) of outer fold {outer} ({subject}), grid point {p} "
                        f"({_values(points[p])})")
                task = TuneTask(point_config, k, inner_subject, path, f"outer {outer} point {p}", name, subject)
                stored[path] = load_inner(task, inner_data)
                if stored[path] is None:
                    tasks.append(task)
                else:
                    bar.update()
    return stored, tasks


def _choose(base: MerData, results: list[list[dict[str, Any]]], held_out: list[str]) -> dict[str, Any]:
    """One outer fold's choice from its inner results ([grid point][inner fold]); `best` is the
    index of the chosen point."""
    scores = [_score(base, point_results) for point_results in results]
    best = max(range(len(scores)), key=lambda p: (scores[p]["uf1"], -p))  # ties: the first point
    return {"best": best, "scores": scores, "held_out": held_out,
            "seconds": sum(r["seconds"] for point_results in results for r in point_results)}


def _plan_outer(out: Path, subjects: list[str], chosen: list[tuple[TrainConfig, dict[str, Any]]],
                data_for: Callable[[TrainConfig], MerData], bar) -> tuple[list[dict[str, Any] | None], list[TuneTask]]:
    """Outer fold i: its chosen config trained on every subject but `subjects[i]`, tested once on
    it; a plain LOSO fold, stored as its checkpoint. The folds already stored, and the tasks for the rest."""
    folds: list[dict[str, Any] | None] = []
    tasks = []
    for outer, (subject, (point_config, values)) in enumerate(zip(subjects, chosen)):
        path = out / "checkpoints" / f"fold-{outer:03d}.pt"
        folds.append(load_fold(path, point_config, subject, data_for(point_config)))
        if folds[-1] is None:
            name = f"outer fold {outer} ({subject}), retrained with {_values(values)}"
            tasks.append(TuneTask(point_config, outer, subject, path, f"outer {outer}", name))
        else:
            bar.update()
    return folds, tasks


def _values(point: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in point.items())


def _inner_subjects(subjects: list[str], outer_subject: str, inner_folds: int | None) -> list[str]:
    """The held-out subjects of the inner folds of `outer_subject`'s fold: every training subject, or
    `inner_folds` of them spread evenly over the sorted list (deterministic, label-free)."""
    training = [s for s in subjects if s != outer_subject]
    if inner_folds is None or inner_folds >= len(training):
        return training
    picks = np.unique(np.linspace(0, len(training) - 1, inner_folds).round().astype(int))
    return [training[i] for i in picks]


def _require_nested(configs: list[TrainConfig], subjects: int) -> None:
    """An inner fold trains on subjects - 2 people: at least 1, and 2 for a bi-level method."""
    need = max(2 if METHODS[c.method][0] else 1 for c in configs)
    if subjects - 2 < need:
        method = next(c.method for c in configs if (2 if METHODS[c.method][0] else 1) == need)
        raise DataError(
            f"{subjects} subjects in --shards: nested LOSO trains each inner fold on {subjects - 2} subject(s) "
            f"(one is the outer test subject, one the inner one) and --method {method} needs at least {need}; "
            f"use at least {need + 2} subjects" + (", or --method erm" if need == 2 else ""))


def _score(data: MerData, results: list[dict[str, Any]]) -> dict[str, float]:
    """Pooled UF1 and UAR of inner-fold predictions (labels looked up by sample id in `data`)."""
    index = {sample_id: i for i, sample_id in enumerate(data.sample_id.tolist())}
    rows = np.array([index[s] for r in results for s in r["sample_id"]])
    probs = np.concatenate([np.asarray(r["probs"]).reshape(-1, len(data.classes)) for r in results])
    overall = pooled_metrics(data.y.cpu().numpy()[rows], probs.argmax(1), data.dataset[rows], data.classes)["overall"]
    return {"uf1": overall["uf1"], "uar": overall["uar"], "n": overall["n"]}


def without_subject(data: MerData, subject: str) -> MerData:
    """`data` without `subject`: its micro samples and, when its dataset has both kinds (subject ids
    are dataset/subject), its macro samples too. Every per-sample field is subset alike."""
    keep = {"micro": data.subject != subject, "macro": data.macro_subject != subject}
    changes = {}
    for f in fields(data):
        value = getattr(data, f.name)
        if f.name == "face_mask" or not isinstance(value, (np.ndarray, torch.Tensor)):
            continue
        mask = keep["macro" if f.name.startswith("macro_") else "micro"]
        if len(value) != len(mask):
            continue
        changes[f.name] = value[torch.as_tensor(mask, device=value.device) if isinstance(value, torch.Tensor) else mask]
    return replace(data, **changes)


# ----------------------------------------------------------------------------------------------
# running and storing trainings


def train_tune_task(fold_fn: Callable[..., dict], task: TuneTask, data: MerData | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Train `task` with `fold_fn` (`trainer.train_fold`), on a Dask worker or in this process
    (`data`: its grid point's data on the device; a worker loads it once and keeps it), store its
    result where `task.checkpoint` says, and return it without the weights. An outer retraining is a
    plain LOSO fold (`distributed.train_fold_task`); an inner fold first drops the outer test subject
    and stores its predictions only."""
    if task.without is None:
        return distributed.train_fold_task(fold_fn, task, data, progress)
    with cpu_threads(task.config.threads):
        device = distributed.worker_device(task.config.device)
        if data is None:
            data = distributed.worker_data(task.config, device)
        data = without_subject(data, task.without)
        return save_inner(task, data, fold_fn(task.config, data, task.fold, task.subject, device, progress))


def save_inner(task: TuneTask, data: MerData, result: dict[str, Any]) -> dict[str, Any]:
    """Store an inner fold's predictions (no weights: they are never used again), atomically;
    `data` is what it trained on (the outer subject removed)."""
    record = {"format": INNER_FORMAT, "config": _comparable(task.config.to_dict()), "test_subject": task.subject,
              "subjects": data.subjects, "sample_id": list(result["sample_id"]),
              "probs": np.asarray(result["probs"]).tolist(), "seconds": result["seconds"]}
    task.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    write_json(task.checkpoint, record)
    return record


def load_inner(task: TuneTask, data: MerData) -> dict[str, Any] | None:
    """The stored result of `task` when it was made by the same config, subjects and samples
    (`data`: the inner fold's data, the outer subject removed)."""
    path = task.checkpoint
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log.warning("%s: unreadable (%s); retraining the inner fold", path, error)
        return None
    if (not isinstance(record, dict) or record.get("format") != INNER_FORMAT
            or record.get("config") != _comparable(task.config.to_dict()) or record.get("test_subject") != task.subject
            or record.get("subjects") != data.subjects
            or record.get("sample_id") != data.sample_id[data.subject == task.subject].tolist()):
        log.warning("%s: made by another config or data; retraining the inner fold", path)
        return None
    return record


def _write_report(out: Path, data: MerData, rows: np.ndarray, probs: np.ndarray, folds: list[dict[str, Any]],
                  metrics: dict[str, Any]) -> None:
    if len({len(fold["curve"]) for fold in folds}) == 1:
        write_report(out, data, rows, probs, folds, metrics)
        return
    # `steps` is in the grid: the loss curves have different lengths and no mean; no curves.png
    write_json(out / "metrics.json", metrics)
    write_predictions(out / "predictions.csv", data, rows, probs, folds)
    plot_confusion(out / "confusion.png", np.array(metrics["overall"]["confusion"]), data.classes,
                   f"tune: UF1 {metrics['overall']['uf1']:.3f}, UAR {metrics['overall']['uar']:.3f}")
    log.info("%s: no curves.png (the chosen steps differ between folds)", out)


__all__ = ["tune", "parse_grid", "TuneResult"]
