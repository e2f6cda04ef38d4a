"""Hand-computed cases for the box format helpers in utils/general.py, on numpy arrays and torch tensors."""

import numpy as np
import pytest
import torch

from utils.general import clip_boxes, scale_boxes, xyn2xy, xywh2xyxy, xywhn2xyxy, xyxy2xywh, xyxy2xywhn

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
