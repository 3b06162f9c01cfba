"""Long videos as `mer-prep spot` reads them: where the videos are, how their frames are numbered,
and the ground-truth intervals their sheet gives.

Sources (one function each, registered in `SOURCES`):

* `videos`  - a folder of video files (read with OpenCV's FFmpeg; frames numbered from 0 in decoding
  order) or of frame folders (numbers from the file names), with an optional `spot_truth.csv`
  (`video, onset, apex, offset, kind[, emotion]`).
* `cas2`    - CAS(ME)^2: `rawpic/s15/15_0101disgustingteeth/img001.jpg`; the micro- and
  macro-expression rows of `CAS(ME)^2code_final.xlsx` (parsed by `datasets.cas2`) are the truth.
* `samm-lv` - SAMM Long Videos: `SAMM_longvideos/006_1/006_1_0001.jpg` and
  `SAMM_LongVideos_V*_Release.xlsx` (docs/datasets.md, Long videos).
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import AnnotationError, DatasetLayoutError, FrameError
from ..frames import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoFrame, list_frames, probe_video, read_grey
from .metric import KINDS, Interval

log = logging.getLogger(__name__)

TRUTH_CSV = "spot_truth.csv"


@dataclass
class LongVideo:
    """One long recording: its frames by number (image paths, or `frames.VideoFrame`s of a video
    file) and its ground-truth intervals."""

    dataset: str
    name: str  # as intervals.csv names it: `s15/15_0101disgustingteeth`, `006_1`, `rec01`
    subject: str
    fps: float
    path: Path  # the frame folder or the video file
    frames: dict[int, Path | VideoFrame] = field(default_factory=dict)
    truth: list[Interval] = field(default_factory=list)
    error: str | None = None  # why the video cannot be read (it becomes a failures.jsonl line)
    truth_known: bool = False  # a sheet covers this video (no interval in it then means none)

    @property
    def numbers(self) -> list[int]:
        return list(self.frames)

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps if self.fps else 0.0

    def iter_grey(self) -> Iterator[tuple[int, np.ndarray | None]]:
        """(frame number, grey frame) in order; None for an image that cannot be read (logged). A
        video file that breaks off ends the iteration there (logged)."""
        for number, path in self.frames.items():
            try:
                yield number, read_grey(path)
            except FrameError as error:
                log.warning("%s", error)
                if isinstance(path, VideoFrame):
                    return
                yield number, None

    def read_many(self, numbers: set[int]) -> dict[int, np.ndarray]:
        """The grey frames `numbers` that can be read (in order: one forward pass over a video file)."""
        out = {}
        for number in sorted(numbers):
            try:
                out[number] = read_grey(self.frames[number])
            except (FrameError, KeyError) as error:
                log.warning("%s: frame %s: %s", self.path, number, error)
        return out


def video_file(dataset: str, path: Path, subject: str | None = None) -> LongVideo:
    """A `LongVideo` of a video file: fps and frame count as the container gives them."""
    info = probe_video(path)
    if not info.fps:
        raise FrameError(f"{path}: the video gives no frame rate; export its frames to a folder and pass --fps")
    frames = {n: VideoFrame(Path(path), n) for n in range(info.frame_count)}
    return LongVideo(dataset, Path(path).stem, subject or Path(path).stem, info.fps, Path(path), frames)


# ---------------------------------------------------------------------------------------------
# sources

def find_videos(raw: Path, annotations: Path | None = None, fps: float | None = None) -> list[LongVideo]:
    """Video files and frame folders in `raw` (or in `raw/videos`), one subject each; truth from
    `annotations` or `raw/spot_truth.csv` when present. `fps` is needed for frame folders."""
    raw = Path(raw)
    folders = [raw, raw / "videos"] if (raw / "videos").is_dir() else [raw]
    videos: list[LongVideo] = []
    for folder in folders:
        for child in sorted(folder.iterdir()):
            if child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS:
                try:
                    videos.append(video_file("videos", child))
                except FrameError as error:  # one broken file is that video's failure, not the run's
                    videos.append(LongVideo("videos", child.stem, child.stem, 0.0, child, error=str(error)))
            elif child.is_dir() and child.name != "videos" and any(
                    p.suffix.lower() in IMAGE_EXTENSIONS for p in child.iterdir()):
                frames = list_frames(child)
                if fps is None:
                    raise DatasetLayoutError(f"{child}: a frame folder has no frame rate; pass --fps")
                videos.append(LongVideo("videos", child.name, child.name, float(fps), child, frames))
    names = [v.name for v in videos]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise DatasetLayoutError(f"{raw}: several videos are called {', '.join(doubles)}; rename them so that "
                                 "each video has its own name")
    if not videos:
        raise DatasetLayoutError(f"{raw}: no video files ({', '.join(VIDEO_EXTENSIONS)}) or frame folders found; "
                                 "point RAW at the folder that holds them")
    sheet = Path(annotations) if annotations else (raw / TRUTH_CSV if (raw / TRUTH_CSV).is_file() else None)
    if sheet is not None:
        _attach(videos, read_truth_csv(sheet), sheet)
    return videos


def read_truth_csv(path: Path) -> list[Interval]:
    """Intervals of a `video, onset, apex, offset, kind[, emotion]` CSV (apex and kind optional)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise AnnotationError(f"{path}: cannot read ({error.strerror or error})") from error
    intervals = []
    for number, row in enumerate(rows, start=2):
        missing = [c for c in ("video", "onset", "offset") if not (row.get(c) or "").strip()]
        if missing:
            raise AnnotationError(f"{path} row {number}: column(s) {', '.join(missing)} empty or absent; every row "
                                  "needs video, onset and offset")
        kind = (row.get("kind") or "micro").strip().lower()
        if kind not in KINDS:
            raise AnnotationError(f"{path} row {number}: kind {kind!r}; write micro or macro")
        try:
            onset, offset = int(row["onset"]), int(row["offset"])
            apex = int(row["apex"]) if (row.get("apex") or "").strip() else None
            intervals.append(Interval(row["video"].strip(), onset, offset, kind, apex,
                                      label=(row.get("emotion") or "").strip()))
        except ValueError as error:
            raise AnnotationError(f"{path} row {number}: {error}; onset, apex and offset are frame numbers") from error
    return intervals


def _attach(videos: list[LongVideo], truth: list[Interval], source: Path) -> None:
    by_name = {v.name: v for v in videos}
    for video in videos:
        video.truth_known = True
    unknown = sorted({t.video for t in truth} - set(by_name))
    if unknown:
        log.warning("%s: intervals of %s, which are not in RAW, are ignored", source, ", ".join(unknown))
    for interval in truth:
        if interval.video in by_name:
            by_name[interval.video].truth.append(interval)


def find_cas2(raw: Path, annotations: Path | None = None, fps: float | None = None) -> list[LongVideo]:
    """Every video folder of a CAS(ME)^2 rawpic tree, with the sheet's micro and macro intervals."""
    from ..datasets import cas2, find_annotation
    from ..datasets._common import digits

    root = cas2.find_frame_root(Path(raw))
    folders = cas2.video_folders(root)
    videos: dict[Path, LongVideo] = {}
    for folder in sorted({p for p in folders.values()}):
        frames = list_frames(folder)
        if frames:
            name = f"{folder.parent.name}/{folder.name}"
            subject = "s" + str(int(folder.name.split("_")[0]))
            videos[folder] = LongVideo("cas2", name, subject, float(fps or cas2.FPS), folder, frames)
    try:
        sheet = Path(annotations) if annotations else find_annotation(Path(raw), cas2.SHEETS,
                                                                      "CAS(ME)^2code_final.xlsx")
    except AnnotationError:
        log.warning("%s: no CAS(ME)^2code_final.xlsx; spotting without ground truth", raw)
        return list(videos.values())
    for video in videos.values():
        video.truth_known = True
    for kind in KINDS:
        for label in cas2.parse_sheet(sheet, kind):
            if label.error or label.onset is None or label.offset is None:
                log.warning("%s: %s; not used as ground truth", label.where, label.error or "no onset or offset")
                continue
            number, code = digits(label.subject), label.extra["video_code"]
            folder = folders.get(("prefix", number, code)) or folders.get(("folder", number, code))
            if folder not in videos:
                log.warning("%s: no video folder for %s; not used as ground truth", label.where, label.clip)
                continue
            offset = label.offset if label.offset >= label.onset else label.onset
            videos[folder].truth.append(Interval(videos[folder].name, label.onset, offset, kind, label.apex,
                                                 label=label.emotion))
    return list(videos.values())


SAMM_LV_SHEETS = ("SAMM_LongVideos_V*_Release.xlsx", "SAMM_LongVideos*.xlsx")
SAMM_LV_FPS = 200.0


def find_samm_lv(raw: Path, annotations: Path | None = None, fps: float | None = None) -> list[LongVideo]:
    """SAMM Long Videos: `SAMM_longvideos/<subject>_<n>/` frame folders and the release sheet."""
    from ..annotations import as_int, as_text, find_header, read_table, rows_as_dicts
    from ..datasets import find_annotation
    from ..datasets._common import find_tree, has_child_matching

    raw = Path(raw)
    pattern = re.compile(r"\d{3}_\d+")
    root = find_tree(raw, has_child_matching(pattern.pattern), prefer=("samm_longvideos",))
    if root is None:
        raise DatasetLayoutError(f"{raw}: no SAMM Long Videos tree found. Expected "
                                 "SAMM_longvideos/006_1/006_1_0001.jpg in RAW; point RAW at the download folder")
    videos = {}
    for folder in sorted(c for c in root.iterdir() if c.is_dir() and pattern.fullmatch(c.name)):
        frames = list_frames(folder)
        if frames:
            videos[folder.name] = LongVideo("samm-lv", folder.name, folder.name.split("_")[0],
                                            float(fps or SAMM_LV_FPS), folder, frames)
    try:
        sheet = Path(annotations) if annotations else find_annotation(raw, SAMM_LV_SHEETS,
                                                                      "SAMM_LongVideos_V3_Release.xlsx")
    except AnnotationError:
        log.warning("%s: no SAMM_LongVideos_*_Release.xlsx; spotting without ground truth", raw)
        return list(videos.values())
    for video in videos.values():
        video.truth_known = True
    table = read_table(sheet)
    header = find_header(table, ("Filename", "Onset", "Offset", "Type"), sheet)
    for row in rows_as_dicts(table, header):
        filename, kind = as_text(row.get("Filename")), as_text(row.get("Type")).lower()
        onset, apex, offset = (as_int(row.get(k)) for k in ("Onset", "Apex", "Offset"))
        kind = "micro" if kind.startswith("micro") else "macro" if kind.startswith("macro") else ""
        video = "_".join(filename.split("_")[:2])
        if not kind or onset is None or offset is None or video not in videos:
            log.warning("%s row %s: not used as ground truth (filename %r, type %r, onset %r, offset %r)", sheet.name,
                        row["_row"], filename, row.get("Type"), onset, offset)
            continue
        videos[video].truth.append(Interval(video, onset, max(offset, onset), kind, apex))
    return list(videos.values())


# The long-video datasets `mer-prep spot` reads: name -> the function that finds their videos
SOURCES = {"videos": find_videos, "cas2": find_cas2, "samm-lv": find_samm_lv}


def find_long_videos(dataset: str, raw: Path, annotations: Path | None = None,
                     fps: float | None = None) -> list[LongVideo]:
    """The long videos of `raw`, a tree of `dataset` (a name of SOURCES), with their truth when known;
    `fps` overrides the frame rate the dataset states."""
    if dataset not in SOURCES:
        raise DatasetLayoutError(f"unknown long-video dataset {dataset!r}; choose one of {', '.join(SOURCES)}")
    return SOURCES[dataset](Path(raw), annotations, fps)
