"""CAS(ME)^3: Part A (`spNO.1/a/color/355.jpg`, long videos holding several expressions each) with
the `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` sheet; its macro-expressions (`--macro`, from
`CAS(ME)3_part_A_v2.xls`, sheet AU+Emotion); Part C (`--part C`, sheet mockCrimeME). 30 fps.

Sample ids: `casme3/spNO.1/a_355` (letter lower-cased + '_' + onset, since one video holds several
expressions); Part C `casme3/C01/3` (subject C + 2 digits, then the `count` column).

Quirks handled (datasets.md section 6): all cells stored as text; Filename `J` beside `j` and
folders `spNO`/`spNo`, `J`/`j` matched case-insensitively; frames `<N>.jpg` numbered by the index
in the long video, only onset..offset kept, gaps (7-8 lost frames at the start of most videos,
a few later) tolerated and noted; the known bad rows of JpgIndex_v2, fixed from fixes/casme3.csv only
where the official sibling file CAS(ME)3_part_A_v2.xls gives the value (spNO.149/d apex, spNO.216/d
onset, the two spNO.40/e offsets of 0), every other one checked: apex == onset (55 rows, all within
the first 13 frames: lost early frames, C3 issue #4) is spotted, as is an apex outside the span;
spNO.214/c (onset 5, offset 3460, 115 s; MEB's 34 is a guess) is rejected as too long; spNO.216/e
(onset = apex = 0) is kept, apex spotted, from the first frame on disk. `Others` beside `others`
is kept as written (the trainer folds case). Part C: no apex (spotted), AUs comma-separated, once
with a full-width comma, rewritten '+'-joined.

Part C's raw layout was not found in any source (datasets.md section 12). Assumed: a folder per
subject whose name holds its number (`1`, `01`, `sub01`), holding either a folder per expression
named by `count` (`01/3/color/N.jpg`, MEB's extracted copy) or the whole video (`01/color/N.jpg`),
frames numbered as the sheet's onset/offset. A tree that differs is reported row by row.

Macro-expressions: the AU+Emotion sheet has no emotion column, so their emotion is empty and the
sheet's objective class (I..VII) is kept in `extra["objective_class"]`.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any


from ..annotations import as_int, as_text, find_header, read_table, rows_as_dicts, sheet_names
from ..errors import AnnotationError, DatasetLayoutError
from ..sample import ScanResult
from . import Adapter, Option, find_annotation
from ._common import (Label, au_text, child, collect, dataset_fixes, digits, fail, find_tree, from_folder,
                      has_child_matching, resolve_columns, subdirs)

log = logging.getLogger(__name__)

NAME = "casme3"
FPS = 30.0
ME_SHEETS = ("*part_A_ME_label_JpgIndex*.xlsx", "*part_A_ME_label*.xls*")
MACRO_SHEETS = ("*part_A_v*.xls", "*part_A_v*.xlsx")
PART_C_SHEETS = ("*part_C_ME*.xlsx", "*part_C_ME*.xls")
_SUBJECT_A = r"sp\s*no\.?\s*\d+"
_SUBJECT_C = r"(sub|s)?\s*\d{1,3}"
COLUMNS_A = {
    "subject": ("Subject",), "filename": ("Filename",), "onset": ("Onset",), "apex": ("Apex",),
    "offset": ("Offset",), "action_units": ("AU", "Action Units"), "emotion": ("emotion", "Estimated Emotion"),
    "objective_class": ("Objective class", "Objective Classes"), "type": ("Expression type",),
}
COLUMNS_C = {"subject": ("sub", "Subject"), "count": ("count",), "onset": ("onset",), "offset": ("offset",),
             "action_units": ("au", "AU"), "emotion": ("emotion",)}

OPTIONS = (
    Option("part", "Part A (lab, 30 fps, JpgIndex_v2 sheet) or Part C (mock crime, sheet mockCrimeME; no apex).",
           choices=("A", "C"), default="A"),
    Option("macro", "Part A macro-expressions (CAS(ME)3_part_A_v2.xls, AU+Emotion) as kind=macro samples.",
           type=bool, default=False),
)


def subject_key(name: str) -> str:
    """'spNO.1', 'spNo.1', 'spno. 1' -> 'spno.1'."""
    return re.sub(r"\s+", "", str(name).lower())


# ---- sheets -------------------------------------------------------------------------------------

def parse_table(table: list[list[Any]], source: Path, macro: bool = False) -> list[Label]:
    """Part A expressions of the JpgIndex sheet (or, with `macro`, the Macro-expression rows of the
    AU+Emotion sheet), fixes applied, one `Label` per row."""
    source = Path(source)
    rows = rows_as_dicts(table, find_header(table, ("Subject", "Filename", "Onset", "Apex", "Offset"), source))
    if not rows:
        return []
    columns = resolve_columns(rows[0], COLUMNS_A, source, optional=("action_units", "emotion", "objective_class", "type"))
    if macro:
        if "type" not in columns:
            raise AnnotationError(f"{source}: no 'Expression type' column; --macro needs CAS(ME)3_part_A_v2.xls "
                                  "(sheet AU+Emotion)")
        rows = [r for r in rows if _expression_type(r.get(columns["type"])) == "macro"]
    for row in rows:  # the key fixes are written against: several expressions share one video
        row["_clip"] = f"{as_text(row.get(columns['filename'])).lower()}_{as_text(row.get(columns['onset']))}"
    if not macro:
        for note in dataset_fixes(NAME, rows, (columns["subject"], "_clip"), source):
            log.info("%s: %s", source.name, note)
    return [_label_a(row, columns, source, macro) for row in rows]


def _expression_type(value: Any) -> str:
    text = as_text(value).lower()
    return "macro" if text.startswith("macro") else "micro" if text.startswith("micro") else text


def _label_a(row: dict, columns: dict[str, str], source: Path, macro: bool) -> Label:
    cell = lambda name: row.get(columns[name]) if name in columns else None  # noqa: E731
    subject, letter = as_text(cell("subject")), as_text(cell("filename")).lower()
    onset, apex, offset = as_int(cell("onset")), as_int(cell("apex")), as_int(cell("offset"))
    label = Label(subject=subject, clip=f"{letter}_{onset if onset is not None else as_text(cell('onset'))}",
                  onset=onset, apex=apex, offset=offset, emotion="" if macro else as_text(cell("emotion")),
                  action_units=as_text(cell("action_units")), where=f"{source.name} row {row['_row']}",
                  notes=list(row.get("_notes", [])), extra={"video": letter})
    if as_text(cell("objective_class")):
        label.extra["objective_class"] = as_text(cell("objective_class"))
    if row.get("_refused"):
        label.error = row["_refused"]
    elif not re.fullmatch(_SUBJECT_A, subject, re.IGNORECASE):
        label.error = f"Subject {cell('subject')!r} is not a CAS(ME)^3 subject (spNO.<k>)"
    elif not letter:
        label.error = "Filename is empty"
    elif onset is not None and apex == onset:
        label.notes.append(f"apex equals onset ({onset}): the video's early frames are lost (C3 issue #4); "
                           "it will be spotted")
        label.apex = None
    return label


def parse_table_c(table: list[list[Any]], source: Path) -> list[Label]:
    """Part C expressions of the mockCrimeME sheet (no apex), one `Label` per row."""
    source = Path(source)
    rows = rows_as_dicts(table, find_header(table, ("sub", "count", "onset", "offset"), source))
    if not rows:
        return []
    columns = resolve_columns(rows[0], COLUMNS_C, source, optional=("action_units", "emotion"))
    labels = []
    for row in rows:
        cell = lambda name: row.get(columns[name]) if name in columns else None  # noqa: E731
        number, count = as_int(cell("subject")), as_int(cell("count"))
        label = Label(subject=f"C{number:02d}" if number is not None and number >= 0 else as_text(cell("subject")),
                      clip=str(count) if count is not None else as_text(cell("count")),
                      onset=as_int(cell("onset")), apex=None, offset=as_int(cell("offset")),
                      emotion=as_text(cell("emotion")), action_units=au_text(cell("action_units")),
                      where=f"{source.name} row {row['_row']}")
        if number is None or number < 0 or count is None or count < 0:
            label.error = f"sub {cell('subject')!r} / count {cell('count')!r} are not numbers"
        labels.append(label)
    return labels


def parse_sheet(path: Path, part: str = "A", macro: bool = False) -> list[Label]:
    path = Path(path)
    names = sheet_names(path)
    if part.upper() == "C":
        return parse_table_c(read_table(path, _sheet(names, "mockCrimeME")), path)
    return parse_table(read_table(path, _sheet(names, "AU+Emotion" if macro else "label")), path, macro)


def _sheet(names: list[str], wanted: str) -> str | None:
    """The sheet called `wanted` (no case), else None: the first sheet."""
    return next((n for n in names if n.lower() == wanted.lower()), None)


# ---- trees --------------------------------------------------------------------------------------

def find_part_a_root(raw: Path) -> Path:
    root = find_tree(raw, has_child_matching(_SUBJECT_A), prefer=("part_a",), depth=5)
    if root is None:
        raise DatasetLayoutError(
            f"{raw}: no CAS(ME)^3 Part A frame tree found. Expected spNO.1/a/color/355.jpg folders in RAW or below "
            "it (e.g. part_A/data/part_A_split/part_A/). Point RAW at the CAS(ME)^3 download folder"
        )
    return root


def video_folder(root: Path, subjects: dict[str, Path], label: Label) -> Path | None:
    subject = subjects.get(subject_key(label.subject))
    video = child(subject, label.extra["video"]) if subject is not None else None
    if video is None:
        return None
    return child(video, "color") or video


def find_part_c_root(raw: Path) -> Path:
    root = find_tree(raw, has_child_matching(_SUBJECT_C), prefer=("part_c", "partc", "me_c"), depth=4)
    if root is None:
        raise DatasetLayoutError(
            f"{raw}: no CAS(ME)^3 Part C frame tree found. Assumed layout (the official one is undocumented): "
            "<sub>/<count>/color/<N>.jpg or <sub>/color/<N>.jpg with <sub> = 1, 01 or sub01"
        )
    return root


def part_c_folder(root: Path, label: Label) -> Path | None:
    subject = next((p for n, p in subdirs(root).items() if re.fullmatch(_SUBJECT_C, n) and digits(n) == digits(label.subject)), None)
    if subject is None:
        return None
    expression = next((p for n, p in subdirs(subject).items() if n.isdigit() and int(n) == as_int(label.clip)), None)
    if expression is not None:
        return child(expression, "color") or expression
    return child(subject, "color")


def scan(raw: Path, annotations: Path | None = None, part: str = "A", macro: bool = False) -> ScanResult:
    part = part.upper()
    if part == "C":
        if macro:
            raise AnnotationError("CAS(ME)^3 Part C has no macro-expression sheet; drop --macro or use --part A")
        return _scan_part_c(Path(raw), annotations)
    if part != "A":
        raise AnnotationError(f"unknown CAS(ME)^3 part {part!r}; choose A or C")
    patterns = MACRO_SHEETS if macro else ME_SHEETS
    what = "CAS(ME)3_part_A_v2.xls (AU+Emotion)" if macro else "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    sheet = Path(annotations) if annotations else find_annotation(Path(raw), patterns, what)
    labels = parse_sheet(sheet, "A", macro)
    root = find_part_a_root(raw)
    subjects = {subject_key(n): p for n, p in subdirs(root).items() if re.fullmatch(_SUBJECT_A, n, re.IGNORECASE)}
    result, seen, cache = ScanResult(), set(), {}
    kind = "macro" if macro else "micro"
    for label in labels:
        folder = None if label.error else video_folder(root, subjects, label)
        if folder is None and not label.error:
            result.failures.append(fail(label.sample_id(NAME), "DatasetLayoutError",
                                        f"{label.where}: no frame folder {root / label.subject / label.extra['video']}"
                                        "/color; is the download complete?"))
            continue
        collect(result, from_folder(NAME, label, folder, fps=FPS, kind=kind, cache=cache), seen)
    log.info("%s part A %s: %d samples, %d rejected", NAME, kind, len(result.samples), len(result.failures))
    return result


def _scan_part_c(raw: Path, annotations: Path | None) -> ScanResult:
    sheet = Path(annotations) if annotations else find_annotation(raw, PART_C_SHEETS, "CAS(ME)3_part_C_ME.xlsx")
    labels = parse_sheet(sheet, "C")
    root = find_part_c_root(raw)
    result, seen, cache = ScanResult(), set(), {}
    for label in labels:
        folder = None if label.error else part_c_folder(root, label)
        if folder is None and not label.error:
            result.failures.append(fail(label.sample_id(NAME), "DatasetLayoutError",
                                        f"{label.where}: no frames for sub {digits(label.subject)} count {label.clip} "
                                        f"under {root}; assumed <sub>/<count>/color/<N>.jpg or <sub>/color/<N>.jpg "
                                        "(Part C's layout is undocumented: please report yours)"))
            continue
        collect(result, from_folder(NAME, label, folder, fps=FPS, cache=cache), seen)
    log.info("%s part C: %d samples, %d rejected", NAME, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="CAS(ME)^3 Part A (spNO.1/a/color/355.jpg + JpgIndex_v2 sheet) or Part C, 30 fps",
                  fps=FPS, options=OPTIONS)
