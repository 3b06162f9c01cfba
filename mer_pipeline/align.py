"""Alignment: a similarity transform from onset anchors to a canonical template, and removal of
rigid head motion between frames (stabilisation). Pure functions on arrays.

Template coordinates are fractions of the square crop: the crop spans about 2.6 inter-ocular
distances, from the forehead to the chin, so that brows (AU1/2/4) and mouth (AU12-26) are inside.
"""
from __future__ import annotations

import cv2
import numpy as np

# (x, y) as fractions of the crop side: eye (image left), eye (image right), nose tip, mouth corners.
TEMPLATE = np.array([
    [0.308, 0.340],
    [0.692, 0.340],
    [0.500, 0.570],
    [0.346, 0.744],
    [0.654, 0.744],
], dtype=np.float64)

# Regions with little facial muscle motion of interest, (x0, y0, x1, y1) in template fractions:
# a forehead strip, the nose column, and the two sides of the face (temples, cheek edges). Head
# motion is fitted there. The forehead gives vertical constraints, nose and sides horizontal ones.
STABLE_REGIONS = (
    (0.20, 0.03, 0.80, 0.18),
    (0.42, 0.30, 0.58, 0.62),
    (0.06, 0.25, 0.18, 0.62),
    (0.82, 0.25, 0.94, 0.62),
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst, as 2x3.

    Closed form (Umeyama), deterministic: no RANSAC.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / (s ** 2).sum() * len(src)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def alignment_transform(anchors: np.ndarray, size: int) -> np.ndarray:
    """2x3 matrix taking frame pixels to the `size` x `size` aligned crop."""
    return similarity_transform(anchors, TEMPLATE * size)


def transform_scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def warp(grey: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp a grey frame into the aligned crop. When shrinking, blur first (anti-aliasing) so that
    sub-pixel motion survives as smooth intensity change rather than aliasing."""
    scale = transform_scale(matrix)
    if scale < 0.9:
        sigma = 0.5 * np.sqrt(max(1.0 / scale ** 2 - 1.0, 0.0))
        grey = cv2.GaussianBlur(grey, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(grey, matrix.astype(np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def stable_mask(size: int, face: np.ndarray | None = None) -> np.ndarray:
    """uint8 mask of the stable regions; restricted to the `face` mask when given (the side strips
    of a narrow face would otherwise reach into the background, which does not move with the head)."""
    mask = np.zeros((size, size), np.uint8)
    for x0, y0, x1, y1 in STABLE_REGIONS:
        mask[int(y0 * size):int(np.ceil(y1 * size)), int(x0 * size):int(np.ceil(x1 * size))] = 1
    if face is not None:
        mask &= face
    return mask


def face_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """uint8 mask of the face in the aligned crop: the convex hull of the landmarks, extended above
    the eyes by half an inter-ocular distance to take in the forehead. Works for any landmark set."""
    points = np.asarray(landmarks, np.float64)
    eye_line = TEMPLATE[:2, 1].mean() * size
    iod = (TEMPLATE[1, 0] - TEMPLATE[0, 0]) * size
    upper = points[points[:, 1] < eye_line] - [0.0, 0.5 * iod]
    hull = cv2.convexHull(np.round(np.vstack([points, upper])).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def estimate_head_motion(reference: np.ndarray, moving: np.ndarray, face: np.ndarray | None = None,
                         iterations: int = 2) -> np.ndarray:
    """Rigid 2x3 transform W with moving(W x) ~ reference(x), fitted on the stable regions.

    Dense DIS flow reference -> moving is fitted with a small-rotation Euclidean model by
    iteratively reweighted least squares (Tukey weights), so facial motion that reaches into the
    stable regions counts as outliers; `iterations` rounds of fit, resample and refit. `face` (see
    `face_mask`) keeps the fit off the background. Masked
    intensity alignment (ECC) was measured to be 5-10x less accurate on faces (docs/performance.md).
    """
    size = reference.shape[0]
    ys, xs = np.nonzero(stable_mask(size, face))
    total = np.eye(2, 3)
    current = moving
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for _ in range(iterations):
        flow = dis.calc(reference, current, None)
        step = _fit_small_rigid(xs.astype(np.float64), ys.astype(np.float64), flow[ys, xs, 0], flow[ys, xs, 1])
        total = compose(total, step)
        current = remove_head_motion(moving, total)
    return total


def _fit_small_rigid(xs, ys, u, v, rounds: int = 6) -> np.ndarray:
    """Fit flow (u, v) at (xs, ys) with u = tx - th*y, v = ty + th*x (small rotation th)."""
    n = len(xs)
    design = np.zeros((2 * n, 3))
    design[:n, 0], design[:n, 1] = -ys, 1.0
    design[n:, 0], design[n:, 2] = xs, 1.0
    target = np.concatenate([u, v]).astype(np.float64)
    weights = np.ones(2 * n)
    for _ in range(rounds):
        solution, *_ = np.linalg.lstsq(design * weights[:, None], target * weights, rcond=None)
        residual = target - design @ solution
        scale = 1.4826 * np.median(np.abs(residual)) + 1e-6
        weights = np.clip(1 - (residual / (4.685 * scale)) ** 2, 0, 1)
    theta, tx, ty = solution
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, tx], [s, c, ty]])


def remove_head_motion(moving: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Resample `moving` so that it lines up with the reference (inverse of the estimated motion)."""
    size = moving.shape[0]
    return cv2.warpAffine(moving, motion, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 transform of x -> outer(inner(x))."""
    a = np.vstack([outer, [0, 0, 1]])
    b = np.vstack([inner, [0, 0, 1]])
    return (a @ b)[:2]
