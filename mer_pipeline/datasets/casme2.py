"""CASME II: `sub01/EP02_01f/img46.jpg` trees (CASME2_RAW_selected, CASME2-RAW or Cropped with
reg_img*.jpg) and the CASME2-coding-20140508 / -20190701 sheets. 200 fps, 26 subjects.

Quirks handled (datasets.md section 2): Subject as text '01' or int; blank columns C and G; the
'/' apex of sub04/EP12_01f (spotted); apex equal to onset/offset (kept); offset before apex in the
2014 sheet (fixes/casme2.csv); irregular filenames kept verbatim; folders without rows and rows
without folders (reported); non-image files ignored.

The shape every adapter has: `parse_sheet` turns the sheet into `Label`s, `scan` matches them to
folders and `_common.from_folder` makes each a `Sample` or a `Failure` (frames onset..offset only,
the duration guard, gaps noted). One check is CASME II's own: a second row naming the same folder
(compared case-insensitively, as the folders are) is reported with its row before anything else
about it is checked, so the first row's clip is kept and the duplicate is never read.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..annotations import as_int, as_text, find_header, read_table, rows_as_dicts
from ..errors import AnnotationError, DatasetLayoutError
from ..sample import ScanResult
from . import Adapter, find_annotation
from ._common import Label, collect, dataset_fixes, fail, from_folder, subdirs, unlabelled

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


def parse_table(table: list[list[Any]], source: Path) -> list[Label]:
    """The rows of a CASME II coding sheet as `Label`s, `fixes/casme2.csv` applied (a refused fix or an
    unusable Subject makes that row's label carry `error`)."""
    source = Path(source)
    rows = rows_as_dicts(table, find_header(table, COLUMNS, source))
    for note in dataset_fixes(NAME, rows, ("Subject", "Filename"), source):
        log.info("%s: %s", source.name, note)
    return [_label(row, source) for row in rows]


def parse_sheet(path: Path) -> list[Label]:
    return parse_table(read_table(path), path)


def _label(row: dict, source: Path) -> Label:
    label = Label(
        subject="", clip=as_text(row.get("Filename")), onset=as_int(row.get("OnsetFrame")),
        apex=as_int(row.get("ApexFrame")), offset=as_int(row.get("OffsetFrame")),
        emotion=as_text(row.get("Estimated Emotion")), action_units=as_text(row.get("Action Units")),
        where=f"{source.name} row {row['_row']}", notes=list(row.get("_notes", [])),
    )
    try:
        label.subject = subject_folder(row.get("Subject"))
    except AnnotationError as error:
        label.error = str(error)
        return label
    if row.get("_refused"):
        label.error = row["_refused"]
    return label


def clip_folders(root: Path) -> dict[tuple[str, str], Path]:
    """(subject, clip) in lower case -> clip folder, for every clip folder under the frame root."""
    return {(subject, clip): folder for subject, subject_dir in subdirs(root).items()
            for clip, folder in subdirs(subject_dir).items()}


def scan(raw: Path, annotations: Path | None = None) -> ScanResult:
    root = find_frame_root(raw)
    sheet = Path(annotations) if annotations else find_annotation(Path(raw), SHEETS, "CASME II coding sheet")
    labels = parse_sheet(sheet)
    folders = clip_folders(root)
    result, ids, rows = ScanResult(), set(), set()
    for label in labels:
        key = (label.subject.lower(), label.clip.lower())
        if label.subject and key in rows:
            result.failures.append(fail(label.sample_id(NAME), "AnnotationError",
                                        f"{label.where}: duplicate row for {label.subject}/{label.clip}; kept the first"))
            continue
        if label.subject:
            rows.add(key)
        folder = folders.get(key)
        if folder is None and not label.error:
            result.failures.append(fail(label.sample_id(NAME), "DatasetLayoutError",
                                        f"{label.where}: no frame folder {root / label.subject / label.clip}; "
                                        "is the download complete?"))
            continue
        collect(result, from_folder(NAME, label, folder, fps=FPS), ids)
    for key, folder in sorted(folders.items()):
        if key not in rows:
            result.failures.append(unlabelled(NAME, folder.parent.name, folder, sheet))
    log.info("%s: %d samples, %d rejected", NAME, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="CASME II (CASME2_RAW_selected, CASME2-RAW or Cropped + coding sheet), 200 fps",
                  fps=FPS)
