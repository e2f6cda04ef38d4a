"""Hand-computed cases for the box format helpers of utils/boxes.py, imported from utils.general as YOLOv5 v7.0 code
imports them, on numpy arrays and torch tensors."""

import numpy as np
import pytest
import torch

from utils.general import (
    clip_boxes,
    resample_segments,
    scale_boxes,
    segment2box,
    segments2boxes,
    xyn2xy,
    xywh2xyxy,
    xywhn2xyxy,
    xyxy2xywh,
    xyxy2xywhn,
)

BACKENDS = [np.array, lambda x: torch.tensor(x, dtype=torch.float32)]


def _np(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("make", BACKENDS)
def test_xyxy_xywh_round_trip(make):
    xyxy = make([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 3.0]])
    before = _np(xyxy).copy()
    xywh = xyxy2xywh(xyxy)
    assert np.allclose(_np(xywh), [[30, 50, 40, 60], [0.5, 1.5, 1, 3]])
    assert np.allclose(_np(xywh2xyxy(xywh)), before)
    assert np.array_equal(_np(xyxy), before)  # input not modified
    assert type(xywh) is type(xyxy)


@pytest.mark.parametrize("make", BACKENDS)
def test_normalised_conversions_with_padding(make):
    xywhn = make([[0.5, 0.5, 0.25, 0.5]])
    xyxy = xywhn2xyxy(xywhn, w=200, h=100, padw=10, padh=5)
    assert np.allclose(_np(xyxy), [[10 + 75, 5 + 25, 10 + 125, 5 + 75]])
    back = xyxy2xywhn(make([[75.0, 25.0, 125.0, 75.0]]), w=200, h=100)
    assert np.allclose(_np(back), [[0.5, 0.5, 0.25, 0.5]])
    pts = xyn2xy(make([[0.1, 0.2], [1.0, 1.0]]), w=200, h=100, padw=1, padh=2)
    assert np.allclose(_np(pts), [[21, 22], [201, 102]])


@pytest.mark.parametrize("make", BACKENDS)
def test_xyxy2xywhn_clip_does_not_touch_input(make):
    x = make([[-20.0, 10.0, 220.0, 50.0]])
    before = _np(x).copy()
    y = xyxy2xywhn(x, w=200, h=100, clip=True)
    assert np.allclose(_np(y), [[0.5, 0.3, 1.0, 0.4]])
    assert np.array_equal(_np(x), before)


@pytest.mark.parametrize("make", BACKENDS)
def test_clip_boxes_in_place(make):
    b = make([[-5.0, -5.0, 700.0, 300.0], [10.0, 10.0, 20.0, 20.0]])
    clip_boxes(b, (240, 640))  # (height, width)
    assert np.allclose(_np(b), [[0, 0, 640, 240], [10, 10, 20, 20]])


@pytest.mark.parametrize("make", BACKENDS)
def test_scale_boxes_undoes_letterbox(make):
    # A 480x640 (h, w) image letterboxed into 640x640: gain 1, 80 px of padding top and bottom
    boxes = make([[100.0, 180.0, 200.0, 280.0]])
    out = scale_boxes((640, 640), boxes, (480, 640))
    assert np.allclose(_np(out), [[100, 100, 200, 200]])
    # A 960x1280 image into 320x320: gain 0.25, resized 240x320, padding 40 on top
    boxes = make([[25.0, 65.0, 50.0, 90.0]])
    assert np.allclose(_np(scale_boxes((320, 320), boxes, (960, 1280))), [[100, 100, 200, 200]])


@pytest.mark.parametrize("make", BACKENDS)
def test_scale_boxes_with_ratio_pad_and_clipping(make):
    # val loader shapes: ratio (0.5, 0.5), pad (8, 4)
    boxes = make([[18.0, 14.0, 58.0, 54.0], [0.0, 0.0, 400.0, 400.0]])
    out = scale_boxes((256, 256), boxes, (300, 400), ratio_pad=((0.5, 0.5), (8, 4)))
    assert np.allclose(_np(out), [[20, 20, 100, 100], [0, 0, 400, 300]])


# polygons (segments) -----------------------------------------------------------------------------------------


def test_segments2boxes_are_polygon_extents_as_xywh():
    tri = np.array([[0.1, 0.2], [0.5, 0.2], [0.3, 0.8]], np.float32)
    square = np.array([[0.7, 0.1], [0.9, 0.1], [0.9, 0.3], [0.7, 0.3]], np.float32)
    boxes = segments2boxes([tri, square])
    np.testing.assert_allclose(boxes, [[0.3, 0.5, 0.4, 0.6], [0.8, 0.2, 0.2, 0.2]], atol=1e-6)
    assert segments2boxes([]).shape == (0, 4)


def test_segment2box_uses_only_points_inside_the_image():
    seg = np.array([[-10, 5], [20, 5], [20, 30], [5, 120]], np.float64)  # first and last points lie outside 50x100
    np.testing.assert_array_equal(segment2box(seg, width=50, height=100), [20, 5, 20, 30])
    np.testing.assert_array_equal(segment2box(np.array([[60.0, 5.0]]), width=50, height=100), [0, 0, 0, 0])


def test_resample_segments_closes_and_spaces_by_vertex_index():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    (out,) = resample_segments([square], n=9)  # 4 edges of the closed square, 2 steps each
    np.testing.assert_allclose(out, [[0, 0], [5, 0], [10, 0], [10, 5], [10, 10], [5, 10], [0, 10], [0, 5], [0, 0]])
    assert resample_segments([square])[0].shape == (1000, 2)
    np.testing.assert_array_equal(square[0], [0, 0])  # input untouched
