"""The shard format `mer-shards/1`: the only writer, the reader, and verification; and
`atomic_write`, the one way the package family writes a file atomically.

Importable without torch, cv2 or dask: other projects read our caches with h5py + numpy alone.
See docs/shard-format.md for every field, unit and coordinate convention.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from .errors import ShardError

SCHEMA = "mer-shards/1"  # the format version every manifest and shard carries (docs/shard-format.md)
MANIFEST = "manifest.json"
FAILURES = "failures.jsonl"
SHARD_DIR = "shards"

ARRAY_FIELDS = ("onset", "apex", "flow", "strain", "landmarks")
META_TEXT = ("sample_id", "dataset", "subject", "clip", "emotion", "action_units", "kind", "apex_source")
META_INT = ("onset_frame", "apex_frame", "offset_frame")
META_FLOAT = ("fps",)
META_FIELDS = META_TEXT + META_INT + META_FLOAT


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w", **kwargs):
    """Open a temporary file next to `path` (same folder: the rename stays on one file system) for
    writing; when the block ends without error, flush, fsync and `os.replace` it onto `path`. So
    `path` is complete or absent (or unchanged): never half-written, even when the machine stops.
    On an error the temporary file is removed and the error propagates. `mode`/`kwargs` go to open.

        with atomic_write(out / "metrics.csv", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # runner._remove_stale knows this pattern
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """`text` into `path` (UTF-8) with `atomic_write`."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def shard_name(dataset: str, index: int) -> str:
    return f"{dataset}-{index:05d}.h5"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_shard(path: Path, records: list[dict[str, Any]], *, size: int, landmarks: int,
                config_hash: str, keep_frames: int = 0, failures: list[dict] | None = None) -> str:
    """Write `records` to `path` atomically (temporary name, fsync, rename); returns its sha256.

    The HDF5 file is built in memory and its image written with plain file I/O, so that a full disk
    or a read-only folder is an ordinary OSError (reported as ShardError): HDF5 2.0 crashes the
    process (segmentation fault) when its own writes fail. The image is byte-identical to a file
    written by HDF5 directly. Each record holds the arrays of ARRAY_FIELDS (+ `frames` when keep_frames) and a `meta` dict
    with META_FIELDS. Identical records give byte-identical files (no timestamps are stored).
    An empty `records` list writes a valid shard with N = 0. `failures` (the samples of this shard
    that could not be processed) are kept in the `failures` attribute as JSON, so that a resumed run
    can report them without recomputing the shard.
    """
    path = Path(path)
    n, s = len(records), size
    shapes = {
        "onset": ((n, s, s), np.uint8),
        "apex": ((n, s, s), np.uint8),
        "flow": ((n, 2, s, s), np.float32),
        "strain": ((n, s, s), np.float32),
        "landmarks": ((n, landmarks, 2), np.float32),
    }
    if keep_frames:
        shapes["frames"] = ((n, keep_frames, s, s), np.uint8)
    in_memory = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # only names the image: nothing is written there
    try:
        with h5py.File(in_memory, "w", driver="core", backing_store=False, libver="earliest", track_order=False) as h5:
            h5.attrs["schema"] = SCHEMA
            h5.attrs["config_hash"] = config_hash
            h5.attrs["failures"] = json.dumps(failures or [], sort_keys=True)
            for name, (shape, dtype) in shapes.items():
                data = np.stack([r[name] for r in records]).astype(dtype, copy=False) if n else np.zeros(shape, dtype)
                if data.shape != shape:
                    raise ShardError(f"{path}: field {name} has shape {data.shape}, expected {shape}")
                h5.create_dataset(name, data=data, track_times=False)
            meta = h5.create_group("meta", track_order=False)
            for name in META_FIELDS:
                values = [r["meta"][name] for r in records]
                if name in META_TEXT:
                    column = np.array([str(v).encode("utf-8") for v in values], dtype=h5py.string_dtype("utf-8"))
                elif name in META_INT:
                    column = np.array(values, dtype=np.int64)
                else:
                    column = np.array(values, dtype=np.float32)
                meta.create_dataset(name, data=column, track_times=False)
            h5.flush()
            image = h5.id.get_file_image()
        with atomic_write(path, "wb") as handle:
            handle.write(image)
    except OSError as error:  # a full disk, a read-only or vanished folder: a storage problem, not a clip's
        raise ShardError(cannot_write(path, error)) from error
    return hashlib.sha256(image).hexdigest()


def cannot_write(path: Path, error: OSError) -> str:
    """The message of a failed write: the file, the system's reason and what to do."""
    reason = error.strerror or str(error)
    return (f"{path}: cannot write ({reason}); free some space or fix the permissions of {Path(path).parent}, "
            "then rerun mer-prep to resume")


def read_shard_meta(path: Path) -> dict[str, Any]:
    """The attrs and sample ids of one shard file, cheaply (for resume checks)."""
    with h5py.File(path, "r") as h5:
        return {
            "schema": str(h5.attrs.get("schema", "")),
            "config_hash": str(h5.attrs.get("config_hash", "")),
            "sample_ids": [v.decode("utf-8") for v in h5["meta/sample_id"][()]],
            "emotions": [v.decode("utf-8") for v in h5["meta/emotion"][()]],
            "failures": json.loads(h5.attrs.get("failures", "[]")),
        }


def write_json_atomic(path: Path, payload: Any) -> None:
    _write_text_atomic(Path(path), json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    _write_text_atomic(Path(path), "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def _write_text_atomic(path: Path, text: str) -> None:
    """`write_text_atomic`, a storage error reported as ShardError with what to do."""
    try:
        write_text_atomic(path, text)
    except OSError as error:
        raise ShardError(cannot_write(path, error)) from error


def load_manifest(out: Path) -> dict[str, Any]:
    """OUT/manifest.json of a shard set; ShardError, saying what to do, when it is missing (an
    interrupted run, a folder of shard sets), unreadable or of another schema."""
    out = Path(out)
    path = out / MANIFEST
    if not path.is_file():
        hint = ""
        if out.is_dir() and any((child / MANIFEST).is_file() for child in out.iterdir() if child.is_dir()):
            hint = " (it holds shard sets in sub-folders: pass one of them, or use find_shard_sets)"
        raise ShardError(
            f"{out}: not a shard set, {MANIFEST} is missing{hint}. Create one with `mer-prep DATASET RAW {out}`; "
            "an interrupted mer-prep run writes the manifest only when it completes: rerun it to resume"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ShardError(f"{path}: unreadable manifest ({error}); rerun mer-prep with --overwrite") from error
    if manifest.get("schema") != SCHEMA:
        raise ShardError(
            f"{path}: unknown shard schema {manifest.get('schema')!r}; this mer-toolkit reads {SCHEMA!r}. "
            "Regenerate the shards with this version of mer-prep or install the matching mer-toolkit"
        )
    return manifest


def verify_shards(out: Path, check_hash: bool = True) -> list[str]:
    """Every mismatch between the manifest and the shard files, as messages naming the file."""
    out = Path(out)
    try:
        manifest = load_manifest(out)
    except ShardError as error:
        return [str(error)]
    problems: list[str] = []
    total = 0
    for entry in manifest.get("shards", []):
        path = out / SHARD_DIR / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: shard listed in the manifest is missing")
            continue
        if check_hash and sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest (corrupt or modified); rerun mer-prep to rebuild it")
            continue
        try:
            with h5py.File(path, "r") as h5:
                if h5.attrs.get("schema") != SCHEMA:
                    problems.append(f"{path}: schema {h5.attrs.get('schema')!r}, expected {SCHEMA!r}")
                if h5.attrs.get("config_hash") != manifest.get("config_hash"):
                    problems.append(f"{path}: config_hash differs from the manifest's")
                missing = [f for f in ARRAY_FIELDS if f not in h5] + [f"meta/{f}" for f in META_FIELDS if f"meta/{f}" not in h5]
                if missing:
                    problems.append(f"{path}: missing fields {missing}")
                    continue
                counts = {f: h5[f].shape[0] for f in ARRAY_FIELDS} | {f"meta/{f}": h5[f"meta/{f}"].shape[0] for f in META_FIELDS}
                if set(counts.values()) != {entry["n"]}:
                    problems.append(f"{path}: sample counts {sorted(set(counts.values()))} differ from the manifest's n = {entry['n']}")
        except OSError as error:
            problems.append(f"{path}: not a readable HDF5 file ({error})")
            continue
        total += entry["n"]
    ok = manifest.get("counts", {}).get("ok")
    if ok is not None and ok != total and not problems:
        problems.append(f"{out / MANIFEST}: counts.ok = {ok} but the shards hold {total} samples")
    return problems


@dataclass
class ShardSet:
    """A loaded shard set: arrays concatenated over shards, metadata columns, the manifest."""

    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    meta: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.meta["sample_id"])

    def rows(self) -> list[dict[str, Any]]:
        """Metadata as a list of dicts (one per sample)."""
        return [{k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in self.meta.items()} for i in range(len(self))]


def open_shards(out: Path, fields: Iterable[str] | None = None, verify: bool = True) -> ShardSet:
    """Load a shard set. `fields` limits the arrays read (default: all). With `verify`, every shard's
    sha256 is checked first and any mismatch raises ShardError naming the file."""
    out = Path(out)
    manifest = load_manifest(out)
    if verify:
        problems = verify_shards(out)
        if problems:
            raise ShardError("shard set failed verification:\n  " + "\n  ".join(problems))
    chunks: dict[str, list[np.ndarray]] = {}
    meta: dict[str, list[np.ndarray]] = {name: [] for name in META_FIELDS}
    for entry in manifest["shards"]:
        path = out / SHARD_DIR / entry["file"]
        try:
            with h5py.File(path, "r") as h5:
                names = [f for f in (fields or [*ARRAY_FIELDS, "frames"]) if f in h5]
                for name in names:
                    chunks.setdefault(name, []).append(h5[name][()])
                for name in META_FIELDS:
                    column = h5[f"meta/{name}"][()]
                    if name in META_TEXT:
                        column = np.array([v.decode("utf-8") for v in column], dtype=object)
                    meta[name].append(column)
        except (OSError, KeyError) as error:
            raise ShardError(f"{path}: cannot read shard ({error}); run `mer-prep verify {out}`") from error
    arrays = {k: np.concatenate(v) for k, v in chunks.items()}
    columns = {k: (np.concatenate(v) if v else np.array([], dtype=object)) for k, v in meta.items()}
    return ShardSet(out, manifest, arrays, columns)


def find_shard_sets(path: Path) -> list[Path]:
    """`path` itself when it holds a manifest, else its immediate sub-folders that do (sorted)."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return [path]
    if not path.is_dir():
        raise ShardError(f"{path}: no such folder; pass a shard set made by mer-prep (a folder with {MANIFEST})")
    if any((path / SHARD_DIR).glob("*.h5")):
        load_manifest(path)  # shards but no manifest: an interrupted mer-prep run; its message says so
    sets = sorted(child for child in path.iterdir() if (child / MANIFEST).is_file())
    if not sets:
        hint = f": pass its parent {path.parent}" if (path.parent / MANIFEST).is_file() else ""
        raise ShardError(
            f"{path}: neither a shard set nor a folder of shard sets (no {MANIFEST} here or one level down{hint}); "
            "make one with `mer-prep DATASET RAW OUT`"
        )
    return sets


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a config (sorted keys): the identity of a shard set's recipe."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def write_manifest(out: Path, *, dataset: str, config: dict[str, Any], shards: list[dict[str, Any]],
                   failed: int, class_counts: dict[str, int], pipeline_version: str) -> dict[str, Any]:
    """Write OUT/manifest.json (atomically; it is written last and marks the set complete)."""
    manifest = {
        "schema": SCHEMA,
        "dataset": dataset,
        "pipeline_version": pipeline_version,
        "config": config,
        "config_hash": config_hash(config),
        "shards": shards,
        "counts": {"ok": sum(s["n"] for s in shards), "failed": failed},
        "class_counts": dict(sorted(class_counts.items())),
    }
    write_json_atomic(Path(out) / MANIFEST, manifest)
    return manifest


__all__ = ["SCHEMA", "open_shards", "ShardSet", "find_shard_sets", "load_manifest", "verify_shards"]
