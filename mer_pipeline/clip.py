"""One clip -> one shard record: face, alignment, apex, stabilisation, flow, strain.

Reads only the frames it needs (onset and apex; every frame of onset..offset only when the apex
must be spotted). Errors are typed and carry the stage they happened in.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from . import align as al
from .errors import FrameError, MerError, NoFaceFound
from .face import detect_face
from .flow import TVL1Params, compute_flow, optical_strain
from .frames import read_grey
from .sample import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepConfig:
    """Everything that decides the content of a shard (hashed into the manifest's config_hash)."""

    backend: str = "dlib"
    size: int = 128
    flow: str = "tvl1"
    stabilize: bool = True
    keep_frames: int = 0
    # 3 pyramid levels (step 0.5), 3 warps, 10 inner iterations: the same end-point error as
    # OpenCV's defaults on planted sub-pixel motion at ~1.7x the speed (docs/performance.md).
    tvl1: TVL1Params = field(default_factory=lambda: TVL1Params(nscales=3, warps=3, scale_step=0.5,
                                                                inner_iterations=10))

    def as_dict(self) -> dict:
        return asdict(self)


class ClipError(MerError):
    """A clip failed at a given stage; `cause` is the original typed error."""

    def __init__(self, stage: str, cause: Exception):
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


def _stage(stage: str, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ClipError:
        raise
    except Exception as error:  # noqa: BLE001 - wrapped with its stage, reported per clip
        raise ClipError(stage, error) from error


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


def read_frame(sample: Sample, number: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Frame `number` (or the nearest one) as grey; with `shape`, it must have the onset frame's size."""
    path = sample.frames[sample.nearest_frame(number)]
    frame = read_grey(path)
    if shape is not None and frame.shape != shape:
        raise FrameError(f"{path}: frame is {frame.shape[1]}x{frame.shape[0]} pixels but the clip's onset frame is "
                         f"{shape[1]}x{shape[0]}; every frame of a clip must have one size: restore it from the download")
    return frame


def check_same_face(onset: np.ndarray, frame: np.ndarray, face: np.ndarray, path) -> np.ndarray:
    """Raise FrameError when the aligned `frame` does not show the aligned `onset`'s face; else
    return the head motion onset -> frame (`align.estimate_head_motion`), which callers reuse.

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


def spot_apex(sample: Sample, onset_aligned: np.ndarray, matrix: np.ndarray, face: np.ndarray,
              stabilize: bool, shape: tuple[int, ...] | None = None) -> tuple[int, str]:
    """Frame of peak facial motion relative to onset over onset..offset.

    Each frame is aligned with the onset transform, head motion removed, and scored by the 95th
    percentile of the (5x5-smoothed) TV-L1 flow magnitude over the moving face (stable regions and
    background excluded): a percentile, not a mean, so that a small local action unit (AU7 on the
    eyelids) still stands out. Coarse to fine: about 16 frames spread over the clip, then every
    frame around the best one; the dense scores are smoothed over ~20 ms before the maximum.
    Frames that cannot be read, differ in size from the onset frame (`shape`) or do not show the
    onset's face are skipped. Falls back to the midpoint (recorded as such) when fewer than three
    frames can be read.
    """
    numbers = sorted(n for n in sample.frames if sample.onset < n <= sample.offset)
    midpoint = (sample.onset + sample.offset) // 2
    if len(numbers) < 3:
        return sample.nearest_frame(midpoint), "midpoint"
    size = onset_aligned.shape[0]
    moving = face & (1 - al.stable_mask(size, face))
    scores: dict[int, float] = {}

    def score(number: int) -> float:
        if number not in scores:
            try:
                frame = al.warp(read_frame(sample, number, shape), matrix, size)
                motion = check_same_face(onset_aligned, frame, face, sample.frames[number])
            except MerError:
                scores[number] = np.nan
                return np.nan
            if stabilize:
                frame = al.remove_head_motion(frame, motion)
            scores[number] = _motion_score(onset_aligned, frame, moving)
        return scores[number]

    step = max(1, int(np.ceil(len(numbers) / 16)))
    coarse = numbers[::step]
    values = np.array([score(n) for n in coarse])
    if np.isfinite(values).sum() < 3:
        return sample.nearest_frame(midpoint), "midpoint"
    centre = numbers.index(coarse[int(np.nanargmax(values))])
    window = numbers[max(0, centre - 2 * step):centre + 2 * step + 1]
    dense = np.array([score(n) for n in window])
    dense = np.where(np.isfinite(dense), dense, np.nanmin(dense))
    width = max(1, int(round(sample.fps * 0.02))) if sample.fps else 1
    smooth = np.convolve(np.pad(dense, width, mode="edge"), np.ones(2 * width + 1) / (2 * width + 1), "same")
    return window[int(np.argmax(smooth[width:-width]))], "spotted"


# Spotting runs TV-L1 on many frames: one level is enough once head motion is removed (what is
# left is sub-pixel), at a fraction of the full cost.
SPOT_TVL1 = TVL1Params(nscales=1, warps=2, inner_iterations=10, outer_iterations=5, median_filtering=1)


def _motion_score(first: np.ndarray, second: np.ndarray, mask: np.ndarray) -> float:
    import cv2

    flow = compute_flow(first, second, "tvl1", SPOT_TVL1)
    magnitude = cv2.blur(np.hypot(flow[0], flow[1]), (5, 5))
    return float(np.percentile(magnitude[mask > 0], 95))


def keep_frame_numbers(sample: Sample, count: int) -> list[int]:
    """`count` frame numbers evenly spaced over onset..offset (repeats when the clip is shorter)."""
    return [sample.nearest_frame(int(round(n))) for n in np.linspace(sample.onset, sample.offset, count)]


def process_clip(sample: Sample, config: PrepConfig) -> dict:
    """The shard record of one clip (arrays + meta). Raises ClipError(stage, cause)."""
    size = config.size
    onset_number = _stage("read", sample.nearest_frame, sample.onset)
    onset_raw = _stage("read", read_frame, sample, onset_number)
    face = _stage("face", detect_face, onset_raw, config.backend)
    matrix = al.alignment_transform(face.anchors, size)
    onset = al.warp(onset_raw, matrix, size)
    landmarks = al.transform_points(face.landmarks, matrix)
    region = al.face_mask(landmarks, size)

    if sample.apex is not None:
        apex_number, apex_source = sample.nearest_frame(sample.apex), "annotated"
    else:
        apex_number, apex_source = _stage("apex", spot_apex, sample, onset, matrix, region, config.stabilize,
                                          onset_raw.shape)
    apex = al.warp(_stage("read", read_frame, sample, apex_number, onset_raw.shape), matrix, size)
    motion = _stage("read", check_same_face, onset, apex, region, sample.frames[apex_number])
    if config.stabilize:
        apex = al.remove_head_motion(apex, motion)

    flow = _stage("flow", compute_flow, onset, apex, config.flow, config.tvl1)
    record = {
        "onset": onset,
        "apex": apex,
        "flow": flow,
        "strain": optical_strain(flow),
        "landmarks": landmarks,
        "meta": {
            "sample_id": sample.sample_id, "dataset": sample.dataset, "subject": sample.subject,
            "clip": sample.clip, "emotion": sample.emotion, "action_units": sample.action_units,
            "kind": sample.kind, "apex_source": apex_source, "onset_frame": onset_number,
            "apex_frame": apex_number, "offset_frame": sample.offset, "fps": sample.fps,
        },
    }
    if config.keep_frames:
        frames = []
        for number in keep_frame_numbers(sample, config.keep_frames):
            frame = al.warp(_stage("read", read_frame, sample, number, onset_raw.shape), matrix, size)
            if config.stabilize:
                frame = al.remove_head_motion(frame, al.estimate_head_motion(onset, frame, region))
            frames.append(frame)
        record["frames"] = np.stack(frames)
    if face.n_faces > 1:
        log.info("%s: %d faces on the onset frame; used the best-scoring one", sample.sample_id, face.n_faces)
    return record


__all__ = ["PrepConfig", "ClipError", "process_clip", "spot_apex", "NoFaceFound"]
