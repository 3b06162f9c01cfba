"""Time: the expression's temporal profile, rigid head drift, and the frame renderer.

Model of frame t of a video (base = the subject's neutral frame, d = facial displacement field in
base coordinates, p(t) in [0, 1] its temporal profile, A_t the rigid head pose):

    content at base point x of the head is shown at   A_t(x + p(t) d(x))

(the background stays still and the torso follows the head partly; see `Renderer`). The hard preset's
confounders add head nudges to A_t (`add_pulse`) and multiply the frame by a lighting gradient that
follows the expression's profile (`Expression.light`).

Rendering is one backward warp per frame (`cv2.remap`, float32 maps, INTER_LINEAR): output pixel y
samples the base at  z + p(t) e(z),  z = A_t^-1(y),  where e is the inverse of d
(x + d(x) = z  <=>  x = z + e(z)), computed once per expression by fixed-point iteration. At p = 1
this is exact, so the apex frame shows content moved by exactly d: the truth field is the FORWARD
displacement onset -> apex, what optical flow onset -> apex estimates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import aus


def profile(t: np.ndarray | int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Smooth rise onset -> apex (raised cosine), smooth decay apex -> offset; 0 outside."""
    t = np.asarray(t, dtype=np.float64)
    p = np.zeros_like(t)
    if apex > onset:
        rise = (t > onset) & (t <= apex)
        p[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / (apex - onset))
    if offset > apex:
        fall = (t > apex) & (t < offset)
        p[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex))
    p[t == apex] = 1.0
    return p


# ---------------------------------------------------------------------------------------------
# rigid head motion

def draw_head_motion(rng: np.random.Generator, centre, fps: float, translation, rotation_deg,
                     origin: int | None) -> dict:
    """Head drift as a few slow sinusoids per axis (parameters only; `head_matrix` evaluates them).

    `origin`: frame at which the pose is the identity (the onset of a single-expression clip); None
    for long videos with several expressions (CAS(ME)^3), whose pose is absolute.
    """
    def waves(amplitude_range, n):
        return [[round(rng.uniform(*amplitude_range), 4), round(rng.uniform(0.2, 1.0), 4),
                 round(rng.uniform(0, 2 * np.pi), 4)] for _ in range(n)]

    return {
        "model": "x' = R(roll)(x - centre) + centre + (tx, ty); each of tx, ty, roll = sum of "
                 "amp*sin(2*pi*freq_hz*frame/fps + phase) [minus its value at origin]",
        "centre": [round(float(centre[0]), 3), round(float(centre[1]), 3)],
        "fps": fps,
        "origin": origin,
        "tx": waves(translation, 2),
        "ty": waves(translation, 2),
        "roll_deg": waves(rotation_deg, 1),
    }


def _waves(w, frame, fps):
    return sum(a * np.sin(2 * np.pi * f * frame / fps + ph) for a, f, ph in w)


def add_pulse(head: dict, onset: int, apex: int, offset: int, tx: float, ty: float, roll_deg: float) -> None:
    """Add a head nudge that follows an expression's profile (a confounder of the hard preset)."""
    head["pulse_model"] = "each pulse adds profile(frame; onset, apex, offset) * (tx, ty, roll_deg) to the pose"
    head.setdefault("pulses", []).append({"onset": onset, "apex": apex, "offset": offset, "tx": tx, "ty": ty,
                                          "roll_deg": roll_deg})


def head_pose(head: dict, frame: int) -> tuple[float, float, float]:
    """(tx px, ty px, roll degrees) at `frame`."""
    pose = [_waves(head[k], frame, head["fps"]) for k in ("tx", "ty", "roll_deg")]
    if head["origin"] is not None:
        pose = [v - _waves(head[k], head["origin"], head["fps"]) for v, k in zip(pose, ("tx", "ty", "roll_deg"))]
    for pulse in head.get("pulses", ()):
        p = float(profile(frame, pulse["onset"], pulse["apex"], pulse["offset"]))
        pose = [v + p * pulse[k] for v, k in zip(pose, ("tx", "ty", "roll_deg"))]
    return float(pose[0]), float(pose[1]), float(pose[2])


def head_matrix(head: dict, frame: int) -> np.ndarray:
    """Forward rigid 2x3 transform base -> frame at `frame`."""
    tx, ty, roll = head_pose(head, frame)
    c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    rot = np.array([[c, -s], [s, c]])
    centre = np.asarray(head["centre"], np.float64)
    return np.hstack([rot, (centre - rot @ centre + (tx, ty))[:, None]])


def relative_transform(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 transform T with b = T o a (e.g. apex pose relative to onset pose)."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (b3 @ np.linalg.inv(a3))[:2]


# ---------------------------------------------------------------------------------------------
# one expression, ready to render

@dataclass
class Expression:
    """One planted expression of a video, in base coordinates."""

    onset: int
    apex: int
    offset: int
    bumps: list[dict]  # base coordinates
    light: dict | None = None  # lighting-gradient change with the profile: {angle_deg, strength, centre, width}
    x0: int = 0  # origin of the inverse-field box in base coordinates
    y0: int = 0
    inverse: np.ndarray = field(default=None, repr=False)  # (2, h, w) float32 e on the box

    def prepare(self, shape: tuple[int, int]) -> None:
        """Inverse field e on the support box of d, by fixed-point iteration e = -d(z + e)."""
        h, w = shape
        reach = max(aus.TRUNCATE * b["sigma"] for b in self.bumps)
        amp = max(np.hypot(b["u"], b["v"]) for b in self.bumps) * len(self.bumps)
        pad = int(np.ceil(min(amp, reach))) + 4
        xs = [b["x"] for b in self.bumps]
        ys = [b["y"] for b in self.bumps]
        x0 = max(int(np.floor(min(xs) - reach)) - pad, 0)
        y0 = max(int(np.floor(min(ys) - reach)) - pad, 0)
        x1 = min(int(np.ceil(max(xs) + reach)) + pad + 1, w)
        y1 = min(int(np.ceil(max(ys) + reach)) + pad + 1, h)
        shifted = [{**b, "x": b["x"] - x0, "y": b["y"] - y0} for b in self.bumps]
        d = aus.field_on_grid(shifted, (y1 - y0, x1 - x0)).astype(np.float32)
        gx, gy = np.meshgrid(np.arange(x1 - x0, dtype=np.float32), np.arange(y1 - y0, dtype=np.float32))
        e = -d
        for _ in range(40):
            du = cv2.remap(d[0], gx + e[0], gy + e[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            dv = cv2.remap(d[1], gx + e[0], gy + e[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            new = -np.stack([du, dv])
            change = float(np.abs(new - e).max())
            e = new
            if change < 1e-4:
                break
        self.x0, self.y0, self.inverse = x0, y0, e

    def light_gain(self, shape: tuple[int, int]) -> np.ndarray | None:
        """(H, W) float32 relative gain change at apex, or None: strength times the position along
        the light's direction, in units of the face width from the face centre, clipped to +-1."""
        if self.light is None:
            return None
        h, w = shape
        a = np.radians(self.light["angle_deg"])
        cx, cy = self.light["centre"]
        xs = (np.arange(w, dtype=np.float32)[None, :] - cx) * np.float32(np.cos(a))
        ys = (np.arange(h, dtype=np.float32)[:, None] - cy) * np.float32(np.sin(a))
        ramp = np.clip((xs + ys) / np.float32(self.light["width"]), -1.0, 1.0)
        return (np.float32(self.light["strength"]) * ramp).astype(np.float32)


def max_gradient(bumps: list[dict], shape) -> float:
    """Largest |Jacobian| entry of the field: below ~0.5 the warp is smooth and invertible."""
    f = aus.field_on_grid(bumps, shape)
    return float(max(np.abs(np.gradient(f[0])).max(), np.abs(np.gradient(f[1])).max()))


# ---------------------------------------------------------------------------------------------
# frames

def head_bound(head: dict, shape) -> float:
    """An upper bound (px) of how far the head pose moves any pixel of an image of `shape`."""
    k = 2.0 if head["origin"] is not None else 1.0
    shift = k * (sum(abs(a) for a, _, _ in head["tx"]) + sum(abs(a) for a, _, _ in head["ty"]))
    roll = np.radians(k * sum(abs(a) for a, _, _ in head["roll_deg"]))
    for pulse in head.get("pulses", ()):  # pulses of one video never overlap in time
        shift += abs(pulse["tx"]) + abs(pulse["ty"])
        roll += np.radians(abs(pulse["roll_deg"]))
    return float(shift + roll * np.hypot(*shape))


class NoiseBank:
    """Gaussian sensor noise, fast: a few precomputed unit-noise frames, read at random offsets and
    scaled per clip. Marginally N(0, sigma^2) per pixel and independent across frames in practice."""

    PAD = 32

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator, frames: int = 3):
        h, w = shape[:2]
        self.shape = shape
        self.frames = (frames, h + self.PAD, w + self.PAD) + tuple(shape[2:])
        unit = rng.standard_normal((frames * (h + self.PAD), (w + self.PAD) * int(np.prod(shape[2:]))),
                                   dtype=np.float32)  # 2-D, as OpenCV wants it
        self.plus, self.minus = np.maximum(unit, 0), np.minimum(unit, 0)

    def for_sigma(self, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        """Rounded noise of std `sigma` as two uint8 stacks (positive part, negative part): adding
        one and subtracting the other with saturation is much faster than int16 arithmetic."""
        plus = cv2.convertScaleAbs(self.plus, alpha=sigma)  # |sigma x|, rounded, saturated to uint8
        minus = cv2.convertScaleAbs(self.minus, alpha=sigma)
        return plus.reshape(self.frames), minus.reshape(self.frames)

    def apply(self, img: np.ndarray, scaled: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        k, dy, dx = rng.integers(len(scaled[0])), rng.integers(self.PAD), rng.integers(self.PAD)
        h, w = self.shape[:2]
        plus, minus = scaled[0][k, dy:dy + h, dx:dx + w], scaled[1][k, dy:dy + h, dx:dx + w]
        return cv2.subtract(cv2.add(img, plus), minus)


class Renderer:
    """Renders frames of one video of one subject: head pose + active expression + sensor noise.

    The head motion is weighted per pixel (`weight`, 1 on the head, less on the torso, 0 on the
    background): output pixel y samples the base at  z + p e(z),  z = y + weight(y) (A_t^-1 y - y).
    Where weight = 1 (the whole face) this is exactly the rigid head pose of the model above.
    """

    def __init__(self, base: np.ndarray, weight: np.ndarray, head: dict, expressions: list[Expression],
                 noise: np.ndarray, rng: np.random.Generator, bank: NoiseBank):
        self.base = base
        self.head = head
        self.expressions = expressions
        self.noise = noise  # this clip's noise (NoiseBank.for_sigma)
        self.bank = bank
        self.rng = rng
        h, w = base.shape[:2]
        for ex in expressions:
            ex.prepare((h, w))
        self.lights = [ex.light_gain((h, w)) for ex in expressions]
        # one box holds everything that can move: the person and every expression's support
        ys, xs = np.nonzero(weight > 0)
        x0, x1, y0, y1 = (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) if len(xs) else (w, 0, h, 0)
        margin = int(np.ceil(head_bound(head, (h, w)))) + 2
        for ex in expressions:
            eh, ew = ex.inverse.shape[1:]
            x0, y0 = min(x0, ex.x0 - margin), min(y0, ex.y0 - margin)
            x1, y1 = max(x1, ex.x0 + ew + margin), max(y1, ex.y0 + eh + margin)
        x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)
        self.box = (slice(y0, y1), slice(x0, x1))
        self.sub_boxes = []  # per expression: where its inverse field can land, inside the box
        for ex in expressions:
            eh, ew = ex.inverse.shape[1:]
            self.sub_boxes.append((slice(max(ex.y0 - margin, y0) - y0, min(ex.y0 + eh + margin, y1) - y0),
                                   slice(max(ex.x0 - margin, x0) - x0, min(ex.x0 + ew + margin, x1) - x0)))
        # z = y + weight * (A^-1 y - y) is affine in (x, y, 1) with per-pixel weight: precompute the
        # weighted coordinates so that a frame costs three scaled additions per axis
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        wt = np.ascontiguousarray(weight[self.box], dtype=np.float32)
        self.xs, self.ys, self.w, self.wx, self.wy = xs, ys, wt, wt * xs, wt * ys

    def clean(self, frame: int) -> np.ndarray:
        """The noise-free frame (uint8, same channels as the base)."""
        a = head_matrix(self.head, frame)
        moving = [(i, float(profile(frame, ex.onset, ex.apex, ex.offset))) for i, ex in enumerate(self.expressions)]
        moving = [(i, p) for i, p in moving if p > 0]  # expressions of one video never overlap in time
        img = self.base.copy()
        if not moving and np.allclose(a, [[1, 0, 0], [0, 1, 0]], atol=1e-9):
            return img
        m = cv2.invertAffineTransform(a)
        # base coordinates of the box: z = y + weight * (A^-1 y - y)                 # (h, w) each
        zx = cv2.scaleAdd(self.wx, m[0, 0] - 1, self.xs)
        zx = cv2.scaleAdd(self.wy, m[0, 1], zx)
        zx = cv2.scaleAdd(self.w, m[0, 2], zx)
        zy = cv2.scaleAdd(self.wx, m[1, 0], self.ys)
        zy = cv2.scaleAdd(self.wy, m[1, 1] - 1, zy)
        zy = cv2.scaleAdd(self.w, m[1, 2], zy)
        for i, p in moving:
            ex, sub = self.expressions[i], self.sub_boxes[i]
            sx, sy = zx[sub] - ex.x0, zy[sub] - ex.y0
            zx[sub] += p * cv2.remap(ex.inverse[0], sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            zy[sub] += p * cv2.remap(ex.inverse[1], sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        img[self.box] = cv2.remap(self.base, zx, zy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        for i, p in moving:
            if self.lights[i] is not None:  # the scene's light changes with the expression (a confounder)
                gain = 1.0 + np.float32(p) * self.lights[i]
                lit = img.astype(np.float32) * (gain[..., None] if img.ndim == 3 else gain)
                img = np.clip(np.rint(lit), 0, 255).astype(np.uint8)
        return img

    def noisy(self, frame: int) -> np.ndarray:
        """The frame as the camera delivers it: clean + Gaussian sensor noise, uint8."""
        return self.bank.apply(self.clean(frame), self.noise, self.rng)
