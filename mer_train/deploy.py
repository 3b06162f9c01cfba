"""A trained model for use: `fit` trains one final model on every subject of a shard set, `predict`
labels the samples of any shard set with it (or with the fold models of a LOSO run, averaged).

The LOSO run stays the evaluation; `fit` is what a lab uses on its own recordings afterwards.
`DIR/model.pt` carries everything prediction needs: the class set, the input spec, the stage-one
settings the shards must have been made with, the training config, the weights (one set, or the
eval_adapt sets whose predictions are averaged) and the auxiliary targets (for test-time adaptation).

    result = mer_train.fit("configs/lightman.yaml", shards=["out/casme2"], macro_shards=["out/ckplus"], out="model")
    mer_train.predict("model/model.pt", ["out/new-clips"], "predictions.csv")
"""
from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from mer_pipeline.shards import atomic_write

from . import trainer
from .config import TrainConfig, as_config, build_config, protocol, save_config
from .data import PREP_KEYS, MerData, load_data
from .errors import DataError, TrainError
from .loso import cpu_threads, require_runnable, resolve_device, save_atomic

log = logging.getLogger("mer_train")

MODEL_FORMAT = "mer-train-model/1"


@dataclass
class FitResult:
    """A fitted model: the output folder, its model.pt and the resolved config."""

    out: Path
    model_path: Path
    config: TrainConfig


@dataclass
class PredictResult:
    """Predictions written: the CSV, the number of samples, the classes and how many samples each got."""

    out: Path
    n: int
    classes: tuple[str, ...]
    counts: dict[str, int]


def fit(config: TrainConfig | str | os.PathLike | None = None, *, data: MerData | None = None,
        progress: bool = False, **overrides: Any) -> FitResult:
    """Train `config` on every subject of its shards (no test subject) and write out/model.pt and
    out/config.yaml."""
    config = as_config(config, overrides)
    if config.out is None:
        raise TrainError("fit needs an output folder: pass --out DIR (model.pt is written there)")
    with cpu_threads(config.threads):
        device = resolve_device(config.device)
        data = (data or load_data(config)).to(device)
        require_runnable(config, data)
        out = Path(config.out).absolute()
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "config.yaml")
        trained = trainer.train_model(config, data, 0, None, device, progress)
        weights = [w if w is not None else dict(trained.model.named_parameters())
                   for w in trainer.support_weights(config, trained, data, 0)]
    align = trained.align
    checkpoint = {
        "format": MODEL_FORMAT, "config": config.to_dict(), "classes": list(data.classes), "class_set": data.class_set,
        "model": config.model, "input_size": config.input_size, "input_norm": config.input_norm,
        "prep": shard_prep(data), "protocol": protocol(config), "face_mask": data.face_mask.cpu(),
        "landmarks": None if data.landmarks is None else torch.from_numpy(data.landmarks),
        "weights": [{k: v.detach().cpu() for k, v in w.items()} for w in weights],
        "align": None if align is None else {
            name: None if getattr(align, name) is None else getattr(align, name).cpu() for name in trainer.ALIGN_TENSORS},
        "trained_on": {"subjects": len(data.subjects), "samples": len(data.y), "macro_samples": len(data.macro_y),
                       "final_loss": trained.curve[-1] if trained.curve else None},
    }
    path = out / "model.pt"
    save_atomic(checkpoint, path)
    log.info("fitted %s on %d subjects (%d samples) -> %s", config.method, len(data.subjects), len(data.y), path)
    return FitResult(out, path, config)


def shard_prep(data: MerData) -> dict[str, Any]:
    """The stage-one settings (size, flow, backend, stabilize) shared by the micro shard sets of `data`."""
    preps = {json.dumps(s.get("prep", {}), sort_keys=True) for s in data.sources if s.get("micro")}
    if len(preps) > 1:
        raise DataError("the micro-expression shard sets were made with different stage-one settings "
                        f"({'; '.join(sorted(preps))}); a model expects one: remake them with the same "
                        "--size, --flow and --backend")
    return json.loads(preps.pop()) if preps else {}


def load_model(path: str | os.PathLike) -> dict[str, Any]:
    """A model.pt written by `fit`, or a LOSO run directory (its fold models, averaged)."""
    path = Path(path)
    if path.is_dir():
        return _run_as_model(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainError(f"{path}: no such model; make one with `mer-train fit --shards OUT --out DIR`") from None
    except Exception as error:  # noqa: BLE001  (torch raises many kinds for a file that is not a checkpoint)
        raise TrainError(f"{path}: not a readable model file ({error}); make one with `mer-train fit`") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != MODEL_FORMAT:
        raise TrainError(f"{path}: not a {MODEL_FORMAT} file written by `mer-train fit` (a LOSO run directory "
                         "also works: pass the folder)")
    return checkpoint


def _run_as_model(run: Path) -> dict[str, Any]:
    folds = sorted((run / "checkpoints").glob("fold-*.pt"))
    if not folds:
        raise TrainError(f"{run}: no fold checkpoints in {run / 'checkpoints'}; pass a LOSO run directory of "
                         "`mer-train train` or a model.pt of `mer-train fit`")
    checkpoints = [torch.load(p, map_location="cpu", weights_only=True) for p in folds]
    config = checkpoints[0]["config"]
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    preps = [s["prep"] for s in metrics.get("sources", []) if s.get("micro") and "prep" in s]
    return {"format": MODEL_FORMAT, "config": config, "classes": checkpoints[0]["classes"],
            "class_set": metrics.get("class_set", config.get("classes")), "model": config["model"],
            "input_size": config["input_size"], "input_norm": config["input_norm"],
            "prep": preps[0] if preps else {}, "protocol": protocol(build_config(config, {}, source=str(run))),
            "face_mask": None, "weights": [c["state_dict"] for c in checkpoints], "align": None,
            "from_run": str(run)}


def predict(model: str | os.PathLike | dict, shards: Sequence[str | os.PathLike], out: str | os.PathLike, *,
            device: str = "auto", progress: bool = False) -> PredictResult:
    """Label every sample of `shards` with `model` (see `load_model`); write `out` (CSV: sample_id,
    predicted, p_<class> per class). Emotions in the shards are never read, so unlabelled samples
    (own recordings, spotted intervals) work; every kind of sample is labelled."""
    checkpoint = model if isinstance(model, dict) else load_model(model)
    config = build_config(checkpoint["config"], {"shards": [str(s) for s in shards], "macro_shards": [],
                                                 "classes": _class_set_name(checkpoint), "device": device},
                          source="the model's config")
    classes = tuple(checkpoint["classes"])
    with cpu_threads(config.threads):
        data = load_data(config, classes=classes, face_mask=checkpoint.get("face_mask"))
        check_prep(checkpoint, data)
        dev = resolve_device(device)
        data = data.to(dev)
        if checkpoint.get("landmarks") is not None:  # the trained model's template geometry (region models)
            data.landmarks = checkpoint["landmarks"].numpy()
        net = trainer.build_model(config, data).to(dev)
        weights = [{k: v.to(dev) for k, v in w.items()} for w in checkpoint["weights"]]
        align = _align(checkpoint, data, config, dev)
        if config.test_adapt_steps and align is None and config.test_adapt_loss == "aux":
            raise TrainError("this model adapts to each person at test time with its auxiliary targets, which a "
                             "LOSO run directory does not carry; predict with a model.pt written by `mer-train fit`")
        x = trainer.fold_inputs(config, data)
        probs = np.zeros((len(data.y), len(classes)))
        for subject in data.subjects:  # test-time adaptation is per person; labels are never passed
            rows = np.flatnonzero(data.subject == subject)
            probs[rows] = trainer.predict_subject(net, weights, x[torch.as_tensor(rows, device=dev)], config, align)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    predicted = probs.argmax(1)
    with atomic_write(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "predicted", *[f"p_{c}" for c in classes]])
        for sample_id, k, p in zip(data.sample_id, predicted, probs):
            writer.writerow([sample_id, classes[k], *[f"{v:.6f}" for v in p]])
    counts = {c: int((predicted == i).sum()) for i, c in enumerate(classes)}
    log.info("%d samples labelled -> %s (%s)", len(predicted), out, ", ".join(f"{c} {n}" for c, n in counts.items()))
    return PredictResult(out, len(predicted), classes, counts)


def _class_set_name(checkpoint: dict) -> str | None:
    from .labels import CLASS_SET_NAMES

    name = checkpoint.get("class_set")
    return name if name in CLASS_SET_NAMES else None


def check_prep(checkpoint: dict, data: MerData) -> None:
    """Refuse shards made with other stage-one settings than the model's shards (a model trained on
    TV-L1 flow at 128 px does not read Farneback flow at 64 px)."""
    expected = checkpoint.get("prep") or {}
    flags = {"size": "--size", "flow": "--flow", "backend": "--backend", "stabilize": "--stabilize/--no-stabilize"}
    for source in data.sources:
        found = source.get("prep") or {}
        wrong = [k for k in PREP_KEYS if expected.get(k) is not None and found.get(k) != expected.get(k)]
        if wrong:
            differences = ", ".join(f"{k} {found.get(k)!r} (the model's: {expected[k]!r})" for k in wrong)
            remake = " ".join(f"{flags[k]} {expected[k]}" for k in ("size", "flow", "backend") if expected.get(k) is not None)
            raise DataError(f"{source['path']}: made with {differences}. Remake the shards with the model's "
                            f"settings: mer-prep {source.get('dataset') or 'DATASET'} RAW OUT {remake}")


def _align(checkpoint: dict, data: MerData, config: TrainConfig, device: torch.device) -> trainer.Align | None:
    stored = checkpoint.get("align")
    if stored is None:
        return None
    permutation = stored.get("permutation")
    return trainer.Align(stored["targets"].to(device), stored["has_target"].to(device), data.face_mask,
                         config.aux_target, config.aux_gate, None if permutation is None else permutation.to(device),
                         config.aux_smooth, config.aux_macro_pull)


__all__ = ["fit", "predict", "load_model", "FitResult", "PredictResult"]
