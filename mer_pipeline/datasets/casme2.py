"""CASME II: `sub01/EP02_01f/img46.jpg` trees (CASME2_RAW_selected, CASME2-RAW, Cropped with
reg_img*.jpg) and the CASME2-coding-20140508 / -20190701 sheets. 200 fps, 26 subjects.

Quirks handled (datasets.md section 2): Subject as text '01' or int; blank columns C and G; the
'/' apex of sub04/EP12_01f (spotted); apex equal to onset/offset (kept); offset before apex in the
2014 sheet (fixes/casme2.csv); irregular filenames kept verbatim; folders without rows and rows
without folders (reported); non-image files ignored.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..annotations import as_int, as_text, check_frames, find_header, read_table, rows_as_dicts
from ..errors import AnnotationError, DatasetLayoutError, FrameError
from ..frames import list_frames
from ..sample import Failure, Sample, ScanResult, sample_id
from . import Adapter, find_annotation
from ._common import _span, dataset_fixes, unlabelled

log = logging.getLogger(__name__)

NAME = "casme2"
FPS = 200.0
# Trees in order of preference when RAW holds several.
TREES = ("CASME2_RAW_selected", "CASME2-RAW", "CASME2_RAW", "Cropped", "Cropped-updated/Cropped", "Cropped_original")
SHEETS = ("CASME2-coding-*.xlsx", "CASME2-coding-*.xls", "CASME2*coding*.xlsx")
COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame")


def find_frame_root(raw: Path) -> Path:
    """The folder holding sub01, sub02, ...: RAW itself or one of the known trees inside it."""
    raw = Path(raw)
    candidates = [raw] + [raw / tree for tree in TREES] + [raw / "CASME2" / tree for tree in TREES]
    for folder in candidates:
        if folder.is_dir() and any(p.is_dir() and p.name.lower().startswith("sub") for p in folder.iterdir()):
            return folder
    raise DatasetLayoutError(
        f"{raw}: no CASME II frame tree found. Expected sub01/EP02_01f/img46.jpg folders in RAW or in one of "
        f"{', '.join(TREES)} inside it. Point RAW at the CASME II download folder"
    )


def subject_folder(value) -> str:
    text = as_text(value)
    if text.lower().startswith("sub"):
        text = text[3:]
    number = as_int(text)
    if number is None:
        raise AnnotationError(f"Subject {value!r} is not a subject number")
    return f"sub{number:02d}"


def scan(raw: Path, annotations: Path | None = None) -> ScanResult:
    root = find_frame_root(raw)
    sheet = Path(annotations) if annotations else find_annotation(Path(raw), SHEETS, "CASME II coding sheet")
    table = read_table(sheet)
    rows = rows_as_dicts(table, find_header(table, COLUMNS, sheet))
    for note in dataset_fixes(NAME, rows, ("Subject", "Filename"), sheet):
        log.info("%s: %s", sheet.name, note)

    folders = {(s.name.lower(), c.name.lower()): c for s in root.iterdir() if s.is_dir() for c in s.iterdir() if c.is_dir()}
    result = ScanResult()
    seen: set[tuple[str, str]] = set()
    for row in rows:
        where = f"{sheet.name} row {row['_row']}"
        try:
            subject = subject_folder(row["Subject"])
        except AnnotationError as error:
            result.failures.append(Failure(sample_id(NAME, "?", as_text(row.get("Filename"))), "adapter", "AnnotationError", f"{where}: {error}"))
            continue
        clip = as_text(row["Filename"])
        sid = sample_id(NAME, subject, clip)
        key = (subject.lower(), clip.lower())
        if key in seen:
            result.failures.append(Failure(sid, "adapter", "AnnotationError", f"{where}: duplicate row for {subject}/{clip}; kept the first"))
            continue
        seen.add(key)
        if row.get("_refused"):
            result.failures.append(Failure(sid, "adapter", "AnnotationError", f"{where}: {row['_refused']}"))
            continue
        onset, apex, offset = (as_int(row[c]) for c in ("OnsetFrame", "ApexFrame", "OffsetFrame"))
        try:
            apex, offset, notes = check_frames(onset, apex, offset)
        except AnnotationError as error:
            result.failures.append(Failure(sid, "adapter", "AnnotationError", f"{where}: {error}"))
            continue
        folder = folders.get(key)
        if folder is None:
            result.failures.append(Failure(sid, "adapter", "DatasetLayoutError",
                                           f"{where}: no frame folder {root / subject / clip}; is the download complete?"))
            continue
        try:
            frames = list_frames(folder)
        except FrameError as error:  # e.g. img46.jpg next to img046.jpg: this clip only
            result.failures.append(Failure(sid, "adapter", "FrameError", f"{where}: {error}"))
            continue
        inside = [n for n in frames if onset <= n <= offset]
        if not inside:
            result.failures.append(Failure(sid, "adapter", "FrameError",
                                           f"{where}: {folder} has no frames numbered {onset}..{offset} (it holds "
                                           f"{len(frames)} images{_span(frames)}); check the row, or is the download "
                                           "complete?"))
            continue
        notes += list(row.get("_notes", []))
        result.samples.append(Sample(
            dataset=NAME, subject=subject, clip=clip, frames=frames, onset=onset, apex=apex,
            offset=offset, emotion=as_text(row.get("Estimated Emotion")),
            action_units=as_text(row.get("Action Units")), fps=FPS, kind="micro", notes=tuple(notes),
        ))
    for key, folder in sorted(folders.items()):
        if key not in seen:
            result.failures.append(unlabelled(NAME, folder.parent.name, folder, sheet))
    return result


ADAPTER = Adapter(NAME, scan, description="CASME II (CASME2_RAW_selected, CASME2-RAW or Cropped + coding sheet), 200 fps",
                  fps=FPS)
