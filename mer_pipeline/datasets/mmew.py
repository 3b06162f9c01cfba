"""MMEW (micro-expression part): `S01/happiness/S01-01-001/1.jpg` trees, or the same without the
subject level (`happiness/S01-01-001/1.jpg`, e.g. under MMEW_Final/Micro_Expression), with the
MMEW_Micro_Exp sheet. 90 fps.

Quirks handled (datasets.md section 7): both tree variants, clip folders found by their pattern
(`S01-01-001`) wherever they sit; frames numbered 1.. within each clip (OnsetFrame is 1: the
numbers are clip-relative, and used as they are); the sheet's emotion kept as written, with a note
when the emotion folder says otherwise (some copies write `others` where the folder says
`repression`); Subject as an int or text; `remarks` kept in `extra`; AU strings (`12L`, `4R+7`)
kept as text; folders without rows and rows without folders reported. The macro-expression part
(single images, no onset..apex) is not a source of samples.
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
from ._common import Label, collect, fail, from_folder, resolve_columns, subdirs, unlabelled

log = logging.getLogger(__name__)

NAME = "mmew"
FPS = 90.0
SHEETS = ("MMEW_Micro_Exp*.xlsx", "MMEW_Micro_Exp*.xls", "MMEW_Micro_Exp*.csv")
CLIP = r"s\d+-\d+-\d+"
COLUMNS = {"subject": ("Subject",), "clip": ("Filename",), "onset": ("OnsetFrame", "Onset Frame", "Onset"),
           "apex": ("ApexFrame", "Apex Frame", "Apex"), "offset": ("OffsetFrame", "Offset Frame", "Offset"),
           "action_units": ("Action Units", "AU", "AUs"), "emotion": ("Estimated Emotion", "Emotion"),
           "remarks": ("remarks", "Remark", "Notes")}


def parse_table(table: list[list[Any]], source: Path) -> list[Label]:
    """The labelled clips of an MMEW_Micro_Exp sheet, one `Label` per data row."""
    source = Path(source)
    rows = rows_as_dicts(table, find_header(table, ("Subject", "Filename"), source))
    if not rows:
        return []
    columns = resolve_columns(rows[0], COLUMNS, source, optional=("action_units", "remarks"))
    return [_label(row, columns, source) for row in rows]


def parse_sheet(path: Path) -> list[Label]:
    return parse_table(read_table(path), path)


def _label(row: dict, columns: dict[str, str], source: Path) -> Label:
    cell = lambda name: row.get(columns[name]) if name in columns else None  # noqa: E731
    clip = as_text(cell("clip"))
    number = as_int(cell("subject"))
    prefix = re.match(r"s(\d+)-", clip, re.IGNORECASE)
    if number is None and prefix:
        number = int(prefix.group(1))
    label = Label(subject=f"S{number:02d}" if number is not None and number >= 0 else as_text(cell("subject")),
                  clip=clip, onset=as_int(cell("onset")), apex=as_int(cell("apex")), offset=as_int(cell("offset")),
                  emotion=as_text(cell("emotion")), action_units=as_text(cell("action_units")),
                  where=f"{source.name} row {row['_row']}")
    if as_text(cell("remarks")):
        label.extra["remarks"] = as_text(cell("remarks"))
    if not re.fullmatch(CLIP, clip, re.IGNORECASE):
        label.error = f"Filename {cell('clip')!r} is not an MMEW clip name (S01-01-001)"
    elif number is None or number < 0:
        label.error = f"Subject {cell('subject')!r} is not a subject number"
    elif prefix and int(prefix.group(1)) != number:
        label.notes.append(f"Subject {number} but Filename {clip}; the Filename's subject is used")
        label.subject = f"S{int(prefix.group(1)):02d}"
    return label


def clip_folders(raw: Path, depth: int = 5) -> dict[str, Path]:
    """Every clip folder (`S01-01-001`, any case) at most `depth` levels below RAW, by lower-case name.

    Found by pattern, so RAW may be the MMEW folder, MMEW_Final, Micro_Expression, with or without
    the subject level; clip folders are not descended into.
    """
    found: dict[str, Path] = {}
    level = [Path(raw)]
    for _ in range(depth):
        following = []
        for folder in level:
            for name, path in subdirs(folder).items():
                if not re.fullmatch(CLIP, name, re.IGNORECASE):
                    following.append(path)
                elif name in found:
                    log.warning("%s: clip %s also at %s; using the first", raw, path, found[name])
                else:
                    found[name] = path
        level = following
    if not found:
        raise DatasetLayoutError(
            f"{raw}: no MMEW clip folders found. Expected S01/happiness/S01-01-001/1.jpg or "
            "happiness/S01-01-001/1.jpg (e.g. in Micro_Expression/). Point RAW at the MMEW download folder"
        )
    return found


def scan(raw: Path, annotations: Path | None = None) -> ScanResult:
    sheet = Path(annotations) if annotations else find_annotation(Path(raw), SHEETS, "MMEW_Micro_Exp sheet")
    labels = parse_sheet(sheet)
    folders = clip_folders(Path(raw))
    result, seen, used = ScanResult(), set(), set()
    for label in labels:
        folder = folders.get(label.clip.lower())
        if folder is None and not label.error:
            result.failures.append(fail(label.sample_id(NAME), "DatasetLayoutError",
                                        f"{label.where}: no clip folder {label.clip} in {raw}; is the download complete?"))
            continue
        if folder is not None:
            used.add(label.clip.lower())
            if label.emotion and folder.parent.name.lower() != label.emotion.lower():
                label.notes.append(f"the sheet says {label.emotion!r}, the folder {folder.parent.name!r}; "
                                   "the sheet's emotion is kept")
            label.extra["folder_emotion"] = folder.parent.name
            if label.onset not in (None, 1):
                label.notes.append(f"OnsetFrame {label.onset}, expected 1 (clip-relative numbering)")
        collect(result, from_folder(NAME, label, folder, fps=FPS), seen)
    for name, folder in sorted(folders.items()):
        if name not in used:
            result.failures.append(unlabelled(NAME, folder.name.split("-")[0].upper(), folder, sheet))
    log.info("%s: %d samples, %d rejected", NAME, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="MMEW micro-expressions ([S01/]happiness/S01-01-001/1.jpg + MMEW_Micro_Exp.xlsx), 90 fps",
                  fps=FPS)
