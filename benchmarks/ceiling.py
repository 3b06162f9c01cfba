"""The noise-floor ceiling: what an oracle that knows every planted field scores from the flow that
the trainer sees. It bounds every method trained on that flow (issue #14).

    python benchmarks/ceiling.py data/raw/casme2-hard data/shards/casme2-hard   # tables on stdout
    python benchmarks/ceiling.py RAW SHARDS --config configs/study.yaml --json ceiling.json

Definition. For a tree (its synth_truth.json and the shard set stage one made from it):
1. the measured field of a clip is the [u, v] part of the trainer's input (`mer_train.data.load_data`
   with the given config: the shard's flow resized to `input_size`, RMS-normalised; the scale does
   not matter below);
2. the planted field of a clip is its apex field from synth_truth.json (facial motion only: no head
   motion, sensor noise or lighting cue) mapped into the shard's S x S aligned crop exactly as
   `template_oracle.aligned_field` does (the similarity stage one computes from the onset frame's
   five dlib anchors; a least-squares similarity from the planted landmarks to the landmarks the
   shard stores, i.e. what stage one's detector found, gives the same mean cosine with the flow to
   0.001 on the study's trees), then resized to `input_size` by the trainer's own `resized_flow`;
3. the oracle predicts, for every clip, the label of the planted field of largest cosine with its
   measured field, over the planted fields of *every* clip of the tree, its own included, and
   over the whole input frame the trainer sees (the trainer's face ellipse leaves out the forehead,
   where AU 1, 2 and 4 move, and lowers the oracle's UF1 by 0.01-0.07 on the study's trees).
With a clean flow the own field wins (cosine 1) and the oracle is always right; the flow's noise
(sensor noise, JPEG, residual head motion, lighting cues, TV-L1's smoothing) is what makes another
clip's field win, and a clip whose field is closest to one of another label is then lost. Below
the noise floor the oracle is near chance, at large amplitude near 1: an upper bound, by amplitude
bin, on what any method can read from this flow. `--exclude-own` scores the nearest *other* clip's
planted field instead (the oracle then also pays for labels whose action units look alike).
Scores are `stratify.stratified_scores` of the oracle's predictions: UF1/UAR per bin over the
classes present in the bin, as for the methods. What the oracle ignores: everything in the flow
that is not the planted facial motion. Lighting and head cues that go with the label inside one
subject, and a subject's own mix of labels, are information too; a method that has the test
subject's other labelled clips (the study's clip-fold bound) can use them and pass this ceiling,
one trained with LOSO cannot.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from stratify import clip_truth, load_truth, markdown, scores, stratified_scores
from template_oracle import aligned_field

STUDY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "study.yaml"


def planted_inputs(truth: dict, sample_ids, crop: int, size: int) -> torch.Tensor:
    """(N, 2, size, size): the planted apex fields of `sample_ids`, in pixels of the trainer's input
    (the `crop` x `crop` aligned frame of stage one, resized as the trainer resizes the flow)."""
    from mer_train.data import resized_flow

    entries = {c["sample_id"]: c for c in truth["clips"]}
    missing = [s for s in sample_ids if s not in entries]
    if missing:
        raise KeyError(f"{len(missing)} samples of the shards are not in the truth file, e.g. {missing[0]!r}: "
                       "pass the raw tree these shards were made from")
    fields = np.stack([aligned_field(entries[s], truth["subjects"][f"{entries[s]['dataset']}/{entries[s]['subject']}"]
                                     ["landmarks"], crop) for s in sample_ids])  # (N, 2, crop, crop)
    return resized_flow(fields, size)


def cosines(measured: torch.Tensor, planted: torch.Tensor) -> np.ndarray:
    """(N, M) cosine of every measured field (N, 2, H, W) with every planted field (M, 2, H, W) over
    the whole frame; a zero field has cosine 0 with everything."""
    a, b = measured.flatten(1).double(), planted.flatten(1).double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a @ b.T).numpy()


def oracle_predictions(similarity: np.ndarray, labels: np.ndarray, exclude_own: bool = False) -> np.ndarray:
    """The label of the best-matching planted field of each clip (row i of `similarity`: clip i's
    measured field against every clip's planted field, the same clips in the same order)."""
    similarity = np.array(similarity, dtype=np.float64)
    if exclude_own:
        np.fill_diagonal(similarity, -np.inf)
    return np.asarray(labels)[similarity.argmax(1)]


def oracle_rows(raw: Path, shards: Path, config: Path = STUDY_CONFIG, exclude_own: bool = False) -> list[dict]:
    """The oracle's predictions on a tree, as rows of a predictions.csv (sample_id, label,
    prediction, subject, dataset) plus `own_cosine`, the cosine of the measured field with its own
    planted field."""
    from mer_train.config import load_config
    from mer_train.data import load_data

    data = load_data(load_config(config, {"shards": [str(shards)]}))
    crop = _crop_size(shards)
    planted = planted_inputs(load_truth(raw), list(data.sample_id), crop, data.x.shape[-1])
    similarity = cosines(data.x[:, :2], planted)
    classes = np.array(data.classes, dtype=object)
    y = data.y.numpy()
    predicted = oracle_predictions(similarity, y, exclude_own)
    return [{"sample_id": s, "label": classes[t], "prediction": classes[p], "subject": subject, "dataset": dataset,
             "own_cosine": float(own)}
            for s, t, p, subject, dataset, own in zip(data.sample_id, y, predicted, data.subject, data.dataset,
                                                     np.diag(similarity))]


def _crop_size(shards: Path) -> int:
    from mer_pipeline.shards import find_shard_sets, open_shards

    sizes = {open_shards(path, fields=("landmarks",), verify=False).manifest.get("config", {}).get("prep", {})
             .get("size") for path in find_shard_sets(Path(shards))}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"{shards}: the shard sets must share one aligned size in their manifests, found {sizes}")
    return int(sizes.pop())


def ceiling(raw: Path, shards: Path, config: Path = STUDY_CONFIG, exclude_own: bool = False) -> dict:
    """{"all": scores, "amplitude_bin": {bin: scores}} of the oracle on one tree; `raw` is the raw
    tree with synth_truth.json, `shards` the micro-expression shard set(s) made from it."""
    rows = oracle_rows(raw, shards, config, exclude_own)
    classes = sorted({r["label"] for r in rows})
    truth = clip_truth([load_truth(raw)])
    return {"all": scores(rows, classes), "amplitude_bin": stratified_scores(rows, truth, "amplitude_bin")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path, help="raw tree with synth_truth.json (made by `mer-prep synth`)")
    parser.add_argument("shards", type=Path, help="the shard set stage one made from it (or a folder of sets)")
    parser.add_argument("--config", type=Path, default=STUDY_CONFIG, help="the trainer config whose input is scored")
    parser.add_argument("--exclude-own", action="store_true", help="match against the other clips' fields only")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables as JSON here")
    args = parser.parse_args(argv)
    table = ceiling(args.raw, args.shards, args.config, args.exclude_own)
    print(markdown(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
