"""Leave-one-subject-out over a shard set: one fold per subject, checkpoints, pooled metrics.

`train(config)` plans one fold per subject, runs each as a task (`mer_train.distributed`: in this
process, on a local Dask cluster or on an existing one) with `mer_train.trainer.train_fold` (the
method), keeps a fold's checkpoint so that a rerun never redoes it, pools the predictions of all
folds and writes the run directory. `train_runs` does the same for several runs at once.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mer_pipeline.shards import atomic_write
from tqdm.auto import tqdm

from . import distributed, trainer
from .config import TrainConfig, as_config, protocol, save_config
from .data import MerData, load_data
from .errors import ConfigError, DataError, MissingMacroShards, TrainError
from .metrics import pooled_metrics
from .report import write_report
from .trainer import METHODS

log = logging.getLogger("mer_train")

CHECKPOINT_FORMAT = "mer-train-checkpoint/1"


@dataclass
class RunResult:
    """A finished LOSO run: its directory, the resolved config and the pooled metrics (metrics.json)."""

    out: Path
    config: TrainConfig
    metrics: dict[str, Any]

# ----------------------------------------------------------------------------------------------
# LOSO over all subjects


def train(config: TrainConfig | str | os.PathLike | None = None, *, data: MerData | None = None,
          progress: bool = False, workers: int | None = None, scheduler: str | None = None, fold_batch: int = 1,
          **overrides: Any) -> RunResult:
    """Run `config` (a TrainConfig, a YAML path or None for the defaults, with `overrides`) with
    leave-one-subject-out; returns the run directory and its pooled metrics. Each fold is one task:
    `workers` processes of a local Dask cluster (the default when neither is given, and
    `scheduler="local"`: all cores), the cluster at `scheduler` (an address), or
    `scheduler="synchronous"` in this process (also what `data=`, a MerData already loaded,
    implies). Same predictions whichever runs the folds.
    `fold_batch` K > 1 trains K folds at once per task (`mer_train.fold_batch`: predictions equal to
    float tolerance, not bit for bit).

        result = mer_train.train("configs/ci.yaml", shards=["out/casme2"], macro_shards=["out/ckplus"], workers=2)
        result.metrics["overall"]["uf1"]
    """
    config = as_config(config, overrides)
    return train_runs([config], data=data, progress=progress, workers=workers, scheduler=scheduler,
                      fold_batch=fold_batch, desc=f"{config.method} LOSO")[0]


@dataclass
class _Run:
    """One LOSO run while it is planned, trained and pooled."""

    config: TrainConfig
    data: MerData             # on the CPU (the pooling, the checkpoint checks)
    name: str
    folds: list[dict[str, Any] | None]


def train_runs(configs: list[TrainConfig], *, data: MerData | None = None, progress: bool = False,
               workers: int | None = None, scheduler: str | None = None, fold_batch: int = 1,
               desc: str = "LOSO") -> list[RunResult]:
    """Several LOSO runs at once (`mer-train compare`): every fold of every run is one task of one
    scheduler, under one progress bar (with `fold_batch` K > 1: every K folds of a run). Every run is
    checked before anything is written; a complete fold checkpoint is reused, never retrained."""
    scheduler = distributed.choose_scheduler(workers, scheduler, data is not None)
    if fold_batch < 1:
        raise ConfigError(f"--fold-batch {fold_batch}: must be at least 1 (1 = one fold at a time)")
    loaded: dict[tuple, MerData] = {}  # one load per distinct data config, as on the workers
    runs = []
    for config in configs:  # fail before hours of training, not after
        key = distributed.data_key(config)
        if data is None and key not in loaded:
            with cpu_threads(config.threads):
                loaded[key] = load_data(config)
        run_data = data if data is not None else loaded[key]
        if not distributed.is_remote(scheduler):  # a remote cluster's workers have their own devices
            resolve_device(config.device)
        require_runnable(config, run_data)
        if fold_batch > 1:
            from .fold_batch import check_batchable

            check_batchable(config, run_data)
        runs.append(_Run(config, run_data, _run_name(config, {r.name for r in runs}), []))
    if len({run.name for run in runs}) < len(runs):
        raise ConfigError("two runs with the same run directory name: give each run its own --out")

    tasks = [task for run in runs for task in _plan(run)]
    work, fold_fn = tasks, trainer.train_fold
    if fold_batch > 1:
        from .fold_batch import train_folds

        work, fold_fn = distributed.group_folds(tasks, fold_batch), train_folds
    local, moved = {}, {}
    if scheduler == distributed.SYNCHRONOUS:
        for run in runs:
            device = resolve_device(run.config.device)
            key = (id(run.data), str(device))  # runs on the same data share one copy on the device
            local[run.name] = moved[key] = moved.get(key) or run.data.to(device)
    total = sum(len(run.folds) for run in runs)
    with distributed.fold_runner(work, scheduler=scheduler, workers=workers) as client:
        for run in runs:
            _write_plan(run)
        with tqdm(total=total, initial=total - len(tasks), desc=desc, unit="fold", disable=not progress) as bar:
            results = distributed.run_folds(work, fold_fn, client, local_data=local, progress=progress, bar=bar)
    by_name = {run.name: run for run in runs}
    for task, result in zip(tasks, results):
        by_name[task.run].folds[task.fold] = result
    return [_pool(run) for run in runs]


def _run_name(config: TrainConfig, taken: set[str]) -> str:
    """`method seed S`; when that is taken (named variants of one method, a study's trees), followed
    by as much of the run folder's path as tells it apart: `(seed0)`, `(s2/lightman/seed0)`."""
    name = f"{config.method} seed {config.seed}"
    parts = Path(config.out).parts if config.out else ()
    for depth in range(1, len(parts) + 1):
        if name not in taken:
            break
        name = f"{config.method} seed {config.seed} ({'/'.join(parts[-depth:])})"
    return name


def _plan(run: _Run) -> list[distributed.FoldTask]:
    """Fix the run directory (nothing is written yet); the folds without a complete checkpoint."""
    config, data = run.config, run.data
    out = Path(config.out or f"runs/{config.method}-{datetime.now():%Y%m%d-%H%M%S}").absolute()
    config = run.config = config.replace(out=str(out), shards=[str(Path(p).absolute()) for p in config.shards],
                                         macro_shards=[str(Path(p).absolute()) for p in config.macro_shards])
    tasks = []
    run.folds = []
    for fold, subject in enumerate(data.subjects):
        path = out / "checkpoints" / f"fold-{fold:03d}.pt"
        reused = load_fold(path, config, subject, data)
        run.folds.append(None if reused is None else distributed.without_weights(reused))
        if reused is None:
            tasks.append(distributed.FoldTask(config, fold, subject, path, run.name))
    return tasks


def _write_plan(run: _Run) -> None:
    out, config = Path(run.config.out), run.config
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    todo = sum(fold is None for fold in run.folds)
    log.info("%s on %s: %d folds (%d to train), %d steps each, device %s", config.method, run.data.class_set,
             len(run.folds), todo, config.steps, config.device)


def _pool(run: _Run) -> RunResult:
    """Pool the predictions of all folds; metrics.json and the rest of the run directory."""
    config, data, folds = run.config, run.data, run.folds
    index = {sample_id: i for i, sample_id in enumerate(data.sample_id.tolist())}
    rows = np.array([index[s] for fold in folds for s in fold["sample_id"]])
    probs = np.concatenate([np.asarray(fold["probs"]).reshape(-1, len(data.classes)) for fold in folds])
    y_true, y_pred = data.y.cpu().numpy()[rows], probs.argmax(1)
    metrics = pooled_metrics(y_true, y_pred, data.dataset[rows], data.classes)
    devices = sorted({fold["device"] for fold in folds if "device" in fold})  # none when every fold was reused
    metrics |= {"method": config.method, "protocol": protocol(config), "classes": list(data.classes),
                "class_set": data.class_set, "seed": config.seed,
                "device": ", ".join(devices) or _local_device(config.device),
                "dropped": data.dropped, "sources": data.sources,
                "folds": [{**fold["fold"], "seconds": round(fold["seconds"], 3), "final_loss": fold["curve"][-1]}
                          for fold in folds]}
    out = Path(config.out)
    write_report(out, data, rows, probs, folds, metrics)
    log.info("%s: UF1 %.3f, UAR %.3f over %d samples -> %s", config.method, metrics["overall"]["uf1"],
             metrics["overall"]["uar"], len(rows), out)
    return RunResult(out, config, metrics)


def _local_device(name: str) -> str:
    try:
        return str(resolve_device(name))
    except TrainError:  # every fold came from checkpoints made on another machine's GPU
        return name


@contextmanager
def cpu_threads(threads: int):
    """Use `threads` CPU threads inside the block (0: leave torch's setting), then restore it."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device cuda, but torch {torch.__version__} sees no CUDA device; "
                         "use --device cpu (or auto, which falls back to the CPU)")
    return torch.device(name)


def require_runnable(config: TrainConfig, data: MerData) -> None:
    """Stop before training when `config.method` cannot run on `data`: LOSO needs two subjects, a
    meta-learning task two training subjects, lightman and multitask macro-expression samples (never
    train another method silently)."""
    bilevel, auxiliary = METHODS[config.method]
    subjects = len(data.subjects)
    if subjects < (3 if bilevel else 2):
        raise DataError(
            f"{subjects} subject(s) in --shards: leave-one-subject-out needs at least 2"
            + (f", and --method {config.method} at least 3 (tasks take support and query sets from different "
               "training subjects); use --method erm" if bilevel else "")
        )
    if not auxiliary or len(data.macro_y) or (config.aux_target == "self" and not config.aux_macro_pull):
        return
    dropped = data.dropped.get("macro")
    found = (f"the macro-expression samples found ({', '.join(f'{k} x{n}' for k, n in sorted(dropped.items()))}) "
             f"have no emotion of class set {data.class_set}" if dropped else
             f"no macro-expression shard set was found in --shards {' '.join(config.shards)}")
    raise MissingMacroShards(
        f"--method {config.method} aligns micro-expressions with macro-expressions of the same emotion, but "
        f"{found}. Pass macro-expression shards with --macro-shards DIR: make them with "
        "`mer-prep ckplus RAW OUT` (CK+), or for a try-out `mer-prep synth ckplus RAW && mer-prep ckplus RAW OUT`. "
        "Or train without the auxiliary branch: --method erm or --method maml."
    )


# ----------------------------------------------------------------------------------------------
# checkpoints: written atomically; a complete one of the same config is reused on a rerun


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("out", "eval_batch_size")}


def save_checkpoint(path: Path, config: TrainConfig, data: MerData, result: dict[str, Any]) -> None:
    checkpoint = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "classes": list(data.classes),
                  "model": config.model, "input_size": config.input_size, **result}
    save_atomic(checkpoint, path)


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save with the family's `atomic_write`: the file is complete or absent, never half-written."""
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def load_fold(path: Path, config: TrainConfig, subject: str, data: MerData) -> dict[str, Any] | None:
    """The fold result stored in `path` when it was made by this config for this subject and data."""
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (any unreadable file is simply retrained)
        log.warning("%s: unreadable checkpoint (%s); retraining the fold", path, error)
        return None
    test_ids = data.sample_id[data.subject == subject].tolist()
    if (checkpoint.get("format") != CHECKPOINT_FORMAT
            or _comparable(checkpoint.get("config", {})) != _comparable(config.to_dict())
            or checkpoint.get("fold", {}).get("subject") != subject or checkpoint.get("sample_id") != test_ids
            or checkpoint.get("classes") != list(data.classes)):
        log.warning("%s: made by another config or data; retraining the fold", path)
        return None
    log.info("%s: complete, fold %s reused", path, subject)
    return checkpoint


__all__ = ["train", "train_runs", "RunResult"]
