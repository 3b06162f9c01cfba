"""Shard sets -> tensors, once per run, and the per-fold samplers of training indices.

The data is small (the MEGC2019 composite is 442 samples), so everything is loaded once into
tensors; no file is read during training. Shards are read through `mer_pipeline.shards` only.

Input of a micro-expression sample: `[u, v, strain]` resized to `input_size`. With
`input_norm = "rms"` the flow is divided by its RMS magnitude over the face region and the strain
by its RMS, per sample: stage-one flow of a micro-expression is ~0.1-0.8 px and varies a lot
between people and datasets, while *where* and *in which direction* the face moves is the signal.
Macro-expression samples give only their flow, normalised to unit norm over the face region: they
are the alignment targets of the auxiliary branch. The aligned onset and apex frames of a micro
sample give `photo` (brightness change and image gradients), which the label-free `self` target of
the auxiliary branch scores its decoded displacement against.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mer_pipeline.sample import subject_id
from mer_pipeline.shards import find_shard_sets, open_shards

from .config import TrainConfig
from .errors import DataError, LabelSetError
from .labels import CLASS_SETS, ClassSet, canonical_emotion, get_class_set, infer_class_set

log = logging.getLogger("mer_train")

EPS = 1e-8
PREP_KEYS = ("size", "flow", "backend", "stabilize")  # the stage-one settings a trained model expects of its shards
# The config fields `load_data` reads: two configs equal on these load the same MerData (a Dask
# worker keeps one loaded set per key, however many folds and methods it trains).
DATA_KEYS = ("shards", "macro_shards", "classes", "input_size", "input_norm", "model")
FACE_MARGIN = 1.1  # the face ellipse is the landmarks' bounding box ellipse, enlarged by 10 %


@dataclass
class MerData:
    """Micro samples (trained and evaluated with LOSO) and macro samples (alignment targets)."""

    class_set: str
    classes: tuple[str, ...]
    x: torch.Tensor             # (N, 3, H, W) micro inputs [u, v, strain]
    y: torch.Tensor             # (N,) class index
    sample_id: np.ndarray       # (N,) text columns
    dataset: np.ndarray
    subject: np.ndarray         # "dataset/subject": the LOSO unit
    emotion: np.ndarray         # as written in the dataset
    macro_field: torch.Tensor   # (M, 2, H, W) macro flow, unit norm over the face
    macro_y: torch.Tensor       # (M,)
    macro_subject: np.ndarray   # (M,)
    macro_emotion: np.ndarray   # (M,) canonical emotion as written (prototypes per source emotion)
    face_mask: torch.Tensor     # (1, 1, H, W) 1 inside the face region
    photo: torch.Tensor | None = None  # (N, 4, H, W) apex - onset, d/dx, d/dy of the frames, flow RMS in pixels
    landmarks: np.ndarray | None = None  # (68, 2) mean onset landmarks at the input size (the template's
                                         # geometry, for region models); None without 68-point landmarks
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return sorted(set(self.subject.tolist()))

    def to(self, device: torch.device) -> "MerData":
        return replace(self, x=self.x.to(device), y=self.y.to(device), macro_field=self.macro_field.to(device),
                       macro_y=self.macro_y.to(device), face_mask=self.face_mask.to(device),
                       photo=None if self.photo is None else self.photo.to(device))


def load_data(config: TrainConfig, *, classes: tuple[str, ...] | None = None,
              face_mask: torch.Tensor | None = None) -> MerData:
    """Read the shard sets of `config` and build the run's tensors (on the CPU).

    `classes` (prediction with a trained model): every sample, of either kind, is one to label: its
    index in `classes` when its emotion is one of them, -1 otherwise (unlabelled, e.g. spotted
    intervals). `face_mask`: the trained model's face region instead of the one of these shards."""
    if not config.shards:
        raise DataError("no shard sets given: pass --shards OUT (a shard set made by `mer-prep DATASET RAW OUT`, "
                        "or a folder of them)")
    micro, macro, sources = [], [], []
    for path, explicit_macro in [(p, False) for p in config.shards] + [(p, True) for p in config.macro_shards]:
        for shard_path in find_shard_sets(Path(path)):
            shards = open_shards(shard_path, fields=("flow", "strain", "landmarks", "onset", "apex"))
            kinds = np.array(["macro" if explicit_macro else "micro" if classes is not None else str(k).lower()
                              for k in shards.meta["kind"]], dtype=object)
            prep = (shards.manifest.get("config") or {}).get("prep") or {}
            sources.append({"path": str(shard_path), "dataset": shards.manifest.get("dataset"),
                            "config_hash": shards.manifest.get("config_hash"), "n": len(shards),
                            "prep": {k: prep.get(k) for k in PREP_KEYS},
                            "micro": int((kinds == "micro").sum()), "macro": int((kinds == "macro").sum())})
            part = {"size": shards.arrays["flow"].shape[-1], "meta": shards.meta,
                    **{k: shards.arrays[k] for k in ("flow", "strain", "landmarks", "onset", "apex") if k in shards.arrays}}
            micro += [_take(part, kinds == "micro")] if (kinds == "micro").any() else []
            macro += [_take(part, kinds == "macro")] if (kinds == "macro").any() else []
    if not micro:
        found = ", ".join(f"{s['path']} ({s['dataset']}, macro)" for s in sources)
        raise DataError(f"no micro-expression samples in --shards: {found}. Pass a micro-expression shard set, "
                        "e.g. one made by `mer-prep casme2 RAW OUT`")

    micro_datasets = sorted({d for part in micro for d in part["meta"]["dataset"]})
    micro_emotions = [e for part in micro for e in part["meta"]["emotion"]]
    if classes is not None:
        class_set = CLASS_SETS.get(config.classes) or ClassSet(config.classes or "as-written", tuple(classes),
                                                               {c: frozenset({canonical_emotion(c)}) for c in classes})
    else:
        class_set = get_class_set(config.classes or infer_class_set(micro_datasets), emotions=micro_emotions)
    size = config.input_size
    mask = face_mask if face_mask is not None else face_region([*micro, *macro], size)
    dropped: dict[str, dict[str, int]] = {}

    micro = [part for part in (_in_class_set(p, class_set, "micro", dropped, keep_all=classes is not None)
                               for p in micro) if part]
    macro = [part for part in (_in_class_set(p, class_set, "macro", dropped) for p in macro) if part]
    for kind, counts in dropped.items():
        log.info("dropped %d %s samples outside %s: %s", sum(counts.values()), kind, class_set.name, _found(counts))
    if not micro:
        raise LabelSetError(f"no micro-expression sample has an emotion of class set {class_set.name} "
                            f"({', '.join(class_set.classes)}); found {_found(dropped['micro'])}. Choose --classes")

    def column(parts: list[dict], key: str) -> np.ndarray:
        return np.concatenate([p["meta"][key] for p in parts]) if parts else np.array([], dtype=object)

    data = MerData(
        class_set=class_set.name, classes=class_set.classes,
        x=torch.cat([motion_input(p["flow"], p["strain"], size, mask, config.input_norm) for p in micro]),
        y=torch.from_numpy(np.concatenate([p["y"] for p in micro])),
        sample_id=column(micro, "sample_id"), dataset=column(micro, "dataset"), subject=column(micro, "subject_id"),
        emotion=column(micro, "emotion"),
        macro_field=torch.cat([unit_field(resize(p["flow"], size), mask) for p in macro]) if macro
        else torch.zeros(0, 2, size, size),
        macro_y=torch.from_numpy(np.concatenate([p["y"] for p in macro])) if macro else torch.zeros(0, dtype=torch.long),
        macro_subject=column(macro, "subject_id"),
        macro_emotion=np.array([canonical_emotion(e) for e in column(macro, "emotion")], dtype=object),
        face_mask=mask, dropped=dropped, sources=sources,
        photo=torch.cat([photometric(p, size, mask, config.input_norm) for p in micro]),
        landmarks=mean_landmarks(micro, size),
    )
    log.info("loaded %d micro samples (%d subjects) and %d macro samples, classes %s",
             len(data.y), len(data.subjects), len(data.macro_y), class_set.name)
    return data


def _take(part: dict, keep: np.ndarray) -> dict:
    """The samples `keep` (a boolean mask) of a part: arrays, metadata columns and labels alike."""
    arrays = {k: v[keep] for k, v in part.items() if isinstance(v, np.ndarray)}
    return {**part, **arrays, "meta": {k: v[keep] for k, v in part["meta"].items()}}


def _in_class_set(part: dict, class_set, kind: str, dropped: dict, keep_all: bool = False) -> dict | None:
    """`part` restricted to the samples whose emotion is in `class_set`, with their class index `y` and
    `meta["subject_id"]` (dataset/subject, the LOSO unit); the others are counted in `dropped[kind]`.
    `keep_all`: keep the others too, with y = -1 (prediction of unlabelled samples)."""
    meta = part["meta"]
    labels = np.array([class_set.index(e, d) for e, d in zip(meta["emotion"], meta["dataset"])], dtype=object)
    if keep_all:
        labels[labels == None] = -1  # noqa: E711  (elementwise)
    keep = labels != None  # noqa: E711  (elementwise)
    if not keep.all():
        counts = dropped.setdefault(kind, {})
        for key, n in Counter(f"{d}:{e}" for d, e in zip(meta["dataset"][~keep], meta["emotion"][~keep])).items():
            counts[key] = counts.get(key, 0) + n
    if not keep.any():
        return None
    part = _take({**part, "y": labels}, keep)
    part["y"] = part["y"].astype(np.int64)
    part["meta"]["subject_id"] = np.array([subject_id(d, s) for d, s in zip(part["meta"]["dataset"], part["meta"]["subject"])],
                                          dtype=object)
    return part


def _found(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())) or "nothing"


def resize(array: np.ndarray, size: int) -> torch.Tensor:
    """(N, C, S, S) -> (N, C, size, size) float32, antialiased."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if tensor.shape[-1] != size:
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return tensor


def motion_input(flow: np.ndarray, strain: np.ndarray, size: int, mask: torch.Tensor, norm: str) -> torch.Tensor:
    """(N, 2, S, S) flow + (N, S, S) strain -> (N, 3, size, size) model input [u, v, strain]."""
    uv = resized_flow(flow, size)           # (N, 2, H, W) in pixels of the resized frame
    strain = resize(strain[:, None], size)  # (N, 1, H, W), strain has no unit
    if norm == "rms":
        uv = uv / rms(uv, mask).clamp_min(EPS)
        strain = strain / rms(strain, mask).clamp_min(EPS)
    return torch.cat([uv, strain], dim=1)


def resized_flow(flow: np.ndarray, size: int) -> torch.Tensor:
    """(N, 2, S, S) flow in pixels -> (N, 2, size, size) in pixels of the resized frame."""
    return resize(flow, size) * (size / flow.shape[-1])


def rms(field: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, 1, 1): the root mean square magnitude over the face region `mask`."""
    return ((field.pow(2).sum(1, keepdim=True) * mask).sum((2, 3), keepdim=True) / mask.sum()).sqrt()


def mean_landmarks(parts: list[dict], size: int) -> np.ndarray | None:
    """(68, 2) mean onset landmarks of the micro samples in input pixels: every face is aligned to one
    template, so this is the template's geometry (where htnet_lite cuts its eye and mouth regions)."""
    points = [p["landmarks"] * (size / p["size"]) for p in parts if p["landmarks"].ndim == 3 and p["landmarks"].shape[1] == 68]
    if not points:
        return None
    mean = np.concatenate(points).mean(0)
    return mean.astype(np.float32) if np.isfinite(mean).all() else None


def photometric(part: dict, size: int, mask: torch.Tensor, norm: str) -> torch.Tensor:
    """(N, 4, size, size): [apex - onset, d/dx, d/dy of the mean frame] in grey levels / 255 at the input
    size, and the flow RMS over the face in pixels of the resized frame (a constant map per sample):
    the linearised brightness constancy I_t + I_x u + I_y v = 0 that the `self` target scores a decoded
    displacement with. The scale turns a decoded field in the input's RMS units back into pixels
    (1 when the input is not normalised). Zeros where a shard set has no frames."""
    n = len(part["flow"])
    if "onset" not in part or "apex" not in part:
        return torch.zeros(n, 4, size, size)
    onset = resize(part["onset"][:, None] / 255.0, size)  # (N, 1, H, W)
    apex = resize(part["apex"][:, None] / 255.0, size)
    mean = (onset + apex) / 2
    ix = torch.zeros_like(mean)
    iy = torch.zeros_like(mean)
    ix[..., 1:-1] = (mean[..., 2:] - mean[..., :-2]) / 2
    iy[..., 1:-1, :] = (mean[..., 2:, :] - mean[..., :-2, :]) / 2
    if norm == "rms":
        scale = rms(resized_flow(part["flow"], size), mask)
    else:
        scale = torch.ones(n, 1, 1, 1)
    return torch.cat([apex - onset, ix, iy, scale.expand(n, 1, size, size)], dim=1)


def unit_field(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) -> the same fields scaled to unit norm over the face region (zero fields stay zero)."""
    return flow / (flow * mask).flatten(1).norm(dim=1).clamp_min(EPS)[:, None, None, None]


def face_region(parts: list[dict], size: int) -> torch.Tensor:
    """(1, 1, size, size): the ellipse inscribed in the bounding box of the mean onset landmarks of
    each set, enlarged by FACE_MARGIN. Every set is aligned to the same template, so one mask serves
    all. Without landmarks (or with degenerate ones) the whole frame is the face."""
    means = [p["landmarks"].mean(0) * (size / p["size"]) for p in parts if p["landmarks"].size]  # (L, 2) each
    points = np.concatenate(means) if means else np.zeros((0, 2))
    points = points[np.isfinite(points).all(1)]
    full = torch.ones(1, 1, size, size)
    if len(points) < 3:
        return full
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    rx, ry = (x1 - x0) / 2 * FACE_MARGIN, (y1 - y0) / 2 * FACE_MARGIN
    if min(rx, ry) < 2:
        return full
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    return torch.from_numpy(inside.astype(np.float32))[None, None]


def macro_prototypes(data: MerData, exclude_subject: str | None) -> torch.Tensor:
    """Label-free alignment targets: one unit-norm mean macro field per source emotion (CK+ happy,
    surprise, disgust, ... as written, canonical), leaving out the test subject's own macro samples.
    (P, 2, H, W); P = 0 without macro samples."""
    keep = data.macro_subject != exclude_subject
    emotions = sorted(set(data.macro_emotion[keep].tolist()))
    fields = []
    for emotion in emotions:
        chosen = torch.from_numpy(keep & (data.macro_emotion == emotion)).to(data.macro_field.device)
        fields.append(data.macro_field[chosen].sum(0))
    if not fields:
        return torch.zeros(0, *data.macro_field.shape[1:], device=data.macro_field.device)
    return unit_field(torch.stack(fields), data.face_mask)


def subject_centered(x: torch.Tensor, subject: np.ndarray) -> torch.Tensor:
    """`x` minus each subject's mean input (the subject-normalisation baseline: transductive, as it
    reads the test subject's inputs, never its labels)."""
    out = x.clone()
    for s in np.unique(subject):
        rows = torch.as_tensor(np.flatnonzero(subject == s), device=x.device)
        out[rows] = x[rows] - x[rows].mean(0, keepdim=True)
    return out


def macro_targets(data: MerData, exclude_subject: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The alignment target of each class: the mean of its macro fields (unit norm), leaving out the
    test subject's own macro-expressions (when a dataset has both kinds). Returns (K, 2, H, W) fields
    and (K,) booleans: whether class k has a target at all."""
    keep = torch.from_numpy(data.macro_subject != exclude_subject).to(data.macro_y.device) if len(data.macro_y) else None
    k = len(data.classes)
    sums = torch.zeros(k, *data.macro_field.shape[1:], device=data.macro_field.device)
    if keep is not None:
        sums.index_add_(0, data.macro_y[keep], data.macro_field[keep])
    has_target = sums.flatten(1).norm(dim=1) > 0
    return unit_field(sums, data.face_mask), has_target


def training_set(config: TrainConfig, fold: int, data: MerData,
                 train_index: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The training samples of a fold and the labels to train them with, after `subject_fraction`
    and `label_noise` (the robustness knobs; at their defaults this returns its inputs unchanged).
    Drawn from their own generator seeded by (seed, fold), so every method of a comparison sees the
    same subjects and the same flipped labels, and the batches and tasks are those of a plain run.
    Only training indices are touched: the test subject's samples and labels never are."""
    rng = np.random.default_rng([config.seed, fold, 7])
    train_index = keep_subjects(train_index, data.subject, config.subject_fraction, rng)
    return train_index, flip_labels(data.y, train_index, config.label_noise, len(data.classes), rng)


def keep_subjects(train_index: np.ndarray, subject: np.ndarray, fraction: float,
                  rng: np.random.Generator) -> np.ndarray:
    """The samples of round(fraction x n) of the n training subjects (at least 2, so that a
    meta-learning task still has support and query people), drawn at random."""
    if fraction >= 1:
        return train_index
    subjects = np.unique(subject[train_index])
    n = min(len(subjects), max(2, round(fraction * len(subjects))))
    kept = rng.choice(subjects, size=n, replace=False)
    return train_index[np.isin(subject[train_index], kept)]


def flip_labels(y: torch.Tensor, train_index: np.ndarray, noise: float, num_classes: int,
                rng: np.random.Generator) -> torch.Tensor:
    """`y` with round(noise x len(train_index)) of the training labels, drawn at random, each changed
    to one of the other classes (uniformly). Returns `y` itself when noise is 0, else a copy."""
    n = round(noise * len(train_index))
    if n == 0 or num_classes < 2:
        return y
    flipped = torch.as_tensor(rng.choice(train_index, size=n, replace=False), device=y.device)
    old = y[flipped].cpu().numpy()
    new = (old + rng.integers(1, num_classes, size=n)) % num_classes  # never the old class
    y = y.clone()
    y[flipped] = torch.as_tensor(new, dtype=y.dtype, device=y.device)
    return y


class FoldSampler:
    """Draws training indices of one fold; never a test-subject index.

    `batch(n)`: class-balanced (each class equally likely). `episode(shots, query_shots)`: the
    training subjects are split at random into two halves; the support set takes `shots` samples per
    class from the first half, the query set `query_shots` per class from the other (new people, as
    at test time). Classes missing from a half are left out of that set.
    """

    def __init__(self, y: np.ndarray, subject: np.ndarray, train_index: np.ndarray, rng: np.random.Generator):
        self.rng = rng
        self.y, self.subject, self.train_index = y, subject, train_index
        self.by_class = [train_index[y[train_index] == c] for c in np.unique(y[train_index])]
        self.subjects = np.unique(subject[train_index])

    def batch(self, n: int) -> np.ndarray:
        classes = self.rng.integers(len(self.by_class), size=n)
        return np.array([self.rng.choice(self.by_class[c]) for c in classes])

    def episode(self, shots: int, query_shots: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.subjects) < 2:
            raise DataError("a meta-learning task needs at least two training subjects (support and query from "
                            "different people); use --method erm or more subjects")
        order = self.rng.permutation(self.subjects)
        support_subjects = order[: len(order) // 2]
        in_support = np.isin(self.subject[self.train_index], support_subjects)
        return (self._per_class(self.train_index[in_support], shots),
                self._per_class(self.train_index[~in_support], query_shots))

    def subject_episode(self, n: int) -> np.ndarray:
        """Up to `n` clips of one training subject drawn at random (task_unit subject: one person's
        clips, as a test subject's are adapted on)."""
        subject = self.rng.choice(self.subjects)
        clips = self.train_index[self.subject[self.train_index] == subject]
        return self.rng.choice(clips, size=min(n, len(clips)), replace=False)

    def _per_class(self, pool: np.ndarray, shots: int) -> np.ndarray:
        picks = []
        for c in np.unique(self.y[pool]):
            members = pool[self.y[pool] == c]
            picks.append(self.rng.choice(members, size=shots, replace=len(members) < shots))
        return np.concatenate(picks)


__all__ = ["load_data", "MerData"]
