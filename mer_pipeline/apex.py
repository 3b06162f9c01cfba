"""The apex frame of a clip from its aligned frames, and the guard that a frame shows the onset's
face. Pure functions: arrays in, frame numbers out; reading the frame files is the caller's
(`clip.process_clip`).
"""
from __future__ import annotations

from typing import Mapping

import cv2
import numpy as np

from . import align as al
from .errors import FrameError, MerError
from .flow import TVL1Params, compute_flow

# The apex sanity guard (`check_same_face`). After head motion is removed, the aligned frames are
# compared at GUARD_SIZE pixels (so that the test does not depend on --size), cut into a grid of
# GUARD_CELLS x GUARD_CELLS cells; a cell matches when its band-passed pixels correlate at least
# CELL_MATCH with the onset's. A frame shows the onset's face when at least MIN_MATCHING_CELLS of
# the face's cells match. Measured on a real photo with dlib landmarks at --size 64, 128 and 256
# (tests/test_apex_guard.py): a hand over 44 % of the face, a laugh (mouth corners and jaw moved by
# 0.2 x the eye distance) with and without a 12-degree head turn score >= 0.35; blank, noise and
# nine other pictures (skimage's scenes, the same photo elsewhere or smaller) <= 0.17. The former
# guard (plain correlation over the face before stabilisation >= 0.3) refused the laugh with the
# head turn (0.24) and let a picture of a rocket pass (0.46).
GUARD_SIZE = 96
GUARD_CELLS = 8
CELL_MATCH = 0.5
MIN_MATCHING_CELLS = 0.25
BLANK_SPREAD = 2.0  # grey levels: below this standard deviation over the face, a frame is blank

# Spotting runs TV-L1 on many frames: one level is enough once head motion is removed (what is
# left is sub-pixel), at a fraction of the full cost.
SPOT_TVL1 = TVL1Params(nscales=1, warps=2, inner_iterations=10, outer_iterations=5, median_filtering=1)


def check_same_face(onset: np.ndarray, frame: np.ndarray, face: np.ndarray, path) -> np.ndarray:
    """Raise FrameError when the aligned `frame` does not show the aligned `onset`'s face; else
    return the head motion onset -> frame (`align.estimate_head_motion`), which callers reuse.
    `path` names the frame in the message.

    Expressive frames change much of the face (a laugh, a hand in front of it, a head turn), so the
    test asks only that a quarter of the face still matches the onset once head motion is removed
    (see GUARD_CELLS above); a blank, noisy or foreign frame matches almost nowhere.
    """
    spread = float(frame[face > 0].std())
    if spread < BLANK_SPREAD:
        raise FrameError(f"{path}: this frame does not show the onset frame's face (no contrast over the face: "
                         f"standard deviation {spread:.1f} grey levels): it is blank; restore it from the download")
    motion = al.estimate_head_motion(onset, frame, face)
    matching = matching_cells(*_at_guard_size(onset, al.remove_head_motion(frame, motion), face))
    if matching < MIN_MATCHING_CELLS:
        raise FrameError(f"{path}: this frame does not show the onset frame's face (after head motion is removed, "
                         f"{matching:.0%} of the face matches the onset, below {MIN_MATCHING_CELLS:.0%}): it is "
                         "blank, noise or another picture; restore it from the download")
    return motion


def _at_guard_size(onset: np.ndarray, frame: np.ndarray, face: np.ndarray):
    size = onset.shape[0]
    if size == GUARD_SIZE:
        return onset, frame, face
    interpolation = cv2.INTER_AREA if size > GUARD_SIZE else cv2.INTER_LINEAR
    shape = (GUARD_SIZE, GUARD_SIZE)
    return (cv2.resize(onset, shape, interpolation=interpolation), cv2.resize(frame, shape, interpolation=interpolation),
            cv2.resize(face, shape, interpolation=cv2.INTER_NEAREST))


def matching_cells(onset: np.ndarray, frame: np.ndarray, face: np.ndarray) -> float:
    """Share of the face's grid cells (cells at least 60 % inside `face`) whose band-passed pixels
    correlate >= CELL_MATCH between two aligned, stabilised frames. Band-pass (blur sigma 1 minus
    blur sigma size/24) removes lighting gradients that would make any two smooth patches agree."""
    size = onset.shape[0]
    a, b = (cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0) - cv2.GaussianBlur(x.astype(np.float32), (0, 0), size / 24)
            for x in (onset, frame))
    step = size // GUARD_CELLS
    matched = total = 0
    for i in range(GUARD_CELLS):
        for j in range(GUARD_CELLS):
            cell = (slice(i * step, (i + 1) * step), slice(j * step, (j + 1) * step))
            if face[cell].mean() < 0.6:
                continue
            x, y = (c[cell].astype(np.float64).ravel() for c in (a, b))
            x, y = x - x.mean(), y - y.mean()
            norm = np.sqrt((x * x).sum() * (y * y).sum())
            total += 1
            matched += bool(norm > 0 and (x * y).sum() / norm >= CELL_MATCH)
    return matched / total if total else 0.0


def spot_apex(onset: np.ndarray, frames: Mapping[int, np.ndarray], face: np.ndarray, stabilize: bool,
              fps: float | None) -> int | None:
    """The frame number of peak facial motion relative to `onset`, or None when fewer than three
    frames can be scored (the caller then takes the midpoint).

    `onset`: the aligned grey onset frame (S, S); `frames`: the aligned grey frames after it up to
    the offset, by frame number, aligned with the onset's transform (a mapping that may produce them
    on lookup; one whose lookup raises MerError is skipped, as is one that does not show the onset's
    face); `face`: the face mask (S, S). Each frame, head motion removed when `stabilize`, is scored
    by the 95th percentile of the (5x5-smoothed) TV-L1 flow magnitude over the moving face (stable
    regions and background excluded): a percentile, not a mean, so that a small local action unit
    (AU7 on the eyelids) still stands out. Coarse to fine: about 16 frames spread over the clip,
    then every frame around the best one; the dense scores are smoothed over ~20 ms (at `fps`)
    before the maximum. Each frame is looked up at most once.
    """
    numbers = sorted(frames)
    if len(numbers) < 3:
        return None
    moving = face & (1 - al.stable_mask(onset.shape[0], face))
    scores: dict[int, float] = {}

    def score(number: int) -> float:
        if number not in scores:
            try:
                frame = frames[number]
                motion = check_same_face(onset, frame, face, f"frame {number}")
            except MerError:
                scores[number] = np.nan
                return np.nan
            if stabilize:
                frame = al.remove_head_motion(frame, motion)
            scores[number] = motion_score(onset, frame, moving)
        return scores[number]

    step = max(1, int(np.ceil(len(numbers) / 16)))
    coarse = numbers[::step]
    values = np.array([score(n) for n in coarse])
    if np.isfinite(values).sum() < 3:
        return None
    centre = numbers.index(coarse[int(np.nanargmax(values))])
    window = numbers[max(0, centre - 2 * step):centre + 2 * step + 1]
    dense = np.array([score(n) for n in window])
    dense = np.where(np.isfinite(dense), dense, np.nanmin(dense))
    width = max(1, int(round(fps * 0.02))) if fps else 1
    smooth = np.convolve(np.pad(dense, width, mode="edge"), np.ones(2 * width + 1) / (2 * width + 1), "same")
    return window[int(np.argmax(smooth[width:-width]))]


def motion_score(first: np.ndarray, second: np.ndarray, mask: np.ndarray) -> float:
    """95th percentile of the 5x5-smoothed TV-L1 (SPOT_TVL1) flow magnitude first -> second inside `mask`."""
    flow = compute_flow(first, second, "tvl1", SPOT_TVL1)
    magnitude = cv2.blur(np.hypot(flow[0], flow[1]), (5, 5))
    return float(np.percentile(magnitude[mask > 0], 95))
