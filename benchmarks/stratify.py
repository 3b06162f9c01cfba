"""Stratified scores of a run on a synthetic set: UF1/UAR by planted amplitude and by confounded vs
clean subject, from the run's predictions.csv and the tree's synth_truth.json.

    python benchmarks/stratify.py runs/NAME data/raw/casme2-hard            # tables on stdout
    python benchmarks/stratify.py runs/NAME/predictions.csv RAW1 RAW2 --json strata.json

The trainer never sees the truth: this joins its pooled LOSO predictions to what the generator
planted, by sample id, afterwards. Library use (benchmarks/study.py):

    truth = clip_truth([load_truth(raw)])              # sample_id -> the fields below
    rows = read_predictions(run / "predictions.csv")
    scores = stratified_scores(rows, truth, "amplitude_bin")   # {bin: {n, uf1, uar, accuracy, ...}}
    table = stratify(rows, truth)                               # every stratum of STRATA at once

Strata (`clip_truth` fields): `amplitude` (max |d| of the planted apex field, raw px),
`aligned_amplitude` (the same in stage one's S x S aligned crop, S = 128 by default: what the flow
has to see), `amplitude_bin` (bins of `aligned_amplitude`, AMPLITUDE_BINS), `subject_cues`
(confounded | clean: whether the clip's subject has confounder cues; `none` in a tree without
confounders), `cue_kind` (none | light | head | both), `expression` (spontaneous | posed, trees with
the gap), `habit` (yes | no: the clip carries its subject's habitual AU). Scores are
`mer_train.metrics.classification_metrics` on the stratum's rows: UF1 and UAR average over the
classes present in the stratum, so a stratum without some class is not penalised for it.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mer_pipeline.align import alignment_transform, transform_scale
from mer_pipeline.face import dlib68_anchors
from mer_train.metrics import classification_metrics

TRUTH_FILE = "synth_truth.json"
ALIGNED_SIZE = 128  # stage one's default --size
# edges of the amplitude bins, px of the 128 crop: below ~0.1 px the flow of a still clip is as large
# (p99 0.13-0.25 px, docs/synth.md), 0.1-0.25 near that floor, then clear motion
AMPLITUDE_BINS = (0.1, 0.25, 0.5, 1.0)
STRATA = ("amplitude_bin", "subject_cues", "cue_kind", "expression", "habit")


def load_truth(path: Path) -> dict:
    """synth_truth.json, given the file or the raw tree that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no synth_truth.json; pass the raw tree made by `mer-prep synth` "
                                "(not the shard folder)")
    return json.loads(path.read_text(encoding="utf-8"))


def bin_label(value: float, edges: Sequence[float] = AMPLITUDE_BINS) -> str:
    """'<0.1', '0.1-0.25', ..., '>=1' for the bins between `edges`."""
    edges = list(edges)
    if value < edges[0]:
        return f"<{edges[0]:g}"
    for lo, hi in zip(edges, edges[1:]):
        if value < hi:
            return f"{lo:g}-{hi:g}"
    return f">={edges[-1]:g}"


def bin_order(edges: Sequence[float] = AMPLITUDE_BINS) -> list[str]:
    edges = list(edges)
    return [f"<{edges[0]:g}"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:])] + [f">={edges[-1]:g}"]


def aligned_scale(entry: dict, landmarks, size: int = ALIGNED_SIZE) -> float:
    """How many pixels of stage one's aligned crop one raw pixel of this clip's onset frame is."""
    onset = np.asarray(entry["head"]["onset_transform"], dtype=np.float64)
    points = np.asarray(landmarks, dtype=np.float64) @ onset[:, :2].T + onset[:, 2]
    return transform_scale(alignment_transform(dlib68_anchors(points).astype(np.float64), size))


def clip_truth(truths: Iterable[dict], edges: Sequence[float] = AMPLITUDE_BINS,
               size: int = ALIGNED_SIZE) -> dict[str, dict]:
    """sample_id -> the clip's strata (module docstring) and its subject, emotion, dataset, over the
    clips of one or more truth documents (a composite run's trees)."""
    out: dict[str, dict] = {}
    for truth in truths:
        has_cues = "confounders" in truth.get("preset", {})
        for entry in truth["clips"]:
            subject = truth["subjects"][f"{entry['dataset']}/{entry['subject']}"]
            aligned = entry["amplitude"] * aligned_scale(entry, subject["landmarks"], size)
            kind = subject.get("confounders", {}).get("kind", "none")
            out[entry["sample_id"]] = {
                "dataset": entry["dataset"],
                "subject": entry["subject"],
                "emotion": entry["emotion"],
                "amplitude": entry["amplitude"],
                "aligned_amplitude": round(aligned, 4),
                "amplitude_bin": bin_label(aligned, edges),
                "subject_cues": ("confounded" if kind != "none" else "clean") if has_cues else "none",
                "cue_kind": kind,
                "expression": entry.get("expression", "unknown"),
                "habit": "yes" if entry.get("habit") else "no",
                "session": entry.get("session"),
            }
    return out


def read_predictions(path: Path) -> list[dict]:
    """The rows of a run's predictions.csv (a run directory or the file): sample_id, label,
    prediction, subject, dataset, ... as strings."""
    path = Path(path)
    if path.is_dir():
        path = path / "predictions.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"sample_id", "label", "prediction"} <= set(rows[0]):
        raise ValueError(f"{path}: not a predictions.csv of mer-train (needs sample_id, label, prediction)")
    return rows


def _classes(rows: list[dict]) -> list[str]:
    probs = [k[2:] for k in rows[0] if k.startswith("p_")] if rows else []
    return probs or sorted({r["label"] for r in rows} | {r["prediction"] for r in rows})


def scores(rows: list[dict], classes: Sequence[str]) -> dict:
    """{n, uf1, uar, accuracy, subjects} of some prediction rows (UF1/UAR over the classes present)."""
    index = {c: i for i, c in enumerate(classes)}
    metrics = classification_metrics([index[r["label"]] for r in rows], [index[r["prediction"]] for r in rows],
                                     classes)
    return {"n": metrics["n"], "uf1": metrics["uf1"], "uar": metrics["uar"], "accuracy": metrics["accuracy"],
            "subjects": len({r["subject"] for r in rows}), "classes_scored": metrics["classes_scored"]}


def stratified_scores(rows: list[dict], truth: dict[str, dict], by: str) -> dict[str, dict]:
    """Scores of the prediction rows grouped by one field of `clip_truth` (e.g. "amplitude_bin",
    "subject_cues"). Raises when a predicted sample is not in the truth (wrong tree or seed)."""
    missing = [r["sample_id"] for r in rows if r["sample_id"] not in truth]
    if missing:
        raise KeyError(f"{len(missing)} predicted samples are not in the truth file(s), e.g. {missing[0]!r}: "
                       "pass the raw tree(s) this run's shards were made from")
    classes = _classes(rows)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(truth[r["sample_id"]][by]), []).append(r)
    order = bin_order() if by == "amplitude_bin" else sorted(groups)
    return {k: scores(groups[k], classes) for k in order + sorted(set(groups) - set(order)) if k in groups}


def stratify(rows: list[dict], truth: dict[str, dict], strata: Sequence[str] = STRATA) -> dict:
    """{"all": scores, stratum: {value: scores}} for every stratum in `strata`."""
    classes = _classes(rows)
    return {"all": scores(rows, classes), **{by: stratified_scores(rows, truth, by) for by in strata}}


def per_subject(rows: list[dict], truth: dict[str, dict] | None = None) -> dict[str, dict]:
    """Scores per test subject (for paired differences between runs on the same folds), with the
    subject's cue state when `truth` is given."""
    classes = _classes(rows)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"{r.get('dataset', '')}/{r['subject']}", []).append(r)
    out = {}
    for key, group in sorted(groups.items()):
        out[key] = scores(group, classes)
        if truth is not None:
            out[key]["subject_cues"] = truth[group[0]["sample_id"]]["subject_cues"]
    return out


def markdown(table: dict) -> str:
    """The strata of `stratify` as markdown tables."""
    def fmt(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    a = table["all"]
    lines = [f"all: n {a['n']}, UF1 {fmt(a['uf1'])}, UAR {fmt(a['uar'])}", ""]
    for by, groups in table.items():
        if by == "all":
            continue
        lines += [f"| {by} | n | subjects | UF1 | UAR | accuracy |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {s['n']} | {s['subjects']} | {fmt(s['uf1'])} | {fmt(s['uar'])} | {fmt(s['accuracy'])} |"
                  for k, s in groups.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory or its predictions.csv")
    parser.add_argument("raw", type=Path, nargs="+", help="raw tree(s) with synth_truth.json the shards came from")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables as JSON here")
    args = parser.parse_args(argv)
    table = stratify(read_predictions(args.run), clip_truth(load_truth(r) for r in args.raw))
    print(markdown(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
