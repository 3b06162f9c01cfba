"""Optical flow (onset -> apex) on aligned grey crops, and optical strain. Pure functions.

`tvl1` is OpenCV contrib's DualTVL1OpticalFlow (the MER standard); `farneback` and `dis` are the
fast options (docs/performance.md measures all three). `FLOW_METHODS` is the one list of the
methods; cv2 is imported on first use, so that the command line can offer them cheaply.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FlowUnavailable

FLOW_METHODS = ("tvl1", "farneback", "dis")


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV's defaults unless stated; the fields keep OpenCV's names."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5


def check_flow_available(method: str) -> None:
    """Fail early, with the fix, when the installed OpenCV lacks the method.

    Installing plain `opencv-python(-headless)` next to `opencv-contrib-python` silently replaces
    the contrib build: `cv2.optflow` then exists but lacks DualTVL1OpticalFlow_create.
    """
    import cv2

    if method not in FLOW_METHODS:
        raise FlowUnavailable(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    if method == "tvl1" and not hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create"):
        raise FlowUnavailable(
            "the installed OpenCV has no cv2.optflow.DualTVL1OpticalFlow_create (TV-L1 lives in the contrib "
            "build; a plain opencv-python or opencv-python-headless install overwrote it). Fix: "
            "pip uninstall -y opencv-python opencv-python-headless opencv-contrib-python && "
            "pip install opencv-contrib-python  (or use --flow farneback|dis)"
        )


_TVL1_CACHE: dict[TVL1Params, object] = {}


def _tvl1(params: TVL1Params):
    import cv2

    if params not in _TVL1_CACHE:
        _TVL1_CACHE[params] = cv2.optflow.DualTVL1OpticalFlow_create(
            tau=params.tau, lambda_=params.lambda_, theta=params.theta, nscales=params.nscales,
            warps=params.warps, epsilon=params.epsilon, innnerIterations=params.inner_iterations,
            outerIterations=params.outer_iterations, scaleStep=params.scale_step, gamma=params.gamma,
            medianFiltering=params.median_filtering, useInitialFlow=False,
        )
    return _TVL1_CACHE[params]


def compute_flow(first: np.ndarray, second: np.ndarray, method: str = "tvl1",
                 params: TVL1Params = TVL1Params()) -> np.ndarray:
    """Dense flow from `first` to `second` (uint8 grey, same shape) as float32 (2, H, W): (u, v) in
    pixels, so that first(x) ~ second(x + flow(x))."""
    import cv2

    if method == "tvl1":
        flow = _tvl1(params).calc(first, second, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    elif method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(first, second, None)
    else:
        raise FlowUnavailable(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2) from the flow's spatial gradients,
    with e_xy = (du/dy + dv/dx) / 2 (central differences)."""
    u, v = flow[0].astype(np.float64), flow[1].astype(np.float64)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    e_xy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx ** 2 + dv_dy ** 2 + 2.0 * e_xy ** 2).astype(np.float32)


def optical_strain_squared_shears(flow: np.ndarray) -> np.ndarray:
    """The other strain formula in circulation, sqrt(du/dx^2 + dv/dy^2 + 1/2 (du/dy^2 + dv/dx^2)):
    the two shear gradients squared separately instead of summed first (central differences, as
    `optical_strain`). Shards never store it; `mer-prep export --strain other` writes it for peer
    models trained on it (docs/shard-format.md, "Optical strain")."""
    u, v = flow[0].astype(np.float64), flow[1].astype(np.float64)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    return np.sqrt(du_dx ** 2 + dv_dy ** 2 + 0.5 * (du_dy ** 2 + dv_dx ** 2)).astype(np.float32)


# `--strain` names: `ours` is what the shards store (`optical_strain`).
STRAIN_FORMULAS = {"ours": optical_strain, "other": optical_strain_squared_shears}

