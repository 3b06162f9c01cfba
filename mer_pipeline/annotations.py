"""Annotation sheets: reading xlsx/xls/csv with cell types kept, header detection, fixes as data.

Fixes are a table of (subject, clip, field, old, new, reason) rows, applied by `apply_fixes`,
which refuses a fix whose `old` value does not match the sheet: a fix written for one copy of a
sheet is never silently applied to another.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import AnnotationError

Row = dict[str, Any]
log = logging.getLogger(__name__)


def read_table(path: Path, sheet: str | None = None) -> list[list[Any]]:
    """All rows of a sheet as lists of cell values (str, int, float or None), types as stored."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found; pass the right file with --annotations")
    suffix = path.suffix.lower()
    try:
        if suffix == ".xlsx":
            return _read_xlsx(path, sheet)
        if suffix == ".xls":
            return _read_xls(path, sheet)
        if suffix in (".csv", ".txt"):
            with open(path, newline="", encoding="utf-8-sig") as handle:
                return [[_csv_cell(c) for c in row] for row in csv.reader(handle)]
    except AnnotationError:
        raise
    except Exception as error:  # a broken or foreign file: say which and why
        raise AnnotationError(f"{path}: cannot read the annotation sheet ({type(error).__name__}: {error})") from error
    raise AnnotationError(f"{path}: unsupported annotation format {suffix!r} (expected .xlsx, .xls or .csv)")


def _csv_cell(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    if "_" in text:  # int() and float() accept '006_1_2' as 612 (digit grouping); ids keep their text
        return text
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _read_xlsx(path: Path, sheet: str | None) -> list[list[Any]]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
        return [[_clean(v) for v in row] for row in ws.iter_rows(values_only=True)]
    finally:
        book.close()


def _read_xls(path: Path, sheet: str | None) -> list[list[Any]]:
    import xlrd

    book = xlrd.open_workbook(str(path))
    ws = book.sheet_by_name(sheet) if sheet else book.sheet_by_index(0)
    rows = []
    for r in range(ws.nrows):
        row = []
        for cell in ws.row(r):
            if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                row.append(None)
            elif cell.ctype == xlrd.XL_CELL_NUMBER:
                row.append(int(cell.value) if float(cell.value).is_integer() else float(cell.value))
            else:
                row.append(_clean(cell.value))
        rows.append(row)
    return rows


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value if value else None
    if isinstance(value, float) and value.is_integer():
        return value  # keep the stored type; callers convert with as_int
    return value


def sheet_names(path: Path) -> list[str]:
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            return list(book.sheetnames)
        finally:
            book.close()
    if path.suffix.lower() == ".xls":
        import xlrd

        return list(xlrd.open_workbook(str(path), on_demand=True).sheet_names())
    return []


def find_header(table: list[list[Any]], required: Iterable[str], path: Path, max_rows: int = 40) -> int:
    """Index of the first row that contains every `required` column name (case-insensitive)."""
    wanted = {r.lower() for r in required}
    for index, row in enumerate(table[:max_rows]):
        names = {str(c).strip().lower() for c in row if c is not None}
        if wanted <= names:
            return index
    raise AnnotationError(
        f"{path}: no header row with columns {sorted(required)} in the first {max_rows} rows; "
        "is this the right annotation file? Pass it with --annotations"
    )


def rows_as_dicts(table: list[list[Any]], header_index: int) -> list[Row]:
    """Data rows under the header as dicts keyed by column name; unnamed columns get `Unnamed: i`.

    Fully empty rows are dropped. `_row` holds the 1-based spreadsheet row number for messages.
    """
    header = [str(c).strip() if c is not None else f"Unnamed: {i}" for i, c in enumerate(table[header_index])]
    rows = []
    for offset, values in enumerate(table[header_index + 1:], start=header_index + 2):
        if all(v is None for v in values):
            continue
        row = {name: (values[i] if i < len(values) else None) for i, name in enumerate(header)}
        row["_row"] = offset
        rows.append(row)
    return rows


def as_int(value: Any) -> int | None:
    """An integer frame number from a cell, or None when the cell holds no integer ('/', '', 3.5)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    text = str(value).strip()
    if "_" in text:  # float('1_2') == 12.0: digit grouping, never a frame number
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def as_text(value: Any) -> str:
    """Cell as text; integral floats lose their '.0' (an AU stored as 12.0 reads '12')."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def check_frames(onset: int | None, apex: int | None, offset: int | None) -> tuple[int | None, int, list[str]]:
    """Validate onset/apex/offset; returns (usable apex or None, usable offset, notes).

    Raises AnnotationError when onset/offset cannot be used. An apex that is not an integer or lies
    outside [onset, offset] is treated as missing (spotted later). An offset of 0 or before onset is
    replaced by a valid apex when there is one (CAS(ME)^2, CAS(ME)^3 quirk), noted.
    """
    notes: list[str] = []
    if onset is None or offset is None:
        raise AnnotationError("onset or offset is not an integer frame number")
    if onset < 0:
        raise AnnotationError(f"onset {onset} is negative")
    if offset < onset:
        if apex is not None and apex > onset:
            notes.append(f"offset {offset} before onset {onset}; offset set to the apex {apex}")
            offset = apex
        else:
            raise AnnotationError(f"offset {offset} lies before onset {onset} and no apex after onset is given")
    if apex is None:
        notes.append("apex missing or not an integer; it will be spotted")
    elif not onset <= apex <= offset:
        notes.append(f"apex {apex} outside [onset {onset}, offset {offset}]; it will be spotted")
        apex = None
    return apex, offset, notes


@dataclass(frozen=True)
class Fix:
    subject: str
    clip: str
    field: str
    old: str
    new: str
    reason: str


def load_fixes(path: Path) -> list[Fix]:
    """A fixes table: CSV with columns subject, clip, field, old, new, reason."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"subject", "clip", "field", "old", "new", "reason"} - set(reader.fieldnames or ())
        if missing:
            raise AnnotationError(f"{path}: fixes table lacks columns {sorted(missing)}")
        return [Fix(**{k: (row[k] or "").strip() for k in Fix.__dataclass_fields__}) for row in reader]


def apply_fixes(rows: list[Row], fixes: list[Fix], key: tuple[str, str], source: Path) -> list[str]:
    """Apply `fixes` in place to rows matched by (subject, clip) under the column names `key`.

    A fix applies only when the cell's current value equals `old` (compared as text); a cell that
    already holds `new` is left alone (a later copy of the sheet carries the correction). Any other
    value means this copy of the sheet is not the one the fix was written for: the fix is refused,
    and the row is marked `_refused` with the reason, so that the adapter reports that one sample
    as a failure (check it by hand) and the rest of the dataset goes on. Fixes for rows absent from
    this copy are skipped. Returns one note per fix: applied, skipped or refused.
    """
    subject_col, clip_col = key
    index = {(norm_key(r.get(subject_col)), as_text(r.get(clip_col))): r for r in rows}
    notes = []
    for fix in fixes:
        row = index.get((norm_key(fix.subject), fix.clip))
        if row is None:
            notes.append(f"fix {fix.subject}/{fix.clip} {fix.field}: no such row in this sheet, skipped")
            continue
        current = as_text(row.get(fix.field))
        if current == fix.new and current != fix.old:
            notes.append(f"fix {fix.subject}/{fix.clip} {fix.field}: already {fix.new} in this sheet, skipped")
            continue
        if current != fix.old:
            reason = (f"fix for {fix.subject}/{fix.clip} expects {fix.field} = {fix.old!r} but the sheet has "
                      f"{current!r}; this copy of the sheet differs from the one the fix was written for: check the "
                      "row by hand")
            row["_refused"] = reason  # the adapter reports it, prefixed with the sheet and row
            log.warning("%s row %s: %s", source, row.get("_row"), reason)
            notes.append(f"fix {fix.subject}/{fix.clip} {fix.field}: refused ({fix.field} is {current!r}, not {fix.old!r})")
            continue
        row[fix.field] = fix.new
        row.setdefault("_notes", []).append(f"{fix.field} {fix.old} -> {fix.new}: {fix.reason}")
        notes.append(f"fix {fix.subject}/{fix.clip} {fix.field}: {fix.old} -> {fix.new} ({fix.reason})")
    return notes


def norm_key(value: Any) -> str:
    """Subject ids compared without padding or case: '01', 1, 1.0 and 'sub01' stay distinct from
    other subjects but '01' == 1 == 1.0."""
    text = as_text(value).lower()
    return str(int(text)) if text.isdigit() else text
