"""SAMM (micro-expression set): `006/006_1_2/006_05562.jpg` trees (SAMM or SAMM_CROP) and the
SAMM_Micro_FACS_Codes_v2 sheet. 200 fps, grey frames, 29 subjects, 159 clips.

Quirks handled (datasets.md section 3): the header found by content, whether a 13-row notes block
sits above it or not (copies with both exist), and column spellings of either copy ('Onset Frame'
or 'Onset'); Subject as text '006' or as an int 6, matched to the 3-digit folder by number;
frame numbers zero-padded to varying widths (the digits are parsed); apex outside [onset, offset]
(028_4_1, 032_3_1: spotted, never replaced by a guess); AU strings with 'or', '/', parentheses and
letters kept verbatim as text; Title-case emotions ('Anger', 'Other') kept as written; grey frames
(read as any other image); folders without rows and rows without folders reported.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..annotations import as_int, as_text, find_header, read_table, rows_as_dicts
from ..errors import DatasetLayoutError
from ..sample import ScanResult
from . import Adapter, find_annotation
from ._common import Label, collect, digits, fail, find_tree, from_folder, resolve_columns, subdirs, unlabelled

log = logging.getLogger(__name__)

NAME = "samm"
FPS = 200.0
TREES = ("samm", "samm_crop", "samm_cropped")
SHEETS = ("SAMM*FACS*Codes*.xlsx", "SAMM*FACS*Codes*.xls", "SAMM*FACS*.csv")
COLUMNS = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("Onset Frame", "Onset", "OnsetFrame"),
    "apex": ("Apex Frame", "Apex", "ApexFrame"),
    "offset": ("Offset Frame", "Offset", "OffsetFrame"),
    "action_units": ("Action Units", "AUs", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
    "objective_class": ("Objective Classes", "Classes", "Objective Class"),
    "notes": ("Notes",),
}
OPTIONAL = ("action_units", "objective_class", "notes")


def parse_table(table: list[list[Any]], source: Path) -> list[Label]:
    """The labelled clips of a SAMM sheet, one `Label` per data row (unusable rows carry `error`)."""
    source = Path(source)
    rows = rows_as_dicts(table, find_header(table, ("Subject", "Filename"), source))
    if not rows:
        return []
    columns = resolve_columns(rows[0], COLUMNS, source, OPTIONAL)
    return [_label(row, columns, source) for row in rows]


def parse_sheet(path: Path) -> list[Label]:
    return parse_table(read_table(path), path)


def _label(row: dict, columns: dict[str, str], source: Path) -> Label:
    cell = lambda name: row.get(columns[name]) if name in columns else None  # noqa: E731
    number = as_int(cell("subject"))
    clip = as_text(cell("clip"))
    label = Label(
        subject=f"{number:03d}" if number is not None and number >= 0 else as_text(cell("subject")),
        clip=clip, onset=as_int(cell("onset")), apex=as_int(cell("apex")), offset=as_int(cell("offset")),
        emotion=as_text(cell("emotion")), action_units=as_text(cell("action_units")),
        where=f"{source.name} row {row['_row']}",
        extra={k: as_text(cell(k)) for k in ("objective_class", "notes") if as_text(cell(k))},
    )
    if number is None or number < 0:
        label.error = f"Subject {cell('subject')!r} is not a subject number"
    elif not clip:
        label.error = "Filename is empty"
    return label


def clip_key(name: str) -> tuple:
    """Folder names compared by their numbers: '006_1_2' == '6_1_2' == '006_01_02'."""
    parts = re.split(r"[_\-\s]+", name.strip().lower())
    return tuple(int(p) if p.isdigit() else p for p in parts if p)


def find_frame_root(raw: Path) -> Path:
    root = find_tree(raw, _holds_subjects, prefer=TREES)
    if root is None:
        raise DatasetLayoutError(
            f"{raw}: no SAMM frame tree found. Expected 006/006_1_2/006_05562.jpg folders in RAW or in SAMM/ or "
            "SAMM_CROP/ inside it. Point RAW at the SAMM download folder"
        )
    return root


def _holds_subjects(folder: Path) -> bool:
    return any(name.isdigit() and any(clip_key(c)[:1] == (int(name),) for c in subdirs(path))
               for name, path in subdirs(folder).items())


def scan(raw: Path, annotations: Path | None = None) -> ScanResult:
    root = find_frame_root(raw)
    sheet = Path(annotations) if annotations else find_annotation(Path(raw), SHEETS, "SAMM FACS codes sheet")
    labels = parse_sheet(sheet)

    folders: dict[tuple, Path] = {}
    for name, subject in subdirs(root).items():
        if name.isdigit():
            for clip in subdirs(subject).values():
                folders.setdefault((int(name), clip_key(clip.name)), clip)
    result, seen, used = ScanResult(), set(), set()
    for label in labels:
        key = (digits(label.subject), clip_key(label.clip))
        folder = folders.get(key)
        if folder is None and not label.error:
            collect(result, fail(label.sample_id(NAME), "DatasetLayoutError",
                                 f"{label.where}: no frame folder {root / label.subject / label.clip}; "
                                 "is the download complete?"), seen)
            continue
        used.add(key)
        collect(result, from_folder(NAME, label, folder, fps=FPS), seen)
    for key, folder in sorted(folders.items(), key=lambda kv: str(kv[1])):
        if key not in used:
            result.failures.append(unlabelled(NAME, folder.parent.name, folder, sheet))
    log.info("%s: %d samples, %d rejected", NAME, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="SAMM (006/006_1_2/006_05562.jpg + SAMM_Micro_FACS_Codes_v2.xlsx), 200 fps",
                  fps=FPS)
