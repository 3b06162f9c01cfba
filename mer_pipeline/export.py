"""`mer-prep export`: shard sets -> the caches peers' code reads (docs/shard-format.md, "Exports").

- `ststnet`: the per-subject leave-one-subject-out tree of STSTNet (Liong et al., FG 2019) and the
  projects that copied its loader (HTNet, ...): `DEST/<subject>/u_train/<class>/<name>.png` holds
  every other subject's samples, `DEST/<subject>/u_test/<class>/<name>.png` the subject's own;
  `<class>` is the class index in the class set's order (megc2019-3: negative 0, positive 1,
  surprise 2). Each PNG is 28 x 28, 8-bit, 3 channels, written so that `cv2.imread` returns
  channel 0 = strain, 1 = v, 2 = u (the file's RGB is u, v, strain), each channel min-max scaled to
  0..255 per image after resizing: what christy1206/STSTNet `main.py` feeds its released weights
  (`torch.Tensor(cv2.imread(...)).permute(0, 3, 1, 2)`, no further scaling).
- `npz`: `DEST/<dataset>.npz` with `x` float32 (N, 3, S, S) = [u, v, strain], `sample_id` and
  `label` (class index, -1 outside the class set), plus `DEST/<dataset>.csv` of metadata.

Shards are read through `mer_pipeline.shards.open_shards` only. Class sets come from their one
source, `mer_pipeline.classes` (stage two reads them from there too): export labels samples the way
stage two does. Nothing here imports torch.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .classes import LabelSetError, get_class_set
from .errors import MerError
from .flow import STRAIN_FORMULAS
from .shards import find_shard_sets, open_shards

EXPORT_FORMATS = ("ststnet", "npz")  # the layouts of the module docstring, as `export(format=...)` names them
STSTNET_SIZE = 28
DEFAULT_CLASSES = {"ststnet": "megc2019-3", "npz": None}
META_COLUMNS = ("sample_id", "dataset", "subject", "clip", "emotion", "action_units", "kind", "apex_source",
                "onset_frame", "apex_frame", "offset_frame", "fps")


@dataclass
class ExportSummary:
    """What `export` wrote: the samples kept (`skipped`: outside the class set), the files; str() is the
    line mer-prep export prints."""

    dest: Path
    format: str
    classes: tuple[str, ...]
    samples: int
    skipped: int
    subjects: int
    files: int

    def __str__(self) -> str:
        kept = f"{self.samples} samples of {self.subjects} subjects"
        left = f", {self.skipped} outside the class set left out" if self.skipped else ""
        return f"exported {kept} ({self.format}, classes {', '.join(self.classes) or 'as written'}){left}: " \
               f"{self.files} files -> {self.dest}"


@dataclass
class _Set:
    name: str
    flow: np.ndarray  # (N, 2, S, S)
    strain: np.ndarray  # (N, S, S)
    meta: dict[str, np.ndarray]
    labels: np.ndarray  # (N,) class index, -1 outside the class set
    classes: tuple[str, ...]


def export(out: Path, dest: Path, *, format: str, classes: str | None = None, strain: str = "ours",
           overwrite: bool = False) -> ExportSummary:
    """Export the shard set `out` (or a folder of shard sets) into `dest` in `format`."""
    if format not in EXPORT_FORMATS:
        raise MerError(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if strain not in STRAIN_FORMULAS:
        raise MerError(f"strain {strain!r} is unknown; choose one of {', '.join(STRAIN_FORMULAS)}", param="strain")
    dest = Path(dest)
    _check_dest(dest, format, overwrite)
    sets = [open_shards(path, fields=["flow", "strain"]) for path in find_shard_sets(out)]
    emotions = [e for s in sets for e in s.meta["emotion"]]
    class_set = _class_set(classes if classes is not None else DEFAULT_CLASSES[format], emotions)
    taken: set[str] = set()
    loaded = [_load(s, class_set, strain, taken) for s in sets]
    if class_set is not None and not any((s.labels >= 0).any() for s in loaded):
        found = ", ".join(sorted({str(e) for e in emotions})) or "none"
        raise MerError(f"{out}: no sample's emotion falls in the class set {class_set.name} ({', '.join(class_set.classes)}); "
                       f"the emotions are: {found}. Choose another --classes (as-written takes them as they are)")

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))  # renamed into place when complete
    try:
        files = _write_ststnet(loaded, staging) if format == "ststnet" else _write_npz(loaded, staging)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    kept = [s.labels >= 0 if class_set is not None else np.ones(len(s.labels), bool) for s in loaded]
    subjects = {(d, s) for x, k in zip(loaded, kept) for d, s in zip(x.meta["dataset"][k], x.meta["subject"][k])}
    return ExportSummary(dest, format, class_set.classes if class_set else (), int(sum(k.sum() for k in kept)),
                         int(sum((~k).sum() for k in kept)), len(subjects), files)


def _check_dest(dest: Path, format: str, overwrite: bool) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise MerError(f"{dest}: exists and is not a folder; choose another DEST")
    if not any(dest.iterdir()):
        return
    if not overwrite:
        raise MerError(f"{dest}: folder is not empty; use --overwrite to replace an earlier export, or choose another DEST")
    if not _looks_exported(dest, format):
        raise MerError(f"{dest}: holds files that are not a {format} export; --overwrite only replaces an earlier "
                       "export. Choose an empty or new DEST")


def _looks_exported(dest: Path, format: str) -> bool:
    entries = list(dest.iterdir())
    if format == "ststnet":
        return all(p.is_dir() and {c.name for c in p.iterdir()} <= {"u_train", "u_test"} for p in entries)
    return all(p.suffix in (".npz", ".csv") for p in entries)


def _class_set(name: str | None, emotions: list[str]):
    if name is None:
        return None
    try:
        return get_class_set(name, emotions)
    except LabelSetError as error:
        raise MerError(f"classes: {error}", param="classes") from error


def _load(shards, class_set, strain: str, taken: set[str]) -> _Set:
    flow = shards.arrays["flow"]
    values = shards.arrays["strain"]
    if strain != "ours" and len(flow):
        values = np.stack([STRAIN_FORMULAS[strain](f) for f in flow])
    if class_set is None:
        labels = np.full(len(shards), -1, np.int64)
    else:
        labels = np.array([-1 if (i := class_set.index(e, d)) is None else i
                           for e, d in zip(shards.meta["emotion"], shards.meta["dataset"])], np.int64)
    name = shards.manifest["dataset"]
    if name in taken:
        name = f"{name}-{shards.path.name}"
    taken.add(name)
    return _Set(name, flow, values, shards.meta, labels, class_set.classes if class_set else ())


# ---------------------------------------------------------------------------------------------
# ststnet


def ststnet_image(flow: np.ndarray, strain: np.ndarray, size: int = STSTNET_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 in OpenCV's BGR order [strain, v, u] (the PNG's RGB is u, v, strain):
    each channel resized (area) then min-max scaled to 0..255 on its own; a constant channel is 0."""
    channels = []
    for plane in (strain, flow[1], flow[0]):
        small = cv2.resize(plane.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)
        low, high = small.min(), small.max()
        scaled = (small - low) / (high - low) * 255.0 if high > low else np.zeros_like(small)
        channels.append(np.round(scaled).astype(np.uint8))
    return np.dstack(channels)


def _write_ststnet(sets: list[_Set], root: Path) -> int:
    items = []  # (folder of the subject, file name, class index, image)
    folders = _subject_folders(sets)
    for s in sets:
        for i in np.flatnonzero(s.labels >= 0):
            folder = folders[(s.meta["dataset"][i], s.meta["subject"][i])]
            name = _file_name(f"{folder}_{s.meta['clip'][i]}") + ".png"
            ok, png = cv2.imencode(".png", ststnet_image(s.flow[i], s.strain[i]))
            if not ok:
                raise MerError(f"OpenCV could not encode the image of {s.meta['sample_id'][i]}")
            items.append((folder, name, int(s.labels[i]), png.tobytes()))
    names = [(f, n) for f, n, _, _ in items]
    if len(set(names)) != len(names):
        raise MerError("two samples map to one file name in the ststnet tree; rename the clips so that "
                       "subject + clip is unique")
    classes = sorted({c for _, _, c, _ in items})
    subjects = sorted({f for f, _, _, _ in items})
    files = 0
    for subject in subjects:
        for split in ("u_train", "u_test"):
            for c in classes:
                (root / subject / split / str(c)).mkdir(parents=True, exist_ok=True)
        for folder, name, c, data in items:
            split = "u_test" if folder == subject else "u_train"
            (root / subject / split / str(c) / name).write_bytes(data)
            files += 1
    return files


def _subject_folders(sets: list[_Set]) -> dict[tuple[str, str], str]:
    """A folder name per (dataset, subject): the subject as written, prefixed by its dataset only
    when two datasets share a subject name."""
    pairs = sorted({(d, s) for x in sets for d, s in zip(x.meta["dataset"], x.meta["subject"])})
    count: dict[str, int] = {}
    for _, subject in pairs:
        count[subject] = count.get(subject, 0) + 1
    return {(d, s): _file_name(s if count[s] == 1 else f"{d}_{s}") for d, s in pairs}


def _file_name(text: str) -> str:
    return re.sub(r"[\\/\x00:]", "_", text).strip() or "_"


# ---------------------------------------------------------------------------------------------
# npz


def _write_npz(sets: list[_Set], root: Path) -> int:
    for s in sets:
        x = np.concatenate([s.flow, s.strain[:, None]], axis=1).astype(np.float32)  # (N, 3, S, S): u, v, strain
        ids = np.array([str(v) for v in s.meta["sample_id"]], dtype=str)
        np.savez(root / f"{s.name}.npz", x=x, sample_id=ids, label=s.labels)
        with open(root / f"{s.name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["index", *META_COLUMNS, "label", "class"])
            for i, label in enumerate(s.labels):
                writer.writerow([i, *(_cell(s.meta[c][i]) for c in META_COLUMNS), int(label),
                                 s.classes[label] if label >= 0 else ""])
    return 2 * len(sets)


def _cell(value):
    if isinstance(value, (np.floating, float)):
        return f"{float(value):g}"
    return value.item() if hasattr(value, "item") else value


__all__ = ["export", "ExportSummary", "EXPORT_FORMATS"]
