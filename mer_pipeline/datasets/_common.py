"""What the dataset adapters share: a parsed sheet row (`Label`), turning one into a `Sample` or a
`Failure`, finding folders case-insensitively, and locating a frame tree inside RAW.

Not an adapter (the registry never imports it by name); each adapter file stays readable on its
own and calls these helpers for the parts that are the same everywhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..annotations import Row, apply_fixes, as_text, check_frames, load_fixes
from ..errors import AnnotationError, FrameError
from ..frames import list_frames
from ..sample import Failure, Sample, ScanResult, sample_id

FIXES_DIR = Path(__file__).parent / "fixes"
# No micro-expression lasts a minute: a row that long has a typo the sources do not correct
# (CAS(ME)^3 spNO.214/c: onset 5, offset 3460). Rejected rather than spotted over thousands of frames.
MAX_MICRO_SECONDS = 60.0


@dataclass
class Label:
    """One annotated expression as a sheet (or a folder name) gives it, before frames are matched.

    `error` is set when the row cannot be used at all (it becomes a Failure); `where` names the
    file and row for messages.
    """

    subject: str
    clip: str
    onset: int | None
    apex: int | None
    offset: int | None
    emotion: str
    action_units: str = ""
    where: str = ""
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    error: str | None = None

    def sample_id(self, dataset: str) -> str:
        return sample_id(dataset, self.subject or "?", self.clip or "?")


def fail(sample_id: str, error: str, message: str, stage: str = "adapter") -> Failure:
    return Failure(sample_id, stage, error, message)


def unlabelled(dataset: str, subject: str, folder: Path, sheet: Path) -> Failure:
    """The failure of a clip folder that no row of `sheet` names (reported, never silently dropped)."""
    return fail(sample_id(dataset, subject, folder.name), "AnnotationError",
                f"{folder}: folder has no row in {sheet.name}; not labelled, skipped")


def to_sample(dataset: str, label: Label, frames: dict[int, Path], *, fps: float, kind: str = "micro",
              folder: Path | None = None, trim: bool = True) -> Sample | Failure:
    """A `Sample` from a label and the frames of its folder, or a `Failure` saying why not.

    Onset/apex/offset are checked by `check_frames` (an unusable apex is spotted later). With
    `trim`, only frames numbered onset..offset are kept (long videos hold many expressions).
    Gaps in the numbering are tolerated and noted.
    """
    sample_id = label.sample_id(dataset)
    where = label.where or sample_id
    if label.error:
        return fail(sample_id, "AnnotationError", f"{where}: {label.error}")
    try:
        apex, offset, notes = check_frames(label.onset, label.apex, label.offset)
    except AnnotationError as error:
        return fail(sample_id, "AnnotationError", f"{where}: {error}")
    onset = label.onset
    if kind == "micro" and fps and (offset - onset) / fps > MAX_MICRO_SECONDS:
        return fail(sample_id, "AnnotationError",
                    f"{where}: onset {onset} .. offset {offset} lasts {(offset - onset) / fps:.0f} s, far longer "
                    "than any micro-expression; the sheet holds a typo that no source corrects, row skipped")
    inside = {n: p for n, p in frames.items() if onset <= n <= offset}
    if not inside:
        place = folder if folder is not None else "the frame folder"
        return fail(sample_id, "FrameError",
                    f"{where}: {place} has no frames numbered {onset}..{offset} "
                    f"(it holds {len(frames)} images{_span(frames)}); check the row, or is the download complete?")
    missing = (offset - onset + 1) - len(inside)
    if missing:
        notes.append(f"{missing} of {offset - onset + 1} frames {onset}..{offset} missing; nearest frames used")
    return Sample(
        dataset=dataset, subject=label.subject, clip=label.clip, frames=inside if trim else dict(frames),
        onset=onset, apex=apex, offset=offset, emotion=label.emotion, action_units=label.action_units,
        fps=fps, kind=kind, notes=tuple(label.notes + notes), extra=dict(label.extra),
    )


def from_folder(dataset: str, label: Label, folder: Path, *, fps: float, kind: str = "micro",
                cache: dict[Path, dict[int, Path]] | None = None) -> Sample | Failure:
    """`to_sample` on the frames of `folder`; `cache` lists each folder once (a long video holds many
    expressions). A folder with two files of one frame number becomes a Failure naming them."""
    if label.error:
        return to_sample(dataset, label, {}, fps=fps, kind=kind)
    try:
        if cache is None:
            frames = list_frames(folder)
        else:
            if folder not in cache:
                cache[folder] = list_frames(folder)
            frames = cache[folder]
    except FrameError as error:
        return fail(label.sample_id(dataset), "FrameError", f"{label.where}: {error}")
    return to_sample(dataset, label, frames, fps=fps, kind=kind, folder=folder)


def _span(frames: dict[int, Path]) -> str:
    return f", numbered {min(frames)}..{max(frames)}" if frames else ""


def collect(result: ScanResult, item: Sample | Failure, seen: set[str]) -> None:
    """Add a sample or failure to `result`; a second sample with the same id becomes a failure."""
    if isinstance(item, Failure):
        result.failures.append(item)
    elif item.sample_id in seen:
        result.failures.append(fail(item.sample_id, "AnnotationError",
                                    f"duplicate sample {item.sample_id} in the sheet; kept the first"))
    else:
        seen.add(item.sample_id)
        result.samples.append(item)


def dataset_fixes(dataset: str, rows: list[Row], key: tuple[str, str], source: Path) -> list[str]:
    """Apply `fixes/<dataset>.csv` when the dataset has one (see `annotations.apply_fixes`)."""
    path = FIXES_DIR / f"{dataset}.csv"
    return apply_fixes(rows, load_fixes(path), key, source) if path.is_file() else []


def subdirs(folder: Path) -> dict[str, Path]:
    """Child folders keyed by lower-case name (downloads differ in case: spNO/spNo, J/j)."""
    try:
        return {p.name.lower(): p for p in sorted(Path(folder).iterdir()) if p.is_dir()}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}


def child(folder: Path, name: str) -> Path | None:
    """The child folder called `name`, compared case-insensitively, or None."""
    return subdirs(folder).get(name.lower())


def find_tree(raw: Path, looks_right: Callable[[Path], bool], prefer: Iterable[str] = (), depth: int = 3) -> Path | None:
    """The first folder at or below `raw` (breadth-first, `depth` levels) for which `looks_right` holds.

    Folders named in `prefer` (lower-case names, e.g. `rawpic`) are tried before their siblings,
    so that RAW may point at the dataset folder, the tree inside it, or somewhere in between.
    """
    order = {name: i for i, name in enumerate(prefer)}
    level = [Path(raw)]
    for _ in range(depth + 1):
        following = []
        for folder in level:
            if looks_right(folder):
                return folder
            children = subdirs(folder)
            following.extend(sorted(children.values(), key=lambda p: (order.get(p.name.lower(), len(order)), p.name)))
        level = following
    return None


def has_child_matching(pattern: str) -> Callable[[Path], bool]:
    """A `looks_right` test: the folder has a child folder whose whole name matches `pattern` (no case)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return lambda folder: any(regex.fullmatch(name) for name in subdirs(folder))


def digits(value: Any) -> int | None:
    """The number in an id: 6, '006', 's01', 'sub01', 'spNO.14' -> 6, 6, 1, 1, 14; None when none."""
    match = re.search(r"(\d+)\s*$", as_text(value))
    return int(match.group(1)) if match else None


def au_text(value: Any) -> str:
    """Action units as text, '+'-joined: CAS(ME)^3 Part C writes 'R4,5' and once '4，11' (full-width)."""
    text = as_text(value).replace("，", ",")
    parts = [p.strip() for p in text.split(",")]
    return "+".join(p for p in parts if p)


def resolve_columns(row: Row, wanted: dict[str, tuple[str, ...]], source: Path, optional: tuple[str, ...] = ()) -> dict[str, str]:
    """Map canonical field names to the column names a copy of a sheet uses.

    `wanted` gives the accepted spellings per field (`'onset': ('Onset Frame', 'Onset', 'OnsetFrame')`),
    compared case-insensitively. A missing required field raises AnnotationError naming the spellings.
    """
    names = {k.lower(): k for k in row if isinstance(k, str) and not k.startswith("_")}
    found, missing = {}, []
    for field_name, spellings in wanted.items():
        column = next((names[s.lower()] for s in spellings if s.lower() in names), None)
        if column is not None:
            found[field_name] = column
        elif field_name not in optional:
            missing.append(" or ".join(repr(s) for s in spellings))
    if missing:
        raise AnnotationError(f"{source}: the header lacks the columns {'; '.join(missing)}; "
                              "is this the right annotation file? Pass it with --annotations")
    return found
