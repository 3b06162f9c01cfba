"""Damaged, odd or missing frames: the clip concerned fails with a message naming the file (or is
recovered as documented), and every other clip lands exactly as in a clean run."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from mer_pipeline import align
from mer_pipeline.face import detect_face, get_backend
from mer_pipeline.frames import read_grey
from mer_pipeline.shards import open_shards
from reliability_helpers import (CONFIG, apex_path, assert_only_these_failed, clip_folder, onset_path, prep,
                                 replace_bytes, replace_image, samples, shard_records)

pytestmark = pytest.mark.slow
VICTIM = "casme2/sub18/EP01_2"


def truncate(path):
    data = path.read_bytes()
    replace_bytes(path, data[: len(data) // 2])


def empty(path):
    replace_bytes(path, b"")


def noise(path):
    shape = read_grey(path).shape
    replace_image(path, np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))


def flat(path):
    replace_image(path, np.full(read_grey(path).shape, 128, np.uint8))


def half_size(path):
    replace_image(path, cv2.resize(read_grey(path), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))


def float_tiff(path):
    replace_image(path, read_grey(path).astype(np.float32) / 255, suffix=".tif")


# (damage, frame, failing stage, words the message must contain besides the file's path)
CASES = {
    "truncated-onset": (truncate, "onset", "read", "corrupt or truncated"),
    "zero-byte-onset": (empty, "onset", "read", "empty (0 bytes)"),
    "truncated-apex": (truncate, "apex", "read", "corrupt or truncated"),
    "zero-byte-apex": (empty, "apex", "read", "empty (0 bytes)"),
    "noise-onset": (noise, "onset", "face", "found no face"),
    "flat-onset": (flat, "onset", "face", "found no face"),
    "noise-apex": (noise, "apex", "read", "does not show the onset frame's face"),
    "flat-apex": (flat, "apex", "read", "does not show the onset frame's face"),
    "apex-of-another-size": (half_size, "apex", "read", "320x240"),
    "apex-float-tiff": (float_tiff, "apex", "read", "unsupported pixel type float32"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_frame_fails_only_its_clip_and_names_the_file(case, raw, clean_out, tmp_path):
    damage, role, stage, words = CASES[case]
    victim = samples(raw)[VICTIM]
    path = onset_path(victim) if role == "onset" else apex_path(victim)
    damage(path)
    out = tmp_path / "out"
    prep(raw, out)
    failure = assert_only_these_failed(out, clean_out, {VICTIM: stage})[VICTIM]
    reported = path.with_suffix(".tif") if damage is float_tiff else path
    assert str(reported) in failure["message"] and words in failure["message"], failure


def test_missing_onset_and_apex_frames_fall_back_to_the_nearest_frames(raw, clean_out, tmp_path):
    """Documented recovery (Sample.nearest_frame): gaps in a clip are tolerated; meta records the
    frames actually used."""
    victim = samples(raw)[VICTIM]
    onset_path(victim).unlink()
    apex_path(victim).unlink()
    out = tmp_path / "out"
    prep(raw, out)
    shards = open_shards(out)
    row = {r["sample_id"]: r for r in shards.rows()}[VICTIM]
    left = sorted(n for n in victim.frames if n not in (victim.onset, victim.apex))
    nearest = lambda n: min(left, key=lambda k: (abs(k - n), k))  # noqa: E731
    assert (row["onset_frame"], row["apex_frame"]) == (nearest(victim.onset), nearest(victim.apex))
    assert row["apex_source"] == "annotated"
    others = {k: v for k, v in shard_records(out).items() if k != VICTIM}
    assert others == {k: v for k, v in shard_records(clean_out).items() if k != VICTIM}


def rgba(image):
    out = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    out[..., 3] = 77  # the alpha channel carries nothing: it must be ignored
    return out


def deep(image):
    return image.astype(np.uint16) * 257


@pytest.mark.parametrize("convert,suffix", [(rgba, ".png"), (deep, ".png")], ids=["rgba-png", "16-bit-png"])
def test_lossless_frames_of_another_mode_give_the_same_shard(convert, suffix, raw, clean_out, tmp_path):
    """RGBA and 16-bit frames are read as the 8-bit grey of the same picture: identical shards."""
    for path in sorted(clip_folder(raw, VICTIM).glob("*.jpg")):
        colour = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
        replace_image(path, convert(colour), suffix=suffix)
    out = tmp_path / "out"
    prep(raw, out)
    assert shard_records(out) == shard_records(clean_out)


@pytest.mark.parametrize("variant", ["grey-jpeg", "half-size"])
def test_a_clip_stored_grey_or_smaller_still_lands(variant, raw, clean_out, tmp_path):
    for path in sorted(clip_folder(raw, VICTIM).glob("*.jpg")):
        grey = read_grey(path)
        if variant == "half-size":
            grey = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        replace_image(path, grey)  # one channel: a grey JPEG
    out = tmp_path / "out"
    prep(raw, out)
    assert len(cv2.imread(str(onset_path(samples(raw)[VICTIM])), cv2.IMREAD_UNCHANGED).shape) == 2
    shards, clean = open_shards(out), open_shards(clean_out)
    assert list(shards.meta["sample_id"]) == list(clean.meta["sample_id"])
    index = list(shards.meta["sample_id"]).index(VICTIM)
    assert np.isfinite(shards.arrays["flow"][index]).all() and np.isfinite(shards.arrays["strain"][index]).all()
    # the same face, aligned the same way (the re-encoded or smaller picture differs in details only)
    onset, reference = (s.arrays["onset"][index].astype(float).ravel() for s in (shards, clean))
    assert np.corrcoef(onset, reference)[0, 1] > 0.95


def two_faces(grey):
    """Two copies of the face in one frame: a larger blurred one (left), a smaller sharp one (right)."""
    canvas = np.full_like(grey, int(np.median(grey[:20, :20])))
    face = grey[60:440, 140:460]
    large = cv2.GaussianBlur(cv2.resize(face, None, fx=0.85, fy=0.85, interpolation=cv2.INTER_AREA), (0, 0), 3)
    small = cv2.resize(face, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    canvas[:large.shape[0], :large.shape[1]] = large
    canvas[60:60 + small.shape[0], -small.shape[1]:] = small
    return canvas


def test_several_faces_the_best_scoring_one_is_used_and_logged(raw, clean_out, tmp_path, caplog):
    """The documented rule (face.py): the best-scoring detection, not the largest or the first."""
    for path in sorted(clip_folder(raw, VICTIM).glob("*.jpg")):
        replace_image(path, two_faces(read_grey(path)))
    onset = read_grey(onset_path(samples(raw)[VICTIM]))
    half = cv2.resize(onset, (onset.shape[1] // 2, onset.shape[0] // 2), interpolation=cv2.INTER_AREA)
    for image in (onset, half):  # dlib's own scores, at full and half resolution
        boxes, scores, _ = get_backend("dlib")._detector.run(image, 0, 0.0)
        assert len(boxes) == 2, "the test frame must hold two detectable faces"
        best, other = (boxes[i] for i in np.argsort(scores)[::-1])
        assert best.area() < other.area() and best.left() > other.left(), "the smaller, right face must score best"

    face = detect_face(onset)
    assert face.n_faces == 2
    assert (face.landmarks[:, 0] > onset.shape[1] / 2).all(), "landmarks of the best-scoring (right) face"

    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="mer_pipeline"):
        prep(raw, out)
    assert f"{VICTIM}: 2 faces on the onset frame; used the best-scoring one" in caplog.text
    shards = open_shards(out)
    index = list(shards.meta["sample_id"]).index(VICTIM)
    expected = align.warp(onset, align.alignment_transform(face.anchors, CONFIG.size), CONFIG.size)
    assert np.array_equal(shards.arrays["onset"][index], expected)
    others = {k: v for k, v in shard_records(out).items() if k != VICTIM}
    assert others == {k: v for k, v in shard_records(clean_out).items() if k != VICTIM}


def test_a_face_partly_out_of_frame_is_aligned_with_the_border_replicated(raw, clean_out, tmp_path):
    """A quarter of the face cut off by the left edge of every frame: the face is still found, the
    crop's part outside the frame is filled by replicating the frame's edge, the flow stays finite."""
    for path in sorted(clip_folder(raw, VICTIM).glob("*.jpg")):
        replace_image(path, np.ascontiguousarray(read_grey(path)[:, 230:]))
    victim = samples(raw)[VICTIM]
    face = detect_face(read_grey(onset_path(victim)))
    assert face.landmarks[:, 0].min() < 0, "part of the face must lie outside the frame"
    out = tmp_path / "out"
    prep(raw, out)
    shards = open_shards(out)
    assert len(shards) == 4
    index = list(shards.meta["sample_id"]).index(VICTIM)
    for name in ("flow", "strain"):
        assert np.isfinite(shards.arrays[name][index]).all()
    # the planted motion inside the visible part is still found
    clean = open_shards(clean_out)
    reference = clean.arrays["flow"][list(clean.meta["sample_id"]).index(VICTIM)]
    assert np.abs(shards.arrays["flow"][index]).max() > 0.3 * np.abs(reference).max()
