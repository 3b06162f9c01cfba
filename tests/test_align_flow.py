"""Alignment, stabilisation, flow and strain on small arrays with known motion."""
import cv2
import numpy as np
import pytest
import skimage.data

from mer_pipeline import align as al
from mer_pipeline.errors import FlowUnavailable
from mer_pipeline.flow import check_flow_available, compute_flow, optical_strain


@pytest.fixture(scope="module")
def face():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = al.similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_alignment_puts_anchors_on_the_template():
    anchors = np.array([[203, 101], [247, 104], [225, 127], [201, 139], [245, 141]], np.float32)
    matrix = al.alignment_transform(anchors, 128)
    mapped = al.transform_points(anchors, matrix)
    error = np.hypot(*(mapped - al.TEMPLATE * 128).T)
    assert error.mean() < 5 and error[:2].max() < 5  # least squares over 5 points; a smile widens the mouth


def test_head_motion_is_estimated_and_removed(face):
    size = 128
    matrix = al.alignment_transform(np.array([[203, 101], [247, 104], [225, 127], [201, 139], [245, 141]]), size)
    onset = al.warp(face, matrix, size)
    drift = np.array([[np.cos(0.01), -np.sin(0.01), 0.8], [np.sin(0.01), np.cos(0.01), -0.6]])
    moved = al.warp(face, al.compose(matrix, np.vstack([drift])), size)
    motion = al.estimate_head_motion(onset, moved)
    fixed = al.remove_head_motion(moved, motion)
    before = np.abs(compute_flow(onset, moved)).mean()
    after = compute_flow(onset, fixed)
    mask = al.stable_mask(size) > 0
    assert np.hypot(after[0], after[1])[mask].mean() < 0.1 < before


def test_tvl1_measures_a_subpixel_shift(face):
    crop = cv2.resize(face[60:260, 130:330], (128, 128), interpolation=cv2.INTER_AREA)
    shifted = cv2.warpAffine(crop, np.float32([[1, 0, 0.5], [0, 1, -0.25]]), (128, 128), borderMode=cv2.BORDER_REPLICATE)
    flow = compute_flow(crop, shifted)
    assert flow.shape == (2, 128, 128) and flow.dtype == np.float32
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert abs(np.median(flow[inner][0]) - 0.5) < 0.1
    assert abs(np.median(flow[inner][1]) + 0.25) < 0.1


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_fast_flows_have_the_same_contract(face, method):
    crop = cv2.resize(face[60:260, 130:330], (64, 64))
    assert compute_flow(crop, crop, method).shape == (2, 64, 64)


def test_strain_of_a_uniform_stretch():
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    flow = np.stack([0.1 * x, np.zeros_like(y)])  # du/dx = 0.1 everywhere
    np.testing.assert_allclose(optical_strain(flow), 0.1, atol=1e-6)
    rotation = np.stack([-0.05 * y, 0.05 * x])  # a pure rotation has no strain
    np.testing.assert_allclose(optical_strain(rotation), 0.0, atol=1e-6)


def test_unknown_flow_and_missing_tvl1(monkeypatch):
    with pytest.raises(FlowUnavailable, match="unknown"):
        check_flow_available("horn")
    monkeypatch.delattr(cv2.optflow, "DualTVL1OpticalFlow_create")
    with pytest.raises(FlowUnavailable, match="opencv-contrib-python"):
        check_flow_available("tvl1")
