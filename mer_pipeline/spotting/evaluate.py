"""`mer-prep spot-eval OUT`: the MEGC spotting metric on what `mer-prep spot` wrote, plus false
positives per minute, and with a recogniser's predictions the spot-then-recognise score."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import AnnotationError, MerError
from .metric import KINDS, Interval, spot_then_recognise, spotting_metrics

METRICS = "spotting_metrics.json"


def read_intervals(path: Path) -> list[Interval]:
    """Intervals of an intervals.csv / ground_truth.csv (video, onset, apex, offset, kind[, score, emotion])."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read ({error.strerror or error}); rerun mer-prep spot") from error
    out = []
    for number, row in enumerate(rows, start=2):
        try:
            kind = row["kind"].strip()
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r}, expected micro or macro")
            out.append(Interval(row["video"], int(row["onset"]), int(row["offset"]), kind,
                                int(row["apex"]) if (row.get("apex") or "").strip() else None,
                                float(row.get("score") or 0.0), (row.get("emotion") or "").strip()))
        except (KeyError, ValueError) as error:
            raise AnnotationError(f"{path} row {number}: {error}; columns video, onset, apex, offset, kind") from error
    return out


def _video_minutes(out: Path) -> dict[str, float]:
    path = out / "videos.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["video"]: float(r["seconds"]) / 60 for r in csv.DictReader(handle) if r.get("status") == "ok"}


def _predicted_labels(path: Path, column: str | None) -> dict[str, str]:
    """sample_id -> predicted class from a predictions CSV (`mer-train predict`)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        names = reader.fieldnames or []
        choice = column or next((c for c in ("predicted", "prediction", "pred", "label") if c in names), None)
        if "sample_id" not in names or choice not in names:
            raise MerError(f"{path}: needs a sample_id column and a predicted-class column ({column or 'predicted'}); "
                           f"it has {', '.join(names)}. Name the column with --column")
        return {r["sample_id"]: r[choice] for r in reader}


def evaluate(out: Path, truth: Path | None = None, predictions: Path | None = None, column: str | None = None,
             write: bool = True) -> dict:
    """Spotting metrics of the spot run in `out` (against OUT/ground_truth.csv or `truth`); written to
    OUT/spotting_metrics.json. With `predictions` (sample_id -> class), also the STR score."""
    out = Path(out)
    truth_path = Path(truth) if truth else out / "ground_truth.csv"
    if not (out / "intervals.csv").is_file():
        raise MerError(f"{out}: no intervals.csv; run `mer-prep spot DATASET RAW {out}` first")
    if not truth_path.is_file():
        raise MerError(f"{truth_path}: no ground truth; the dataset's sheet gave none. Pass a CSV of "
                       "video, onset, apex, offset, kind with --truth")
    predicted, truth_intervals = read_intervals(out / "intervals.csv"), read_intervals(truth_path)
    minutes = _video_minutes(out)
    known = set(minutes) or {i.video for i in predicted} | {t.video for t in truth_intervals}
    predicted = [p for p in predicted if p.video in known]  # a video that failed has no minutes to count
    metrics = spotting_metrics(predicted, truth_intervals)
    total = sum(minutes.values())
    fps = {v: metrics["per_video"].get(v, {}).get("fp", 0) for v in minutes}
    empty = [v for v in minutes if not any(t.video == v for t in truth_intervals)]
    metrics["false_positives_per_minute"] = sum(fps.values()) / total if total else None
    metrics["distractor_only"] = {
        "videos": sorted(empty), "minutes": round(sum(minutes[v] for v in empty), 4),
        "false_positives": sum(fps[v] for v in empty),
        "false_positives_per_minute": (sum(fps[v] for v in empty) / sum(minutes[v] for v in empty)) if empty else None,
    }
    metrics["minutes"] = round(total, 4)
    if predictions:
        labels = _predicted_labels(Path(predictions), column)
        ids = _sample_ids(out)
        # classes compared as written, without case: the model's classes must be the sheet's
        pairs = [(truth_intervals[j].label.lower(), labels.get(ids.get(_key(predicted[i])), "").lower())
                 for i, j in metrics["matches"]]
        metrics["spot_then_recognise"] = spot_then_recognise(metrics["f1_overall"], [t for t, _ in pairs],
                                                             [p for _, p in pairs])
    if write:
        (out / METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return metrics


def _key(interval: Interval) -> tuple[str, int, int]:
    return interval.video, interval.onset, interval.offset


def _sample_ids(out: Path) -> dict[tuple[str, int, int], str]:
    with open(out / "intervals.csv", newline="", encoding="utf-8") as handle:
        return {(r["video"], int(r["onset"]), int(r["offset"])): r.get("sample_id", "") for r in csv.DictReader(handle)}


def summary_line(metrics: dict) -> str:
    def show(value):
        return "n/a" if value is None else f"{value:.3f}"

    c = metrics["counts"]
    def counts(kind):
        return f"(TP {c[kind]['tp']}, FP {c[kind]['fp']}, FN {c[kind]['fn']})"

    line = (f"F1 micro {show(metrics['f1_micro'])} {counts('micro')}, macro {show(metrics['f1_macro'])} "
            f"{counts('macro')}, overall {show(metrics['f1_overall'])}")
    if metrics.get("false_positives_per_minute") is not None:
        line += f"; {metrics['false_positives_per_minute']:.2f} false positives per minute"
    distractors = metrics.get("distractor_only") or {}
    if distractors.get("videos"):
        line += (f" ({distractors['false_positives']} in {distractors['minutes']:.2f} min of distractor-only video, "
                 f"{show(distractors['false_positives_per_minute'])}/min)")
    if "spot_then_recognise" in metrics:
        line += f"; STRS {show(metrics['spot_then_recognise']['strs'])}"
    return line
