"""Leave-one-subject-out over a shard set: one fold per subject, checkpoints, pooled metrics.

`train(config)` plans one fold per subject, runs each with `mer_train.trainer.train_fold` (the
method), keeps a fold's checkpoint so that a rerun never redoes it, pools the predictions of all
folds and writes the run directory.
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
from tqdm.auto import tqdm

from . import trainer
from .config import TrainConfig, load_config, save_config
from .data import MerData, load_data
from .errors import DataError, MissingMacroShards, TrainError
from .metrics import pooled_metrics
from .report import write_report
from .trainer import METHODS

log = logging.getLogger("mer_train")

CHECKPOINT_FORMAT = "mer-train-checkpoint/1"


@dataclass
class RunResult:
    out: Path
    config: TrainConfig
    metrics: dict[str, Any]

# ----------------------------------------------------------------------------------------------
# LOSO over all subjects


def train(config: TrainConfig | str | os.PathLike | None = None, *, data: MerData | None = None,
          progress: bool = False, **overrides: Any) -> RunResult:
    """Run `config` (a TrainConfig, a YAML path or None for the defaults, with `overrides`) with
    leave-one-subject-out; returns the run directory and its pooled metrics.

        result = mer_train.train("configs/ci.yaml", shards=["out/casme2"], macro_shards=["out/ckplus"])
        result.metrics["overall"]["uf1"]
    """
    if not isinstance(config, TrainConfig):
        config = load_config(config, overrides)
    elif overrides:
        config = config.replace(**overrides)
    with cpu_threads(config.threads):
        return _train(config, data, progress)


def _train(config: TrainConfig, data: MerData | None, progress: bool) -> RunResult:
    device = resolve_device(config.device)
    data = (data or load_data(config)).to(device)
    require_runnable(config, data)
    out = Path(config.out or f"runs/{config.method}-{datetime.now():%Y%m%d-%H%M%S}").absolute()
    config = config.replace(out=str(out), shards=[str(Path(p).absolute()) for p in config.shards],
                            macro_shards=[str(Path(p).absolute()) for p in config.macro_shards])
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    log.info("%s on %s: %d folds, %d steps each, device %s", config.method, data.class_set, len(data.subjects),
             config.steps, device)

    folds = []
    for fold, subject in enumerate(tqdm(data.subjects, desc=f"{config.method} LOSO", disable=not progress)):
        path = out / "checkpoints" / f"fold-{fold:03d}.pt"
        result = load_fold(path, config, subject, data)
        if result is None:
            result = trainer.train_fold(config, data, fold, subject, device, progress)
            save_checkpoint(path, config, data, result)
        folds.append(result)

    index = {sample_id: i for i, sample_id in enumerate(data.sample_id.tolist())}
    rows = np.array([index[s] for fold in folds for s in fold["sample_id"]])
    probs = np.concatenate([np.asarray(fold["probs"]).reshape(-1, len(data.classes)) for fold in folds])
    y_true, y_pred = data.y.cpu().numpy()[rows], probs.argmax(1)
    metrics = pooled_metrics(y_true, y_pred, data.dataset[rows], data.classes)
    metrics |= {"method": config.method, "classes": list(data.classes), "class_set": data.class_set,
                "seed": config.seed, "device": str(device), "dropped": data.dropped, "sources": data.sources,
                "folds": [{**fold["fold"], "seconds": round(fold["seconds"], 3), "final_loss": fold["curve"][-1]}
                          for fold in folds]}
    write_report(out, data, rows, probs, folds, metrics)
    log.info("%s: UF1 %.3f, UAR %.3f over %d samples -> %s", config.method, metrics["overall"]["uf1"],
             metrics["overall"]["uar"], len(rows), out)
    return RunResult(out, config, metrics)


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
    if not auxiliary or len(data.macro_y):
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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(checkpoint, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)  # a checkpoint is complete or absent, never half-written


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
