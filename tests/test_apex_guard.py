"""The apex sanity guard (`apex.check_same_face`) on a real photo with real dlib landmarks: expressive
frames (a hand in front of the face, a laugh, a head turn) pass; blank, noise, other pictures and a
frame of another size are refused with a message naming the file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from mer_pipeline import align as al
from mer_pipeline.apex import check_same_face, matching_cells
from mer_pipeline.clip import ClipError, process_clip, read_frame
from mer_pipeline.config import PrepConfig
from mer_pipeline.errors import FrameError
from mer_pipeline.face import detect_face
from mer_pipeline.frames import list_frames
from mer_pipeline.sample import Sample

SIZE = 128


def canvas(image, at=(64, -16), shape=(480, 640)):
    """`image` (grey or RGB) pasted on a mid-grey 640x480 frame with its top-left corner at `at`."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = np.full(shape, 120, np.uint8)
    x, y = at
    h, w = grey.shape
    ys, xs = slice(max(0, y), min(shape[0], y + h)), slice(max(0, x), min(shape[1], x + w))
    out[ys, xs] = grey[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
    return out


@pytest.fixture(scope="module")
def scene():
    onset = canvas(data.astronaut())
    face = detect_face(onset)
    matrix = al.alignment_transform(face.anchors, SIZE)
    region = al.face_mask(al.transform_points(face.landmarks, matrix), SIZE)
    return onset, face.landmarks.astype(np.float64), matrix, region


def displaced(image, bumps):
    """`image` warped by a sum of Gaussian displacement bumps ((x, y), (u, v), sigma)."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = np.zeros_like(xx), np.zeros_like(yy)
    for (cx, cy), (u, v), sigma in bumps:
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma))
        dx += u * weight
        dy += v * weight
    return cv2.remap(image, xx - dx, yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def laugh(image, lm):
    """Mouth corners up and out, jaw dropped, brows raised, eyes narrowed: 0.12-0.25 eye distances."""
    iod = np.linalg.norm(lm[45] - lm[36])
    s = 0.35 * iod
    return displaced(image, [
        (lm[48], (-0.12 * iod, -0.15 * iod), s), (lm[54], (0.12 * iod, -0.15 * iod), s),
        (lm[57], (0, 0.25 * iod), 1.3 * s), (lm[8], (0, 0.2 * iod), 1.5 * s),
        (lm[19], (0, -0.12 * iod), s), (lm[24], (0, -0.12 * iod), s),
        (lm[41], (0, -0.06 * iod), 0.6 * s), (lm[46], (0, -0.06 * iod), 0.6 * s)])


def head_turn(image, lm, degrees=12.0, shift=(20, 10), scale=1.04):
    centre = (float(lm[30][0]), float(lm[30][1]))
    matrix = cv2.getRotationMatrix2D(centre, degrees, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REPLICATE)


def hand(image, lm, seed=0):
    """A palm over mouth and cheek with four fingers reaching up over the nose and an eye: skin-bright,
    shaded across, with a fine texture (a person crying behind her hand)."""
    h, w = image.shape
    mask = np.zeros((h, w), np.uint8)
    x0, x1, y0, y1 = lm[:, 0].min(), lm[:, 0].max(), lm[:, 1].min(), lm[:, 1].max()
    cx, cy = x0 + 0.35 * (x1 - x0), y0 + 0.8 * (y1 - y0)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(0.45 * (x1 - x0)), int(0.3 * (y1 - y0))), -20, 0, 360, 1, -1)
    for k in range(4):
        fx = int(cx - 0.25 * (x1 - x0) + k * 0.17 * (x1 - x0))
        cv2.ellipse(mask, (fx, int(cy - 0.35 * (y1 - y0))), (int(0.07 * (x1 - x0)), int(0.3 * (y1 - y0))),
                    10, 0, 360, 1, -1)
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 3)
    shade = 170 + 30 * np.cos((np.mgrid[0:h, 0:w][1] - cx) / (0.3 * (x1 - x0)))
    out = image.astype(np.float32)
    out[mask > 0] = (shade + texture)[mask > 0]
    return np.clip(out, 0, 255).astype(np.uint8), mask


def camera_noise(image, sigma=3.0, seed=1):
    return np.clip(image + np.random.default_rng(seed).normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def whole_face_correlation(a, b, region):
    """The former guard's number: plain correlation over the face, before head motion is removed."""
    x, y = (t[region > 0].astype(np.float64) for t in (a, b))
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def expressive(name, onset, lm):
    if name == "hand":
        return camera_noise(hand(onset, lm)[0])
    if name == "laugh":
        return camera_noise(laugh(onset, lm))
    if name == "laugh-head-turn":
        return camera_noise(head_turn(laugh(onset, lm), lm))
    return camera_noise(head_turn(hand(laugh(onset, lm), lm)[0], lm, 9.0, (14, 8)))  # hand-laugh-head-turn


@pytest.mark.parametrize("name", ["hand", "laugh", "laugh-head-turn", "hand-laugh-head-turn"])
def test_expressive_frames_of_the_same_face_pass(scene, name):
    onset, lm, matrix, region = scene
    frame = al.warp(expressive(name, onset, lm), matrix, SIZE)
    aligned = al.warp(onset, matrix, SIZE)
    motion = check_same_face(aligned, frame, region, f"{name}.png")  # raises when refused
    assert motion.shape == (2, 3)
    if name == "hand":
        covered = al.warp(hand(onset, lm)[1] * 255, matrix, SIZE)[region > 0] > 127
        assert covered.mean() > 0.4, "the hand must cover a large part of the face"
    if name == "laugh-head-turn":  # the case the former guard refused
        assert whole_face_correlation(aligned, frame, region) < 0.3
    assert matching_cells(aligned, al.remove_head_motion(frame, motion), region) >= 0.3


@pytest.mark.parametrize("size", [64, 256])
def test_the_guard_does_not_depend_on_the_crop_size(scene, size):
    """The hardest pair of each side, at another --size: the same face passes, the same photo
    elsewhere in the frame is refused."""
    onset, lm, _, _ = scene
    face = detect_face(onset)
    matrix = al.alignment_transform(face.anchors, size)
    region = al.face_mask(al.transform_points(face.landmarks, matrix), size)
    aligned = al.warp(onset, matrix, size)
    check_same_face(aligned, al.warp(expressive("hand-laugh-head-turn", onset, lm), matrix, size), region, "x.png")
    with pytest.raises(FrameError, match="does not show the onset frame's face"):
        check_same_face(aligned, al.warp(foreign("same-photo-elsewhere", onset), matrix, size), region, "y.png")


def foreign(name, onset):
    rng = np.random.default_rng(7)
    pictures = {
        "flat": lambda: np.full_like(onset, 128),
        "noise": lambda: rng.integers(0, 256, onset.shape, dtype=np.uint8),
        "camera": lambda: canvas(data.camera()),
        "coffee": lambda: canvas(data.coffee(), at=(20, 40)),
        "chelsea": lambda: canvas(data.chelsea(), at=(100, 60)),
        "rocket": lambda: canvas(data.rocket(), at=(0, 20)),
        "brick": lambda: canvas(data.brick()),
        "moon": lambda: canvas(data.moon()),
        "same-photo-elsewhere": lambda: canvas(data.astronaut(), at=(200, 100)),
        "same-photo-smaller": lambda: canvas(cv2.resize(data.astronaut(), (256, 256)), at=(300, 150)),
    }
    return pictures[name]()


@pytest.mark.parametrize("name", ["flat", "noise", "camera", "coffee", "chelsea", "rocket", "brick", "moon",
                                  "same-photo-elsewhere", "same-photo-smaller"])
def test_blank_noise_and_other_pictures_are_refused(scene, name):
    onset, _, matrix, region = scene
    frame = al.warp(foreign(name, onset), matrix, SIZE)
    with pytest.raises(FrameError, match="does not show the onset frame's face") as caught:
        check_same_face(al.warp(onset, matrix, SIZE), frame, region, f"/raw/{name}.png")
    assert str(caught.value).startswith(f"/raw/{name}.png: ")
    assert ("blank" in str(caught.value)) and "restore it" in str(caught.value)


def write_clip(folder, frames):
    folder.mkdir(parents=True)
    for number, image in frames.items():
        cv2.imwrite(str(folder / f"img{number}.png"), image)
    return Sample("own", "p1", folder.name, list_frames(folder), onset=1, apex=2, offset=2, emotion="happy")


def test_a_clip_with_a_hand_laugh_and_head_turn_lands(scene, tmp_path):
    onset, lm, _, _ = scene
    sample = write_clip(tmp_path / "laugh", {1: onset, 2: expressive("hand-laugh-head-turn", onset, lm)})
    record = process_clip(sample, PrepConfig(size=64))
    assert record["meta"]["apex_source"] == "annotated"
    assert np.isfinite(record["flow"]).all() and np.abs(record["flow"]).max() > 1.0


@pytest.mark.parametrize("name", ["rocket", "noise"])
def test_a_clip_whose_apex_is_another_picture_fails_at_read(scene, tmp_path, name):
    onset, _, _, _ = scene
    sample = write_clip(tmp_path / name, {1: onset, 2: foreign(name, onset)})
    with pytest.raises(ClipError) as caught:
        process_clip(sample, PrepConfig(size=64))
    assert caught.value.stage == "read" and str(sample.frames[2]) in str(caught.value)
    assert "does not show the onset frame's face" in str(caught.value)


def test_a_frame_of_another_size_is_refused_naming_the_file(scene, tmp_path):
    onset, _, _, _ = scene
    sample = write_clip(tmp_path / "small", {1: onset, 2: cv2.resize(onset, (320, 240))})
    with pytest.raises(FrameError, match="frame is 320x240 pixels but the clip's onset frame is 640x480"):
        read_frame(sample, 2, onset.shape)


class Unreadable(dict):
    """Frames by number, one of which cannot be read: its lookup raises FrameError, as a file's would."""

    def __getitem__(self, number):
        if number == 9:
            raise FrameError("frame 9: cannot decode the image")
        return super().__getitem__(number)


def test_spot_apex_is_pure_arrays_in_frame_number_out():
    """apex.spot_apex takes aligned frames (no files): the frame of peak motion wins; an unreadable
    or blank frame is skipped; fewer than three frames give None (the caller takes the midpoint)."""
    from mer_pipeline.apex import spot_apex

    size = 96
    rng = np.random.default_rng(0)
    onset = cv2.GaussianBlur(rng.integers(0, 256, (size, size)).astype(np.float32), (0, 0), 2.0)
    onset = cv2.normalize(onset, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    face = np.zeros((size, size), np.uint8)
    face[8:-8, 8:-8] = 1

    def shifted(dx: float) -> np.ndarray:
        matrix = np.float32([[1, 0, dx], [0, 1, 0]])
        return cv2.warpAffine(onset, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    amplitude = {n: 1.2 * np.exp(-((n - 7) ** 2) / 6.0) for n in range(1, 16)}
    frames = {n: shifted(a) for n, a in amplitude.items()}
    assert spot_apex(onset, frames, face, stabilize=False, fps=100.0) == 7
    frames[7] = np.full_like(onset, 128)  # blank: refused by the guard, so skipped
    assert spot_apex(onset, frames, face, stabilize=False, fps=100.0) in (6, 8)
    assert spot_apex(onset, Unreadable(frames), face, stabilize=False, fps=100.0) in (6, 8)
    assert spot_apex(onset, {1: frames[1], 2: frames[2]}, face, stabilize=False, fps=100.0) is None
