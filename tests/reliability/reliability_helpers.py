"""Helpers of the reliability suite: a tiny real pipeline setup, tree surgery that never touches the
shared fixture, and the facts every case checks (what landed, what failed, what changed).

Trees are copied with hard links (cheap); every damaging write first unlinks the file, so the
session's pristine tree is never modified through a shared inode.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from mer_pipeline.config import PrepConfig
from mer_pipeline.datasets import get_adapter
from mer_pipeline.runner import prepare
from mer_pipeline.sample import Sample
from mer_pipeline.shards import FAILURES, MANIFEST, SHARD_DIR, read_shard_meta

# Small crops and one sample per shard: fast, and every clip's shard can be compared on its own.
CONFIG = PrepConfig(size=64)
SHARD_SIZE = 1
CLI_OPTIONS = ["--size", "64", "--shard-size", "1", "--scheduler", "synchronous", "-q"]
SHEET = "CASME2-coding-20190701.xlsx"
FRAMES = "CASME2_RAW_selected"


def prep(raw: Path, out: Path, **options):
    """The pipeline as `mer-prep casme2 RAW OUT --size 64 --shard-size 1 --scheduler synchronous`."""
    settings = dict(config=CONFIG, scheduler="synchronous", shard_size=SHARD_SIZE, progress=False)
    return prepare("casme2", raw, out, **(settings | options))


def link_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=os.link)
    return target


def replace_bytes(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def replace_image(path: Path, image: np.ndarray, suffix: str | None = None) -> Path:
    """Replace the frame at `path` by `image`, optionally under another extension (same number)."""
    path.unlink()
    target = path.with_suffix(suffix) if suffix else path
    assert cv2.imwrite(str(target), image), target
    return target


def samples(raw: Path) -> dict[str, Sample]:
    return {s.sample_id: s for s in get_adapter("casme2").scan(raw).samples}


def onset_path(sample: Sample) -> Path:
    return sample.frames[sample.nearest_frame(sample.onset)]


def apex_path(sample: Sample) -> Path:
    return sample.frames[sample.nearest_frame(sample.apex)]


def clip_folder(raw: Path, sample_id: str) -> Path:
    _, subject, clip = sample_id.split("/")
    return raw / FRAMES / subject / clip


def edit_sheet(raw: Path, edit) -> Path:
    """Apply `edit(rows)` to the coding sheet's rows (lists of cell values, header first); saved in place."""
    import openpyxl

    path = raw / SHEET
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    rows = edit(rows)
    fresh = openpyxl.Workbook()
    for row in rows:
        fresh.active.append(row)
    path.unlink()
    fresh.save(path)
    return path


def failures(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / FAILURES).read_text(encoding="utf-8").splitlines()]
    return {row["sample_id"]: row for row in rows}


def shard_records(out: Path) -> dict[str, bytes]:
    """sample_id -> bytes of the shard that holds it (one sample per shard)."""
    found = {}
    for path in sorted((out / SHARD_DIR).glob("*.h5")):
        for sample_id in read_shard_meta(path)["sample_ids"]:
            found[sample_id] = path.read_bytes()
    return found


def output_files(out: Path) -> dict[str, bytes]:
    """Every file of a shard set (relative path -> bytes), the lock file aside."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".mer-prep.lock"}


def assert_only_these_failed(out: Path, clean: Path, broken: dict[str, str]) -> dict[str, dict]:
    """The clips in `broken` (sample_id -> stage) are exactly the failures; every other clip of the
    clean run landed, byte for byte as in the clean run. Returns the failure records."""
    failed = failures(out)
    assert {sid: f["stage"] for sid, f in failed.items()} == broken, failed
    landed, reference = shard_records(out), shard_records(clean)
    assert set(landed) == set(reference) - set(broken)
    for sample_id in landed:
        assert landed[sample_id] == reference[sample_id], f"{sample_id} changed"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["counts"] == {"ok": len(landed), "failed": len(failed)}
    return failed
