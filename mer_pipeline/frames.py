"""Frame files: numbers from file names (never from list order), listing and reading."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .errors import FrameError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
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
    """Read any image (grey, colour, RGBA, 16-bit) as 8-bit grey. Raises FrameError naming the file."""
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
