"""Your own recordings: a folder of video files (mp4, avi, mov, mkv, m4v, webm; decoded by OpenCV's
bundled FFmpeg) or folders of frames, plus an optional CSV (datasets.md, "Your own recordings").

    RAW/p01_take1.mp4   RAW/p01_take2.mov   RAW/p02/take1/frame_00001.png ...   RAW/labels.csv

Recordings are found in RAW and two folder levels below it; a frame folder is a folder holding
numbered images. The CSV (the only .csv in RAW, or --annotations) has the columns
`subject,clip,onset,apex,offset,emotion`; `clip` names a video file or frame folder, with or without
its extension. Only `clip` must be filled:

- onset/apex/offset are frame numbers: a video's frames count from 0 in decoding order, a frame
  folder's are the numbers in its file names. `onset_s`, `apex_s`, `offset_s` give times in
  seconds instead (frame = round(seconds x fps)); a frame cell wins over a seconds cell.
- empty subject: the clip is its own subject, with a warning (leave-one-subject-out then treats
  clips as people); empty apex: spotted; empty onset/offset: the first/last frame of the recording;
  empty emotion: an unlabelled sample (for `mer-train predict`).
- optional columns: `action_units`, `kind` (micro | macro, default micro), `fps` (for a frame
  folder, whose frame rate no file states; a video's fps is read from the file).

A recording named in several rows (several expressions in one video) gives one sample per row,
`<clip>_f<onset>`. Without a CSV every recording is one unlabelled whole-clip sample.

Quirks handled (datasets.md, "Your own recordings"): a row that cannot be used (a frame cell that
is not a whole number, a frame outside the recording, an unknown kind), a video that cannot be
decoded (truncated, foreign codec), a clip cell naming no recording or several, a recording no row
names: each fails only its clip, the message naming the file, the row and the column. Containers
without a frame count are counted by decoding.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ..annotations import as_int, as_text, check_frames, find_header, read_table, rows_as_dicts
from ..errors import AnnotationError, DatasetLayoutError, FrameError
from ..frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoFrame, list_frames, probe_video
from ..sample import KINDS, Failure, Sample, ScanResult, sample_id
from . import Adapter
from ._common import subdirs

log = logging.getLogger(__name__)

NAME = "videos"
FRAME_COLUMNS = ("onset", "apex", "offset")
SECONDS_SUFFIX = "_s"


@dataclass
class Recording:
    """A video file or a frame folder found in RAW; `frames` and `fps` filled on first use."""

    path: Path
    is_video: bool
    frames: dict | None = None
    fps: float = 0.0

    @property
    def stem(self) -> str:
        return self.path.stem if self.is_video else self.path.name

    def load(self) -> None:
        """Probe the video (FrameError naming the file when it cannot be decoded) or list the folder."""
        if self.frames is not None:
            return
        if self.is_video:
            info = probe_video(self.path)
            self.fps = info.fps
            self.frames = {n: VideoFrame(self.path, n) for n in range(info.frame_count)}
        else:
            self.frames = list_frames(self.path)
            if not self.frames:
                raise FrameError(f"{self.path}: frame folder holds no numbered images")


def find_recordings(raw: Path, depth: int = 2) -> list[Recording]:
    """Video files and frame folders in RAW and up to `depth` folder levels below it, by path."""
    found: list[Recording] = []
    level = [Path(raw)]
    for _ in range(depth + 1):
        following = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for path in entries:
                if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith("."):
                    found.append(Recording(path, True))
            for path in subdirs(folder).values():
                if _is_frame_folder(path):
                    found.append(Recording(path, False))
                elif not path.name.startswith("."):
                    following.append(path)
        level = following
    return found


def _is_frame_folder(folder: Path) -> bool:
    """At least two numbered images and no video file (a folder of takes with a thumbnail is not one)."""
    try:
        files = [p for p in folder.iterdir() if p.is_file()]
    except OSError:
        return False
    if any(p.suffix.lower() in VIDEO_EXTENSIONS for p in files):
        return False
    return sum(p.suffix.lower() in IMAGE_EXTENSIONS and any(c.isdigit() for c in p.stem) for p in files) >= 2


def find_csv(raw: Path) -> Path | None:
    """The CSV in RAW (top level), None when there is none; AnnotationError when several."""
    sheets = sorted(p for p in Path(raw).glob("*.csv") if p.is_file() and not p.name.startswith("."))
    if len(sheets) > 1:
        raise AnnotationError(f"{raw}: several CSV files ({', '.join(p.name for p in sheets)}); "
                              "pass the one with the labels with --annotations FILE")
    return sheets[0] if sheets else None


def scan(raw: Path, annotations: Path | None = None) -> ScanResult:
    raw = Path(raw)
    recordings = find_recordings(raw)
    if not recordings:
        raise DatasetLayoutError(
            f"{raw}: no recordings found (video files {', '.join(VIDEO_EXTENSIONS)} or folders of numbered "
            "images, in RAW or two levels below it). Point RAW at the folder holding your recordings"
        )
    sheet = Path(annotations) if annotations else find_csv(raw)
    result = ScanResult()
    if sheet is None:
        log.warning("%s: no CSV of labels; each of the %d recordings becomes one unlabelled sample, its own "
                    "subject (fine for mer-train predict; training needs a CSV with subject and emotion)",
                    raw, len(recordings))
        for recording in recordings:
            row = {"clip": recording.path.name, "_row": None}
            _add(result, _sample(row, _Columns({}), recording, f"{recording.path}", 1), set())
        return result

    rows, columns = _read_sheet(sheet)
    by_name = _names(recordings)
    counts: dict[int, int] = {}
    targets: dict[int, Recording | str] = {}
    for row in rows:
        target = _resolve(as_text(row.get(columns.clip)), by_name)
        targets[row["_row"]] = target
        if isinstance(target, Recording):
            counts[id(target)] = counts.get(id(target), 0) + 1
    seen: set[str] = set()
    unnamed = 0
    for row in rows:
        where = f"{sheet.name} row {row['_row']}"
        target = targets[row["_row"]]
        clip = as_text(row.get(columns.clip))
        if isinstance(target, str):
            result.failures.append(Failure(sample_id(NAME, as_text(row.get(columns.subject)) or clip or "?", clip or "?"),
                                           "adapter", "AnnotationError", f"{where}, column clip: {target}"))
            continue
        if not as_text(row.get(columns.subject)):
            unnamed += 1
        _add(result, _sample(row, columns, target, where, counts[id(target)]), seen)
    named = {id(t) for t in targets.values() if isinstance(t, Recording)}
    for recording in recordings:
        if id(recording) not in named:
            result.failures.append(Failure(sample_id(NAME, recording.stem, recording.stem), "adapter", "AnnotationError",
                                           f"{recording.path}: recording has no row in {sheet.name}; add a row "
                                           "(only the clip column is needed) to include it"))
    if unnamed:
        log.warning("%s: %d row(s) have no subject; each such clip is its own subject, so leave-one-subject-out "
                    "treats clips as people. Fill the subject column to evaluate on unseen people", sheet.name, unnamed)
    return result


class _Columns:
    """The CSV's column name per known field (header spelling kept); None for a field it lacks."""

    FIELDS = ("subject", "clip", "onset", "apex", "offset", "emotion", "onset_s", "apex_s", "offset_s",
              "action_units", "kind", "fps")

    def __init__(self, names: dict[str, str]):
        for field in self.FIELDS:
            setattr(self, field, names.get(field))


def _read_sheet(sheet: Path) -> tuple[list[dict], _Columns]:
    table = read_table(sheet)
    header = find_header(table, ("clip",), sheet)
    rows = rows_as_dicts(table, header)
    names = {}
    for cell in table[header]:
        key = str(cell).strip().lower() if cell is not None else ""
        if key in _Columns.FIELDS and key not in names:
            names[key] = str(cell).strip()
    return rows, _Columns(names)


def _names(recordings: list[Recording]) -> dict[str, list[Recording]]:
    by_name: dict[str, list[Recording]] = {}
    for recording in recordings:
        for name in {recording.path.name.lower(), recording.stem.lower()}:
            by_name.setdefault(name, []).append(recording)
    return by_name


def _resolve(clip: str, by_name: dict[str, list[Recording]]) -> Recording | str:
    """The recording a `clip` cell names, or the reason why none."""
    if not clip:
        return "empty; name the video file or frame folder (with or without extension)"
    matches = by_name.get(Path(clip).name.lower(), [])
    if not matches:
        return f"no recording called {clip!r} in RAW (video files and frame folders, two levels deep)"
    if len(matches) > 1:
        where = ", ".join(str(m.path) for m in matches)
        return f"{clip!r} matches several recordings ({where}); write the name with its extension, or rename one"
    return matches[0]


def _add(result: ScanResult, item: Sample | Failure, seen: set[str]) -> None:
    if isinstance(item, Sample) and item.sample_id in seen:
        item = Failure(item.sample_id, "adapter", "AnnotationError",
                       f"duplicate sample {item.sample_id} (same recording and onset); kept the first")
    if isinstance(item, Failure):
        result.failures.append(item)
    else:
        seen.add(item.sample_id)
        result.samples.append(item)


class _RowError(AnnotationError):
    pass


def _sample(row: dict, columns: _Columns, recording: Recording, where: str, rows_of_clip: int) -> Sample | Failure:
    subject = as_text(row.get(columns.subject)) if columns.subject else ""
    provisional = sample_id(NAME, subject or recording.stem, recording.stem)
    try:
        recording.load()
    except FrameError as error:
        return Failure(provisional, "adapter", "FrameError", f"{where}: {error}")
    try:
        fps = recording.fps or _fps_cell(row, columns, where)
        onset, apex, offset = (_frame(row, columns, name, fps, where, recording) for name in FRAME_COLUMNS)
        first, last = min(recording.frames), max(recording.frames)
        onset = first if onset is None else onset
        offset = last if offset is None else offset
        for name, value in (("onset", onset), ("offset", offset)):
            if not first <= value <= last:
                raise _RowError(f"{where}, column {name}: frame {value} lies outside the recording's frames "
                                f"{first}..{last} ({recording.path})")
        apex, offset, notes = check_frames(onset, apex, offset)
        kind = as_text(row.get(columns.kind)).lower() if columns.kind else ""
        if kind and kind not in KINDS:
            raise _RowError(f"{where}, column kind: {kind!r} is not one of {', '.join(KINDS)}")
    except AnnotationError as error:
        message = str(error) if isinstance(error, _RowError) else f"{where}: {error}"
        return Failure(provisional, "adapter", "AnnotationError", message)
    clip = recording.stem if rows_of_clip == 1 else f"{recording.stem}_f{onset}"
    inside = {n: p for n, p in recording.frames.items() if onset <= n <= offset}
    missing = (offset - onset + 1) - len(inside)
    if missing:
        notes.append(f"{missing} of {offset - onset + 1} frames {onset}..{offset} missing; nearest frames used")
    return Sample(dataset=NAME, subject=subject or clip, clip=clip, frames=inside, onset=onset, apex=apex,
                  offset=offset, emotion=as_text(row.get(columns.emotion)) if columns.emotion else "",
                  action_units=as_text(row.get(columns.action_units)) if columns.action_units else "",
                  fps=fps, kind=kind or "micro", notes=tuple(notes),
                  extra={"recording": str(recording.path), "subject_given": bool(subject)})


def _fps_cell(row: dict, columns: _Columns, where: str) -> float:
    if not columns.fps or row.get(columns.fps) in (None, ""):
        return 0.0
    value = _number(row.get(columns.fps))
    if value is None or value <= 0:
        raise _RowError(f"{where}, column fps: {row.get(columns.fps)!r} is not a positive frame rate")
    return value


def _frame(row: dict, columns: _Columns, name: str, fps: float, where: str, recording: Recording) -> int | None:
    """Frame number of `name` from its frame column, else from its seconds column, else None."""
    column = getattr(columns, name)
    cell = row.get(column) if column else None
    if cell not in (None, ""):
        number = as_int(cell)
        if number is None or number < 0:
            raise _RowError(f"{where}, column {column}: {cell!r} is not a frame number (a whole number from 0; "
                            f"for times in seconds use the column {name}{SECONDS_SUFFIX})")
        return number
    column = getattr(columns, name + SECONDS_SUFFIX)
    cell = row.get(column) if column else None
    if cell in (None, ""):
        return None
    seconds = _number(cell)
    if seconds is None or seconds < 0:
        raise _RowError(f"{where}, column {column}: {cell!r} is not a time in seconds")
    if not fps:
        raise _RowError(f"{where}, column {column}: {recording.path} states no frame rate, so seconds cannot be "
                        "turned into frames; add an fps column or give frame numbers")
    return int(round(seconds * fps)) + (min(recording.frames) if not recording.is_video else 0)


def _number(value) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


ADAPTER = Adapter(NAME, scan, description="your own recordings: video files (mp4, avi, mov, mkv) or frame folders "
                  "+ an optional CSV subject,clip,onset,apex,offset,emotion")
