"""Frame files: numbers from file names (never from list order), listing and reading; frames of
video files by number (through OpenCV's bundled FFmpeg).

A video's frames stand in `Sample.frames` as `VideoFrame(video, number)` where an image folder has
paths; `read_grey` reads either. Video frames are numbered from 0, in decoding order (what OpenCV's
CAP_PROP_POS_FRAMES and FFmpeg's `n` count).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FrameError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def frame_number(name: str) -> int:
    """The last run of digits in a file name: `reg_img46.jpg` -> 46, `006_05562.jpg` -> 5562."""
    stem = Path(name).stem
    match = _LAST_DIGITS.search(stem)
    if match is None:
        raise FrameError(f"{name}: no frame number in the file name")
    return int(match.group(1))


def list_frames(folder: Path) -> dict[int, Path]:
    """Image files in `folder` keyed by frame number, sorted by number. Non-images are ignored."""
    frames: dict[int, Path] = {}
    for path in Path(folder).iterdir():
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        try:
            number = frame_number(path.name)
        except FrameError:
            continue
        if number in frames:
            raise FrameError(
                f"{folder}: frames {frames[number].name} and {path.name} both carry number {number}; "
                "remove the duplicate file"
            )
        frames[number] = path
    return dict(sorted(frames.items()))


def read_grey(path: Path) -> np.ndarray:
    """Read any image (grey, colour, RGBA, 16-bit), or a `VideoFrame`, as 8-bit grey. Raises
    FrameError naming the file."""
    if isinstance(path, VideoFrame):
        return read_video_frame(path)
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).exists() else None
    if data is None:
        raise FrameError(f"{path}: frame file is missing")
    if data.size == 0:
        raise FrameError(f"{path}: frame file is empty (0 bytes); restore it from the dataset download")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameError(f"{path}: cannot decode the image (corrupt or truncated); restore it from the download")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise FrameError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    return image


# ---------------------------------------------------------------------------------------------
# video files


@dataclass(frozen=True)
class VideoFrame:
    """Frame `number` (from 0) of the video file `video`; stands where an image path stands."""

    video: Path
    number: int

    def __str__(self) -> str:
        return f"{self.video} frame {self.number}"


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself: frame rate, frame count and size (W, H)."""

    path: Path
    fps: float
    frame_count: int
    size: tuple[int, int]


def _cannot_open(path: Path) -> FrameError:
    return FrameError(f"{path}: cannot decode the video (corrupt, truncated, or a codec OpenCV's FFmpeg lacks); "
                      "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or export its frames to a folder")


def _open(path: Path):
    path = Path(path)
    if not path.is_file():
        raise FrameError(f"{path}: video file is missing")
    if path.stat().st_size == 0:
        raise FrameError(f"{path}: video file is empty (0 bytes); copy it again from the camera or recorder")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise _cannot_open(path)
    return capture


def probe_video(path: Path) -> VideoInfo:
    """Frame rate, frame count and size of a video; FrameError naming the file when it cannot be
    decoded. The first frame is decoded to prove it; a container without a frame count is counted."""
    path = Path(path)
    capture = _open(path)
    try:
        ok, frame = capture.read()
        if not ok or frame is None:
            raise _cannot_open(path)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:
            count = 1
            while capture.grab():
                count += 1
    finally:
        capture.release()
    return VideoInfo(path, fps if np.isfinite(fps) and fps > 0 else 0.0, count, (frame.shape[1], frame.shape[0]))


class _Reader:
    """An open video decoded forward; going back reopens it (exact frame numbers, no seeking)."""

    def __init__(self, path: Path):
        self.path = path
        self.capture = _open(path)
        self.next = 0

    def read(self, number: int) -> np.ndarray:
        if number < self.next:
            self.capture.release()
            self.capture, self.next = _open(self.path), 0
        while self.next < number:
            if not self.capture.grab():
                raise self._ended(number)
            self.next += 1
        ok, frame = self.capture.read()
        if not ok or frame is None:
            raise self._ended(number)
        self.next += 1
        return frame

    def _ended(self, number: int) -> FrameError:
        return FrameError(f"{self.path}: frame {number} cannot be decoded (the video ends or breaks at frame "
                          f"{self.next}); is the file complete?")

    def close(self) -> None:
        self.capture.release()


_READERS: OrderedDict = OrderedDict()  # (path, mtime, size) -> _Reader, a few per process
_DECODED: OrderedDict = OrderedDict()  # (path, mtime, size, number) -> grey frame
_MAX_READERS, _MAX_DECODED = 2, 64


def read_video_frame(frame: VideoFrame) -> np.ndarray:
    """Frame `frame.number` of `frame.video` as 8-bit grey (FrameError naming the file)."""
    path = Path(frame.video)
    if frame.number < 0:
        raise FrameError(f"{path}: frame {frame.number} is negative; video frames count from 0")
    try:
        stat = path.stat()
    except OSError:
        raise FrameError(f"{path}: video file is missing") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key + (frame.number,) in _DECODED:
        _DECODED.move_to_end(key + (frame.number,))
        return _DECODED[key + (frame.number,)].copy()
    reader = _READERS.pop(key, None) or _Reader(path)
    _READERS[key] = reader
    while len(_READERS) > _MAX_READERS:
        _READERS.popitem(last=False)[1].close()
    grey = cv2.cvtColor(reader.read(frame.number), cv2.COLOR_BGR2GRAY)
    _DECODED[key + (frame.number,)] = grey
    while len(_DECODED) > _MAX_DECODED:
        _DECODED.popitem(last=False)
    return grey.copy()
