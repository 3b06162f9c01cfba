"""The files of a run directory: metrics.json, predictions.csv, confusion.png, curves.png.

Plots use matplotlib's object API on an Agg canvas (no pyplot state, no display needed).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from mer_pipeline.shards import write_text_atomic


def write_report(out: Path, data, rows: np.ndarray, probs: np.ndarray, folds: list[dict[str, Any]],
                 metrics: dict[str, Any]) -> None:
    """`rows` index the pooled predictions into `data`; `probs` (len(rows), K) are their probabilities."""
    write_json(out / "metrics.json", metrics)
    write_predictions(out / "predictions.csv", data, rows, probs, folds)
    plot_confusion(out / "confusion.png", np.array(metrics["overall"]["confusion"]), data.classes,
                   f"{metrics['method']}: UF1 {metrics['overall']['uf1']:.3f}, UAR {metrics['overall']['uar']:.3f}")
    plot_curves(out / "curves.png", folds, metrics["method"])


def write_json(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def write_predictions(path: Path, data, rows: np.ndarray, probs: np.ndarray, folds: list[dict[str, Any]]) -> None:
    fold_of = {s: f["fold"]["index"] for f in folds for s in f["sample_id"]}
    y = data.y.cpu().numpy()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "dataset", "subject", "emotion", "fold", "label", "prediction",
                         *[f"p_{c}" for c in data.classes]])
        for row, p in zip(rows, probs):
            writer.writerow([data.sample_id[row], data.dataset[row], data.subject[row], data.emotion[row],
                             fold_of[data.sample_id[row]], data.classes[y[row]], data.classes[int(p.argmax())],
                             *[f"{v:.6f}" for v in p]])


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_confusion(path: Path, matrix: np.ndarray, classes: tuple[str, ...], title: str) -> None:
    figure = _figure(1.2 + 0.8 * len(classes), 1.0 + 0.8 * len(classes))
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        axes.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black", fontsize=9)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)


def plot_curves(path: Path, folds: list[dict[str, Any]], method: str) -> None:
    figure = _figure(7, 4)
    axes = figure.add_subplot()
    for fold in folds:
        axes.plot(fold["curve"], linewidth=0.8, alpha=0.6)
    if folds:
        mean = np.mean([fold["curve"] for fold in folds], axis=0)
        axes.plot(mean, color="black", linewidth=1.8, label="mean over folds")
        axes.legend()
    axes.set_xlabel("step")
    axes.set_ylabel("training loss" + (" (query loss)" if method in ("maml", "lightman") else ""))
    axes.set_title(f"{method}: training loss per LOSO fold ({len(folds)} folds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
