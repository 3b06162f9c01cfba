"""CAS(ME)^2: long videos `rawpic/s15/15_0101disgustingteeth/img001.jpg` (or cropped/, selectedpic/)
holding several expressions each, and the `CAS(ME)^2code_final.xlsx` workbook. Micro-expressions by
default, macro-expressions (kind=macro) with `--macro`. 30 fps.

Sample ids: `cas2/s15/disgust1_1` (subject folder, then the sheet's clip cell, which names the
stimulus and the expression's index in the video).

Quirks handled (datasets.md section 5): the CASFEcode_final sheet has no header row (columns by
position: subject, clip, onset, apex, offset, AUs, category, type, self-report; a header row, if a
copy has one, is skipped); subjects map to folders through the sheet `naming rule1` and stimulus
names (`disgust1`) to 4-digit video codes (`0101`) through `naming rule2` (also without header: a
reader with a default header loses the first row); video folders are found by name prefix and code
(`15_0101...`) wherever they sit, since `rawpic/s19/23_0502funnyerrors` holds subject 23's video,
else by code in the subject's folder; offset 0 (then the apex is used as offset, noted); apex 0 or outside the span
(spotted); the emotion is the category column (positive/negative/surprise/others), the
self-report kept in `extra`; frames img001.jpg numbered from 1 in the long video, only onset..offset kept.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any


from ..annotations import as_int, as_text, read_table, sheet_names
from ..errors import AnnotationError, DatasetLayoutError
from ..sample import ScanResult
from . import Adapter, Option, find_annotation
from ._common import Label, collect, digits, fail, find_tree, from_folder, has_child_matching, subdirs

log = logging.getLogger(__name__)

NAME = "cas2"
FPS = 30.0
SHEETS = ("CAS(ME)^2code_final*.xlsx", "CAS(ME)*code_final*.xls*", "*code_final*.xlsx", "*code_final*.xls")
TREES = ("rawpic", "rawpic_crop", "cropped", "selectedpic")
CODE_SHEETS = ("casfecode_final", "casmecode_final")
_SUBJECT = r"s\d+"

OPTIONS = (
    Option("macro", "Take the macro-expressions (kind=macro) instead of the micro ones.", type=bool, default=False),
)


def parse_naming_rule1(table: list[list[Any]]) -> dict[int, int]:
    """Subject number (third column) -> number of its folder (`s15` in the second or first column)."""
    mapping = {}
    for row in table:
        cells = list(row) + [None] * 3
        number = as_int(cells[2])
        folder = next((digits(c) for c in (cells[1], cells[0]) if re.fullmatch(r"s?\d+", as_text(c).lower())), None)
        if number is not None and folder is not None:
            mapping[number] = folder
    return mapping


def parse_naming_rule2(table: list[list[Any]]) -> dict[str, str]:
    """Stimulus name (second column, `disgust1`) -> 4-digit video code (first column, 101 -> `0101`)."""
    mapping = {}
    for row in table:
        cells = list(row) + [None] * 2
        code, name = as_int(cells[0]), as_text(cells[1]).lower()
        if code is not None and 0 <= code <= 9999 and name:
            mapping[name] = f"{code:04d}"
    return mapping


def parse_table(table: list[list[Any]], source: Path, folders: dict[int, int], codes: dict[str, str],
                kind: str = "micro") -> list[Label]:
    """The expressions of type `kind` in the headerless CASFEcode_final sheet, one `Label` per row."""
    source = Path(source)
    labels = []
    for index, row in enumerate(table, start=1):
        cells = list(row) + [None] * 9
        if all(c is None for c in cells):
            continue
        if index == 1 and as_int(cells[2]) is None and as_int(cells[0]) is None:
            continue  # a copy with a header row
        if _type(cells[7]) != kind:
            continue
        number, clip = as_int(cells[0]), as_text(cells[1])
        folder = folders.get(number) if number is not None else None
        label = Label(subject=f"s{folder}" if folder is not None else f"subject{as_text(cells[0])}", clip=clip,
                      onset=as_int(cells[2]), apex=as_int(cells[3]), offset=as_int(cells[4]),
                      emotion=as_text(cells[6]), action_units=as_text(cells[5]), where=f"{source.name} row {index}")
        if as_text(cells[8]):
            label.extra["self_report"] = as_text(cells[8])
        stimulus = clip.split("_")[0].lower()
        if number is None:
            label.error = f"subject {cells[0]!r} is not a number"
        elif folder is None:
            label.error = f"subject {number} is not in the sheet 'naming rule1'"
        elif not clip:
            label.error = "the clip cell is empty"
        elif stimulus not in codes:
            label.error = f"stimulus {stimulus!r} (from clip {clip!r}) is not in the sheet 'naming rule2'"
        else:
            label.extra["video_code"] = codes[stimulus]
        if label.apex == 0:
            label.apex = None
            label.notes.append("apex 0 (not annotated); it will be spotted")
        if label.offset == 0 and label.apex is not None:
            label.notes.append(f"offset 0; the apex {label.apex} is used as offset")
            label.offset = label.apex
        labels.append(label)
    return labels


def _type(value: Any) -> str:
    text = as_text(value).lower()
    return "macro" if text.startswith("macro") else "micro" if text.startswith("micro") else text


def parse_sheet(path: Path, kind: str = "micro") -> list[Label]:
    path = Path(path)
    names = {n.lower().strip(): n for n in sheet_names(path)}
    code_sheet = next((names[n] for n in CODE_SHEETS if n in names), None)
    rule1 = next((names[n] for n in names if re.sub(r"\s+", "", n) == "namingrule1"), None)
    rule2 = next((names[n] for n in names if re.sub(r"\s+", "", n) == "namingrule2"), None)
    if rule1 is None or rule2 is None:
        raise AnnotationError(f"{path}: the sheets 'naming rule1' and 'naming rule2' are missing; is this "
                              "CAS(ME)^2code_final.xlsx? Pass it with --annotations")
    folders, codes = parse_naming_rule1(read_table(path, rule1)), parse_naming_rule2(read_table(path, rule2))
    return parse_table(read_table(path, code_sheet), path, folders, codes, kind)


def find_frame_root(raw: Path) -> Path:
    root = find_tree(raw, has_child_matching(_SUBJECT), prefer=TREES)
    if root is None:
        raise DatasetLayoutError(
            f"{raw}: no CAS(ME)^2 frame tree found. Expected rawpic/s15/15_0101disgustingteeth/img001.jpg in RAW "
            "(or cropped/, selectedpic/). Point RAW at the CAS(ME)^2 download folder"
        )
    return root


def video_folders(root: Path) -> dict[tuple[str, int, str], Path]:
    """Video folders by ('folder', subject folder number, code) and by ('prefix', name prefix, code)."""
    index: dict[tuple[str, int, str], Path] = {}
    strays = []
    for name, subject in subdirs(root).items():
        if not re.fullmatch(_SUBJECT, name):
            continue
        for video in subdirs(subject).values():
            match = re.match(r"(\d+)_(\d{4})", video.name)
            if match:
                prefix, code = int(match.group(1)), match.group(2)
                index.setdefault(("prefix", prefix, code), video)
                if prefix == int(name[1:]):
                    index.setdefault(("folder", prefix, code), video)
                else:
                    strays.append((int(name[1:]), code, video))
    for number, code, video in strays:  # a folder whose prefix is another subject's: last resort
        index.setdefault(("folder", number, code), video)
    return index


def scan(raw: Path, annotations: Path | None = None, macro: bool = False) -> ScanResult:
    kind = "macro" if macro else "micro"
    sheet = Path(annotations) if annotations else find_annotation(Path(raw), SHEETS, "CAS(ME)^2code_final.xlsx")
    labels = parse_sheet(sheet, kind)
    root = find_frame_root(raw)
    videos = video_folders(root)
    result, seen, cache = ScanResult(), set(), {}
    for label in labels:
        folder = None
        if not label.error:
            number, code = digits(label.subject), label.extra["video_code"]
            folder = videos.get(("prefix", number, code)) or videos.get(("folder", number, code))
            if folder is None:
                result.failures.append(fail(label.sample_id(NAME), "DatasetLayoutError",
                                            f"{label.where}: no video folder {root / label.subject}/*_{code}* for clip "
                                            f"{label.clip}; is the download complete?"))
                continue
            if folder.parent.name.lower() != label.subject.lower():
                label.notes.append(f"video found in {folder.parent.name}/{folder.name}")
        collect(result, from_folder(NAME, label, folder, fps=FPS, kind=kind, cache=cache), seen)
    log.info("%s %s: %d samples, %d rejected", NAME, kind, len(result.samples), len(result.failures))
    return result


ADAPTER = Adapter(NAME, scan, description="CAS(ME)^2 (rawpic/s15/15_0101disgustingteeth/img001.jpg + CAS(ME)^2code_final.xlsx), "
                  "30 fps", fps=FPS, options=OPTIONS)
