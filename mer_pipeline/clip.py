"""One clip -> one shard record: face, alignment, apex, stabilisation, flow, strain.

Reads only the frames it needs (onset and apex; frames of onset..offset only when the apex must be
spotted, `apex.spot_apex`, which looks them up one by one). Errors are typed and carry the stage
they happened in.
"""
from __future__ import annotations

import logging
from typing import Iterator, Mapping

import cv2
import numpy as np

from . import align as al
from .apex import check_same_face, spot_apex
from .config import PrepConfig
from .errors import FrameError, MerError
from .face import detect_face
from .flow import compute_flow, optical_strain
from .frames import read_grey
from .sample import Sample

log = logging.getLogger(__name__)

# What a broken clip really raises: the typed errors, file I/O, and OpenCV on frames it cannot use.
# Anything else is a bug in mer-toolkit: still recorded per clip (one clip must not stop a
# dataset), but as unexpected, and a run in which no clip succeeds then fails (runner.prepare).
EXPECTED_ERRORS = (MerError, OSError, cv2.error)


class ClipError(MerError):
    """A clip failed at a given stage; `cause` is the original error, one of EXPECTED_ERRORS."""

    def __init__(self, stage: str, cause: Exception):
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


def _stage(stage: str, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ClipError:
        raise
    except EXPECTED_ERRORS as error:
        raise ClipError(stage, error) from error


def read_frame(sample: Sample, number: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Frame `number` (or the nearest one) as grey; with `shape`, it must have the onset frame's size."""
    path = sample.frames[sample.nearest_frame(number)]
    frame = read_grey(path)
    if shape is not None and frame.shape != shape:
        raise FrameError(f"{path}: frame is {frame.shape[1]}x{frame.shape[0]} pixels but the clip's onset frame is "
                         f"{shape[1]}x{shape[0]}; every frame of a clip must have one size: restore it from the download")
    return frame


class AlignedFrames(Mapping):
    """The frames onset < n <= offset of `sample` by number, each read and aligned with the onset's
    transform when looked up (what `apex.spot_apex` is fed); a frame that cannot be read or differs
    in size from the onset frame (`shape`) raises FrameError."""

    def __init__(self, sample: Sample, matrix: np.ndarray, size: int, shape: tuple[int, ...]):
        self._sample, self._matrix, self._size, self._shape = sample, matrix, size, shape
        self._numbers = sorted(n for n in sample.frames if sample.onset < n <= sample.offset)

    def __getitem__(self, number: int) -> np.ndarray:
        if number not in self._numbers:
            raise KeyError(number)
        return al.warp(read_frame(self._sample, number, self._shape), self._matrix, self._size)

    def __contains__(self, number) -> bool:  # without reading the frame
        return number in self._numbers

    def __iter__(self) -> Iterator[int]:
        return iter(self._numbers)

    def __len__(self) -> int:
        return len(self._numbers)


def keep_frame_numbers(sample: Sample, count: int) -> list[int]:
    """`count` frame numbers evenly spaced over onset..offset (repeats when the clip is shorter)."""
    return [sample.nearest_frame(int(round(n))) for n in np.linspace(sample.onset, sample.offset, count)]


def process_clip(sample: Sample, config: PrepConfig) -> dict:
    """The shard record of one clip (arrays + meta). Raises ClipError(stage, cause) for what a
    broken clip raises (EXPECTED_ERRORS); any other exception, a bug, propagates unchanged."""
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
        after_onset = AlignedFrames(sample, matrix, size, onset_raw.shape)
        spotted = _stage("apex", spot_apex, onset, after_onset, region, config.stabilize, sample.fps)
        apex_number, apex_source = ((spotted, "spotted") if spotted is not None else
                                    (sample.nearest_frame((sample.onset + sample.offset) // 2), "midpoint"))
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


__all__ = ["ClipError", "EXPECTED_ERRORS", "process_clip", "read_frame"]
