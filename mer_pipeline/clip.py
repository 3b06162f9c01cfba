"""One clip -> one shard record: face, alignment, apex, stabilisation, flow, strain.

Reads only the frames it needs (onset and apex; every frame of onset..offset only when the apex
must be spotted). Errors are typed and carry the stage they happened in.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from . import align as al
from .errors import MerError, NoFaceFound
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
    tvl1: TVL1Params = field(default_factory=TVL1Params)
    # Apex spotting: frames of onset..offset are scored at this crop size with DIS flow.
    spot_size: int = 128

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


def read_frame(sample: Sample, number: int) -> np.ndarray:
    return read_grey(sample.frames[sample.nearest_frame(number)])


def spot_apex(sample: Sample, onset_aligned: np.ndarray, matrix: np.ndarray, size: int,
              stabilize: bool) -> tuple[int, str]:
    """Frame of peak facial motion relative to onset over onset..offset.

    Each frame is aligned with the onset transform, head motion removed on the stable regions,
    and scored by the mean DIS flow magnitude over the face (stable regions excluded). The score
    curve is smoothed over ~20 ms before taking its maximum. Falls back to the midpoint (recorded
    as such) when fewer than three frames can be read.
    """
    numbers = sorted(n for n in sample.frames if sample.onset < n <= sample.offset)
    midpoint = (sample.onset + sample.offset) // 2
    if len(numbers) < 3:
        return sample.nearest_frame(midpoint), "midpoint"
    face = 1 - al.stable_mask(size)
    scores = []
    for number in numbers:
        try:
            frame = al.warp(read_grey(sample.frames[number]), matrix, size)
        except MerError:
            scores.append(np.nan)
            continue
        if stabilize:
            frame = al.remove_head_motion(frame, al.estimate_head_motion(onset_aligned, frame))
        scores.append(_motion_score(onset_aligned, frame, face))
    scores = np.array(scores)
    if np.isfinite(scores).sum() < 3:
        return sample.nearest_frame(midpoint), "midpoint"
    scores = np.where(np.isfinite(scores), scores, np.nanmin(scores))
    width = max(1, int(round(sample.fps * 0.02))) if sample.fps else 1
    smooth = np.convolve(np.pad(scores, width, mode="edge"), np.ones(2 * width + 1) / (2 * width + 1), "same")
    smooth = smooth[width:-width]
    return numbers[int(np.argmax(smooth))], "spotted"


def _motion_score(first: np.ndarray, second: np.ndarray, mask: np.ndarray) -> float:
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(first, second, None)
    return float(np.hypot(flow[..., 0], flow[..., 1])[mask > 0].mean())


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

    if sample.apex is not None:
        apex_number, apex_source = sample.nearest_frame(sample.apex), "annotated"
    else:
        apex_number, apex_source = _stage("apex", spot_apex, sample, onset, matrix, size, config.stabilize)
    apex = al.warp(_stage("read", read_frame, sample, apex_number), matrix, size)
    if config.stabilize:
        apex = al.remove_head_motion(apex, al.estimate_head_motion(onset, apex))

    flow = _stage("flow", compute_flow, onset, apex, config.flow, config.tvl1)
    record = {
        "onset": onset,
        "apex": apex,
        "flow": flow,
        "strain": optical_strain(flow),
        "landmarks": al.transform_points(face.landmarks, matrix),
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
            frame = al.warp(_stage("read", read_frame, sample, number), matrix, size)
            if config.stabilize:
                frame = al.remove_head_motion(frame, al.estimate_head_motion(onset, frame))
            frames.append(frame)
        record["frames"] = np.stack(frames)
    if face.n_faces > 1:
        log.info("%s: %d faces on the onset frame; used the best-scoring one", sample.sample_id, face.n_faces)
    return record


__all__ = ["PrepConfig", "ClipError", "process_clip", "spot_apex", "NoFaceFound"]
