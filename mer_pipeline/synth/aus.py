"""Action units as displacement fields: the AU catalogue, emotion prototypes, and `truth_field`.

Every planted movement is a sum of isotropic Gaussian "bumps": bump k moves image content near its
centre c_k by the vector w_k * exp(-|x - c_k|^2 / (2 sigma_k^2)), cut to zero beyond 4 sigma_k.
An AU is a few bumps anchored on the subject's 68 dlib landmarks (iBUG 300-W numbering, 0-based),
with offsets, widths and directions in face units: the x axis runs from the image-left eye centre
to the image-right eye centre, y points down (towards the chin), one unit is the inter-ocular
distance (IOD). Specs are written for the image-left half of the face, which is the subject's
RIGHT side (FACS prefix `R`); the other half is the mirror image.

The truth of a clip is its list of bumps in raw pixel coordinates of the onset frame, so the
field can be rebuilt exactly from the truth file: `truth_field(entry)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRUNCATE = 4.0  # bumps are exactly zero beyond TRUNCATE * sigma

# 68-point mirror map: landmark i on one half <-> MIRROR[i] on the other half.
MIRROR = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]  # jaw
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)


@dataclass(frozen=True)
class Bump:
    """One local displacement, in face units, for the image-left (subject's right) half of the face.

    `anchor` landmarks are averaged; `offset` moves the centre from there; `direction` is the
    direction of motion (normalised when used); `sigma` is the width; `weight` the relative strength.
    `midline` bumps exist once (not mirrored).
    """

    anchor: tuple[int, ...]
    direction: tuple[float, float]
    sigma: float
    weight: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    midline: bool = False


@dataclass(frozen=True)
class ActionUnit:
    """A FACS action unit as the generator plants it: the local displacements (`bumps`) it is made of."""

    number: int
    name: str
    bumps: tuple[Bump, ...]
    bilateral: bool = True  # False: only midline bumps


# The action units the generator can plant, by FACS number
AU_CATALOGUE: dict[int, ActionUnit] = {
    au.number: au
    for au in (
        ActionUnit(1, "inner brow raiser", (
            Bump((21,), (0.1, -1.0), 0.20),
            Bump((21,), (0.0, -1.0), 0.28, 0.5, offset=(0.0, -0.35)),
        )),
        ActionUnit(2, "outer brow raiser", (
            Bump((18,), (-0.15, -1.0), 0.20, offset=(-0.05, -0.03)),
            Bump((18,), (0.0, -1.0), 0.26, 0.45, offset=(0.0, -0.35)),
        )),
        ActionUnit(4, "brow lowerer", (
            Bump((20, 21), (0.45, 1.0), 0.20),
            Bump((21,), (0.6, 0.3), 0.14, 0.5, offset=(0.12, -0.05)),
        )),
        ActionUnit(5, "upper lid raiser", (
            Bump((37, 38), (0.0, -1.0), 0.10, offset=(0.0, -0.02)),
        )),
        ActionUnit(6, "cheek raiser", (
            Bump((40, 41), (-0.15, -1.0), 0.25, offset=(-0.05, 0.32)),
            Bump((40, 41), (0.0, -1.0), 0.10, 0.45, offset=(0.0, 0.03)),
            Bump((36,), (0.2, -0.4), 0.14, 0.35, offset=(-0.15, 0.05)),
        )),
        ActionUnit(7, "lid tightener", (
            Bump((40, 41), (0.1, -1.0), 0.10, offset=(0.0, 0.02)),
            Bump((37, 38), (0.0, 1.0), 0.08, 0.4),
        )),
        ActionUnit(9, "nose wrinkler", (
            Bump((31,), (0.1, -1.0), 0.15, offset=(0.0, -0.12)),
            Bump((29, 39), (0.2, -1.0), 0.13, 0.7),
            Bump((21,), (0.25, 1.0), 0.14, 0.35, offset=(0.05, 0.05)),
        )),
        ActionUnit(10, "upper lip raiser", (
            Bump((50,), (0.0, -1.0), 0.15, offset=(0.0, -0.02)),
            Bump((31, 48), (-0.1, -1.0), 0.18, 0.6, offset=(-0.08, 0.0)),
        )),
        ActionUnit(12, "lip corner puller", (
            Bump((48,), (-0.75, -0.66), 0.20),
            Bump((48,), (-0.5, -0.85), 0.25, 0.5, offset=(-0.15, -0.25)),
        )),
        ActionUnit(14, "dimpler", (
            Bump((48,), (0.55, -0.85), 0.12),
            Bump((48,), (1.0, 0.0), 0.12, 0.6, offset=(-0.16, 0.0)),
        )),
        ActionUnit(15, "lip corner depressor", (
            Bump((48,), (-0.2, 1.0), 0.18, offset=(0.0, 0.05)),
            Bump((48,), (0.0, 1.0), 0.20, 0.4, offset=(0.0, 0.3)),
        )),
        ActionUnit(17, "chin raiser", (
            Bump((57, 8), (0.0, -1.0), 0.25, midline=True),
            Bump((57,), (0.0, -1.0), 0.15, 0.6, midline=True),
        ), bilateral=False),
        ActionUnit(20, "lip stretcher", (
            Bump((48,), (-1.0, 0.2), 0.20),
            Bump((48,), (-1.0, 0.3), 0.22, 0.5, offset=(-0.1, 0.3)),
        )),
        ActionUnit(23, "lip tightener", (
            Bump((48,), (1.0, 0.0), 0.12),
            Bump((51,), (0.0, 1.0), 0.12, 0.4, midline=True),
            Bump((57,), (0.0, -1.0), 0.12, 0.4, midline=True),
        )),
        ActionUnit(24, "lip pressor", (
            Bump((51,), (0.0, 1.0), 0.15, midline=True),
            Bump((57,), (0.0, -1.0), 0.15, midline=True),
        ), bilateral=False),
        ActionUnit(25, "lips part", (
            Bump((51, 62), (0.0, -1.0), 0.10, 0.5, midline=True),
            Bump((57, 66), (0.0, 1.0), 0.12, midline=True),
        ), bilateral=False),
        ActionUnit(26, "jaw drop", (
            Bump((57, 8), (0.0, 1.0), 0.35, midline=True),
            Bump((8,), (0.0, 1.0), 0.30, 0.8, midline=True),
            Bump((57,), (0.0, 1.0), 0.15, 0.5, midline=True),
        ), bilateral=False),
    )
}

# Emotion prototypes: which AUs a clip of that emotion moves. A list of options is drawn from.
# "others" is a single non-emotional upper-face AU, so that it moves only the brows or the eyes.
EMOTION_AUS: dict[str, tuple[tuple[str, ...], ...]] = {
    "happiness": (("6", "12"),),
    "surprise": (("1", "2", "5", "26"),),
    "disgust": (("9", "10"),),
    "repression": (("14",), ("15",), ("17",), ("15", "17"), ("14", "17")),
    "sadness": (("1", "4", "15"),),
    "anger": (("4", "5", "7", "23"),),
    "contempt": (("R14",), ("L14",)),
    "fear": (("1", "2", "4", "5", "20"),),
    "others": (("4",), ("7",), ("R2",), ("L2",), ("1",)),
}

# The micro/macro gap (`presets.Gap`, the hard preset): macro-expressions are POSED, micro-expressions
# SPONTANEOUS, and the two draw their AUs from different tables, as CK+ and CASME II differ.
#
# Posed macro-expressions (CK+): the full prototypical AU set of the emotion, every AU at high
# intensity on both sides (EMFACS prototypes as CK+ codes them, Lucey et al. 2010, Table 2: anger
# 4+5+7+23/24, disgust 9 or 10 (with 17), fear 1+2+4+5+20+25, happy 6+12(+25), sadness 1+4+15(+17),
# surprise 1+2+5+26(27), contempt unilateral 14).
MACRO_AUS: dict[str, tuple[tuple[str, ...], ...]] = {
    "happiness": (("6", "12", "25"),),
    "surprise": (("1", "2", "5", "26"),),
    "disgust": (("9", "10", "17", "25"),),
    "sadness": (("1", "4", "15", "17"),),
    "anger": (("4", "5", "7", "23", "24"),),
    "contempt": (("R14",), ("L14",)),
    "fear": (("1", "2", "4", "5", "20", "25"),),
}  # an emotion no posed set has (repression, others) keeps EMOTION_AUS

# Spontaneous micro-expressions (CASME II, Yan et al. 2014): a partial, often unilateral subset of
# the emotion's AUs, with AU 4 (brow lowerer) in many negative ones. Per emotion: (AU, probability
# that a clip shows it), drawn independently; a clip that draws none shows its likeliest AU.
# Emotions not listed (repression, contempt, others) keep `EMOTION_AUS`: they are partial already.
MICRO_SPONTANEOUS: dict[str, tuple[tuple[str, float], ...]] = {
    "happiness": (("12", 0.8), ("6", 0.45), ("7", 0.2)),
    "surprise": (("1", 0.6), ("2", 0.6), ("5", 0.2), ("26", 0.05)),
    "disgust": (("4", 0.7), ("7", 0.35), ("9", 0.35), ("10", 0.3)),
    "sadness": (("4", 0.6), ("15", 0.45), ("1", 0.35), ("17", 0.35), ("14", 0.15)),
    "anger": (("4", 0.8), ("7", 0.4), ("23", 0.3), ("17", 0.2), ("5", 0.15)),
    "fear": (("4", 0.6), ("1", 0.5), ("2", 0.4), ("5", 0.3), ("20", 0.3), ("7", 0.2)),
}


def parse_au(token: str) -> tuple[int, str]:
    """'R14' -> (14, 'R'), '12' -> (12, '') ; side '' means both sides."""
    side = token[0] if token[0] in "LR" else ""
    return int(token[len(side):]), side


def au_label(tokens: list[str] | tuple[str, ...]) -> str:
    """FACS string as the sheets write it: tokens sorted by AU number, '+'-joined ('6+12', 'R14')."""
    return "+".join(sorted(tokens, key=lambda t: (parse_au(t)[0], t)))


def objective_class(tokens) -> int:
    """Objective class (Davison et al. 2017) 1..7 from the AU set; 7 when no rule matches."""
    aus = {parse_au(t)[0] for t in tokens}
    if aus & {6, 12} and aus <= {6, 7, 12}:
        return 1
    if aus and aus <= {1, 2, 5, 25, 26, 24} and aus & {1, 2, 5, 25, 26}:
        return 2
    if aus and aus <= {4, 5, 7, 23, 17, 24, 6, 38} and aus & {4, 23}:
        return 3
    if aus & {9, 10} and aus <= {4, 5, 7, 9, 10, 17, 40}:
        return 4
    if aus and aus <= {1, 4, 6, 15, 17} and aus & {1, 15}:
        return 5
    if aus == {1, 2, 4} or aus == {20} or aus == {1, 2, 4, 5, 20}:
        return 6
    return 7


def spontaneous_aus(rng: np.random.Generator, prototype: str, dropped=frozenset(), unilateral: float = 0.0,
                    off_prototype: float = 0.0) -> tuple[str, ...]:
    """The AUs of one spontaneous micro-expression of `prototype` (`MICRO_SPONTANEOUS`).

    Each AU of the emotion's pool is shown with its probability, except the AUs this subject never
    shows (`dropped`, AU numbers; the subject's per-AU dropout): a clip that ends up with none shows
    the likeliest AU of the pool the subject can show (the likeliest of all if it can show none).
    With probability `off_prototype` the clip shows instead one of the `others` options (a single
    brow or lid AU): its label came from the person's report, not from the face (CASME II's
    emotion labels and AUs often disagree, the reason for objective classes, Davison et al. 2018).
    Each bilateral AU then shows on one side only with probability `unilateral` (R or L at random).
    Emotions without a pool draw one option of `EMOTION_AUS` (dropout does not apply: they are a
    single AU or two already). Sorted FACS tokens."""
    pool = MICRO_SPONTANEOUS.get(prototype)
    if pool is None:
        options = EMOTION_AUS[prototype]
        chosen = list(options[int(rng.integers(len(options)))])
    else:
        stray, pick = rng.random(), rng.integers(len(EMOTION_AUS["others"]))
        draws = rng.random(len(pool))  # one draw per AU, whatever the subject drops
        allowed = [(au, p) for au, p in pool if parse_au(au)[0] not in dropped]
        chosen = [au for (au, p), r in zip(pool, draws) if r < p and parse_au(au)[0] not in dropped]
        if not chosen:
            chosen = [max(allowed or pool, key=lambda ap: ap[1])[0]]
        if stray < off_prototype:
            chosen = list(EMOTION_AUS["others"][int(pick)])
    out = []
    for token in chosen:
        number, side = parse_au(token)
        flip = rng.random()  # drawn for every AU, so that one AU's side does not shift the others
        if not side and AU_CATALOGUE[number].bilateral and flip < unilateral:
            token = ("R" if rng.random() < 0.5 else "L") + token
        out.append(token)
    return tuple(sorted(out, key=lambda t: (parse_au(t)[0], t)))


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eye-based face axes of 68 landmarks (x, y): origin, x axis, y axis (unit vectors), IOD (px)."""
    left = landmarks[36:42].mean(axis=0)
    right = landmarks[42:48].mean(axis=0)
    iod = float(np.linalg.norm(right - left))
    ex = (right - left) / iod
    ey = np.array([-ex[1], ex[0]])
    return (left + right) / 2, ex, ey, iod


def bumps_for(tokens, landmarks: np.ndarray, rng: np.random.Generator, *,
              intensity: tuple[float, float] = (0.6, 1.0), symmetric: bool = False) -> list[dict]:
    """Raw-pixel bumps (unscaled) of the AUs `tokens` on a face with these 68 landmarks.

    Each AU gets a random intensity in `intensity`; the two sides of a bilateral AU differ by up to
    15 % (faces are not symmetric) unless `symmetric` (a posed expression). Vectors are in relative
    units; `scale_bumps` sets the amplitude.
    """
    _, ex, ey, iod = face_frame(landmarks)
    out = []
    for token in sorted(tokens, key=lambda t: (parse_au(t)[0], t)):
        number, only_side = parse_au(token)
        au = AU_CATALOGUE[number]
        strength = rng.uniform(*intensity)
        for side in ("R", "L"):
            if only_side and side != only_side:
                continue
            side_gain = strength if symmetric else strength * rng.uniform(0.85, 1.0)
            for bump in au.bumps:
                if bump.midline and side == "L":
                    continue  # midline bumps exist once
                mirror = side == "L" and not bump.midline
                anchor = MIRROR[list(bump.anchor)] if mirror else list(bump.anchor)
                sx = -1.0 if mirror else 1.0
                ox, oy = bump.offset[0] * sx, bump.offset[1]
                dx, dy = bump.direction[0] * sx, bump.direction[1]
                norm = np.hypot(dx, dy)
                centre = landmarks[anchor].mean(axis=0) + iod * (ox * ex + oy * ey)
                vec = (dx * ex + dy * ey) / norm * bump.weight * side_gain
                out.append({
                    "au": number,
                    "side": "" if bump.midline else side,
                    "x": float(centre[0]),
                    "y": float(centre[1]),
                    "sigma": float(bump.sigma * iod),
                    "u": float(vec[0]),
                    "v": float(vec[1]),
                })
    return out


def evaluate(bumps: list[dict], xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Displacement (u, v) of `bumps` at points (xs, ys) (any equal shapes), float64."""
    u = np.zeros(np.broadcast(xs, ys).shape)
    v = np.zeros_like(u)
    for b in bumps:
        r2 = ((xs - b["x"]) ** 2 + (ys - b["y"]) ** 2) / (b["sigma"] ** 2)
        g = np.where(r2 < TRUNCATE**2, np.exp(-0.5 * r2), 0.0)
        u += b["u"] * g
        v += b["v"] * g
    return u, v


def field_on_grid(bumps: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """(2, H, W) float64 field of `bumps` on the pixel grid of an H x W image; each bump computed
    only inside its 4-sigma box (identical values to `evaluate`, much cheaper)."""
    h, w = shape
    field = np.zeros((2, h, w))
    for b in bumps:
        reach = TRUNCATE * b["sigma"]
        x0, x1 = max(int(np.floor(b["x"] - reach)), 0), min(int(np.ceil(b["x"] + reach)) + 1, w)
        y0, y1 = max(int(np.floor(b["y"] - reach)), 0), min(int(np.ceil(b["y"] + reach)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1, dtype=np.float64)[None, :]
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        r2 = ((xs - b["x"]) ** 2 + (ys - b["y"]) ** 2) / (b["sigma"] ** 2)
        g = np.where(r2 < TRUNCATE**2, np.exp(-0.5 * r2), 0.0)
        field[0, y0:y1, x0:x1] += b["u"] * g
        field[1, y0:y1, x0:x1] += b["v"] * g
    return field


def scale_bumps(bumps: list[dict], amplitude: float, shape: tuple[int, int]) -> list[dict]:
    """Bumps scaled so that the field's largest displacement on the grid is `amplitude` px, with
    values rounded for the truth file (the rounded bumps are the ones rendered)."""
    field = field_on_grid(bumps, shape)
    peak = float(np.sqrt((field**2).sum(axis=0)).max())
    k = amplitude / peak
    return [
        {**b, "x": round(b["x"], 4), "y": round(b["y"], 4), "sigma": round(b["sigma"], 4),
         "u": round(b["u"] * k, 6), "v": round(b["v"] * k, 6)}
        for b in bumps
    ]


def transform_bumps(bumps: list[dict], matrix: np.ndarray) -> list[dict]:
    """Bumps moved by a rigid 2x3 transform (rotation + translation): centres mapped, vectors rotated.

    A rigid motion maps a sum of isotropic Gaussian bumps to another such sum, so the field of the
    result is exactly the transformed field."""
    m = np.asarray(matrix, dtype=np.float64)
    out = []
    for b in bumps:
        cx, cy = m[:, :2] @ (b["x"], b["y"]) + m[:, 2]
        u, v = m[:, :2] @ (b["u"], b["v"])
        out.append({**b, "x": round(float(cx), 4), "y": round(float(cy), 4),
                    "u": round(float(u), 6), "v": round(float(v), 6)})
    return out


def truth_field(entry: dict, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The planted apex displacement of a clip, float32 (2, H, W): (u, v) = (x, y) in raw pixels.

    `entry` is one clip of `synth_truth.json` (`truth["clips"][i]`). The field is the FORWARD
    facial displacement from the onset frame to the apex frame in raw onset-frame coordinates: image
    content at x in the onset frame is at x + d(x) in the apex frame, up to the rigid head motion
    `entry["head"]["apex_transform"]` applied afterwards. `shape` (H, W) defaults to the frame size.
    """
    if shape is None:
        width, height = entry["frame_size"]
        shape = (height, width)
    return field_on_grid(entry["field"]["bumps"], tuple(shape)).astype(np.float32)
