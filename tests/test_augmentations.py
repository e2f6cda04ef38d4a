"""Transforms on hand-made images and boxes: the boxes must follow the pixels."""

import math
import random
import sys

import cv2
import numpy as np
import pytest

from utils.augmentations import (
    PAD_COLOR,
    Albumentations,
    augment_hsv,
    box_candidates,
    box_ioa,
    copy_paste,
    letterbox,
    mixup,
    random_perspective,
)


def white_box_image(h, w, box, background=0):
    """Image of size (h, w) with a white filled xyxy box (x2, y2 exclusive)."""
    im = np.full((h, w, 3), background, dtype=np.uint8)
    x1, y1, x2, y2 = box
    im[y1:y2, x1:x2] = 255
    return im


def bright_extent(im, thr=200):
    """xyxy extent (x2, y2 exclusive) of pixels brighter than thr in every channel."""
    ys, xs = np.nonzero((im > thr).all(2))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


# letterbox ---------------------------------------------------------------------------------------------------


def test_letterbox_square_target_maps_box():
    im = white_box_image(100, 200, (50, 20, 100, 60))
    out, ratio, (dw, dh) = letterbox(im, 320, auto=False)
    assert out.shape == (320, 320, 3)
    assert ratio == (1.6, 1.6)
    assert (dw, dh) == (0.0, 80.0)
    expected = np.array([50, 20, 100, 60]) * 1.6 + [dw, dh, dw, dh]
    np.testing.assert_allclose(bright_extent(out), expected, atol=1)
    assert tuple(out[0, 0]) == PAD_COLOR and tuple(out[-1, -1]) == PAD_COLOR  # padding above and below


def test_letterbox_auto_is_stride_aligned_minimum_rectangle():
    im = np.zeros((100, 210, 3), np.uint8)
    out, ratio, (dw, dh) = letterbox(im, 320, auto=True, stride=32)
    assert out.shape[1] == 320 and out.shape[0] % 32 == 0
    assert out.shape[0] == 160  # 100 * 320 / 210 = 152 rows, padded up to the next multiple of 32
    assert dw == 0 and dh == 4.0


def test_letterbox_scale_fill_stretches_without_padding():
    im = white_box_image(100, 210, (21, 10, 42, 20))
    out, ratio, pad = letterbox(im, 320, auto=False, scaleFill=True)
    assert out.shape == (320, 320, 3) and pad == (0.0, 0.0)
    np.testing.assert_allclose(ratio, (320 / 210, 320 / 100))
    np.testing.assert_allclose(bright_extent(out), [21 * ratio[0], 10 * ratio[1], 42 * ratio[0], 20 * ratio[1]], atol=1)


def test_letterbox_no_scaleup_keeps_small_image_centered():
    im = white_box_image(100, 210, (0, 0, 210, 100))
    out, ratio, (dw, dh) = letterbox(im, 320, auto=False, scaleup=False)
    assert ratio == (1.0, 1.0) and (dw, dh) == (55.0, 110.0)
    np.testing.assert_allclose(bright_extent(out), [55, 110, 265, 210])


def test_letterbox_odd_padding_fills_target_exactly():
    im = np.zeros((99, 200, 3), np.uint8)
    out, _, (dw, dh) = letterbox(im, (128, 201), auto=False, scaleup=False)
    assert out.shape == (128, 201, 3)
    assert dh == 14.5 and dw == 0.5


# random_perspective ------------------------------------------------------------------------------------------


def test_random_perspective_identity_keeps_image_and_boxes():
    im = white_box_image(64, 80, (10, 20, 30, 40))
    targets = np.array([[3, 10, 20, 30, 40]], np.float32)
    out, t = random_perspective(im.copy(), targets, degrees=0, translate=0, scale=0, shear=0, perspective=0)
    np.testing.assert_array_equal(out, im)
    np.testing.assert_allclose(t, targets)


@pytest.mark.parametrize("perspective", [0.0, 0.0008])
def test_random_perspective_boxes_follow_pixels(perspective):
    for seed in range(8):
        random.seed(seed)
        im = white_box_image(200, 200, (80, 70, 130, 120))
        targets = np.array([[1, 80, 70, 130, 120]], np.float32)
        out, t = random_perspective(im, targets, degrees=30, translate=0.1, scale=0.3, shear=10,
                                    perspective=perspective)
        assert out.shape == (200, 200, 3)
        assert len(t) == 1 and t[0, 0] == 1
        # a rectangle stays a quadrilateral, so the hull of its corners is the extent of its pixels
        np.testing.assert_allclose(t[0, 1:], bright_extent(out, thr=128), atol=2)


def test_random_perspective_border_clips_and_drops_boxes():
    im = np.zeros((200, 200, 3), np.uint8)
    targets = np.array([[0, 0, 0, 30, 30], [1, 40, 40, 100, 100], [2, 60, 60, 62, 120]], np.float32)
    out, t = random_perspective(im, targets, degrees=0, translate=0, scale=0, shear=0, border=(-50, -50))
    assert out.shape == (100, 100, 3)  # negative border shrinks, as after a mosaic
    # box 0 ends up outside (dropped), box 1 is clipped at the top-left, box 2 is a 2-px sliver (dropped)
    np.testing.assert_allclose(t, [[1, 0, 0, 50, 50]])


def test_random_perspective_draws_in_yolov5_order(monkeypatch):
    calls = []
    values = iter([0.0, 0.0, 90.0, 1.0, 0.0, 0.0, 0.5, 0.5])  # perspective x y, angle, scale, shear x y, translate x y

    def uniform(a, b):
        calls.append((a, b))
        return next(values)

    monkeypatch.setattr(random, "uniform", uniform)
    im = white_box_image(100, 100, (20, 30, 60, 50))
    targets = np.array([[0, 20, 30, 60, 50]], np.float32)
    out, t = random_perspective(im, targets, degrees=45, translate=0.1, scale=0.5, shear=3, perspective=0.001)
    assert calls == [(-0.001, 0.001), (-0.001, 0.001), (-45, 45), (0.5, 1.5), (-3, 3), (-3, 3), (0.4, 0.6),
                     (0.4, 0.6)]
    # 90 degrees about the centre: (x, y) -> (y, 100 - x); the box (20, 30, 60, 50) becomes (30, 40, 50, 80)
    np.testing.assert_allclose(t, [[0, 30, 40, 50, 80]], atol=1e-4)
    np.testing.assert_allclose(bright_extent(out, thr=128), [30, 40, 50, 80], atol=1)


def test_random_perspective_boxes_from_polygons(monkeypatch):
    values = iter([0.0, 0.0, 45.0, 1.0, 0.0, 0.0, 0.5, 0.5])
    monkeypatch.setattr(random, "uniform", lambda a, b: next(values))
    diamond = np.array([[50, 30], [70, 50], [50, 70], [30, 50]], np.float32)
    targets = np.array([[0, 30, 30, 70, 70], [1, 30, 30, 70, 70]], np.float32)  # the same box, with and without
    out, t, segs = random_perspective(np.zeros((100, 100, 3), np.uint8), targets, [diamond, np.zeros((0, 2))],
                                      degrees=45, translate=0, scale=0, shear=0)
    # turned 45 degrees the diamond is a square of half-side 10 * sqrt(2); the box's corners reach 20 * sqrt(2)
    r1, r2 = 10 * math.sqrt(2), 20 * math.sqrt(2)
    np.testing.assert_allclose(t, [[0, 50 - r1, 50 - r1, 50 + r1, 50 + r1], [1, 50 - r2, 50 - r2, 50 + r2, 50 + r2]],
                               atol=1e-3)
    assert segs[0].shape == (1000, 2) and segs[1].shape == (0, 2)
    np.testing.assert_allclose(segs[0].min(0), [50 - r1, 50 - r1], atol=1e-3)


def test_box_candidates():
    before = np.array([[0, 0, 100, 100], [0, 0, 100, 100], [0, 0, 100, 100], [0, 0, 100, 100]], np.float64).T
    after = np.array([[0, 0, 100, 100], [0, 0, 2, 50], [0, 0, 40, 40], [0, 0, 99, 0.5]], np.float64).T
    np.testing.assert_array_equal(box_candidates(before, after), [True, False, True, False])
    assert not box_candidates(before[:, :1], np.array([[0, 0, 5, 5]], np.float64).T)[0]  # kept under 10% of area


# colour, mixup, copy-paste -----------------------------------------------------------------------------------


def test_augment_hsv_value_gain_matches_hand_computation():
    bgr = np.array([[[40, 120, 200]]], np.uint8)
    im = np.tile(bgr, (8, 8, 1))
    np.random.seed(0)
    gain = np.random.uniform(-1, 1, 3)[2] * 0.5 + 1
    np.random.seed(0)
    augment_hsv(im, hgain=0, sgain=0, vgain=0.5)
    hsv_before = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[0, 0].astype(int)
    hsv_after = cv2.cvtColor(im, cv2.COLOR_BGR2HSV)[0, 0].astype(int)
    assert abs(hsv_after[2] - min(255, int(hsv_before[2] * gain))) <= 2
    assert abs(hsv_after[0] - hsv_before[0]) <= 1  # hue untouched
    assert (im == im[0, 0]).all()  # one colour in, one colour out


def test_augment_hsv_zero_gains_is_identity():
    im = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    ref = im.copy()
    augment_hsv(im, 0, 0, 0)
    np.testing.assert_array_equal(im, ref)


def test_mixup_blends_and_keeps_both_label_sets():
    np.random.seed(1)
    a, b = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    la, lb = np.array([[0, 1, 1, 3, 3]], np.float32), np.array([[2, 4, 4, 6, 6]], np.float32)
    out, labels = mixup(a, la, b, lb)
    assert out.dtype == np.uint8 and 60 < out.mean() < 140
    assert (out == out[0, 0]).all()
    np.testing.assert_array_equal(labels, np.concatenate((la, lb)))


def test_copy_paste_pastes_mirrored_polygons():
    random.seed(0)
    im = np.zeros((50, 100, 3), np.uint8)
    tri = np.array([[10, 10], [30, 10], [10, 40]], np.float32)
    cv2.fillPoly(im, [tri.astype(np.int32)], (0, 0, 255))
    im[5:45, 60:70] = (0, 255, 0)  # a box-only object: never copied
    labels = np.array([[4, 10, 10, 30, 40], [1, 60, 5, 70, 45]], np.float32)
    segments = [tri, np.zeros((0, 2), np.float32)]
    src = im.copy()
    out, new, segs = copy_paste(im, labels, segments, p=1.0)
    np.testing.assert_allclose(new, [[4, 10, 10, 30, 40], [1, 60, 5, 70, 45], [4, 70, 10, 90, 40]])
    np.testing.assert_allclose(segs[2], [[90, 10], [70, 10], [90, 40]])
    assert len(segs) == 3 and segs[1].shape == (0, 2)
    mask = np.zeros((50, 100), np.uint8)
    cv2.fillPoly(mask, [tri.astype(np.int32)], 1)
    landed = mask[:, ::-1].astype(bool)  # only pixels inside the mirrored triangle change, to the mirrored source
    np.testing.assert_array_equal(out[landed], src[:, ::-1][landed])
    np.testing.assert_array_equal(out[~landed], src[~landed])
    assert (out[20, 85] == (0, 0, 255)).all() and (out[38, 72] == 0).all()  # inside / outside the copy


def test_copy_paste_does_nothing_on_box_only_labels():
    im = (np.random.default_rng(0).random((50, 100, 3)) * 255).astype(np.uint8)
    labels = np.array([[0, 5, 10, 25, 30]], np.float32)
    random.seed(3)
    state = random.getstate()
    for segments in ([], [np.zeros((0, 2), np.float32)]):
        out, new, segs = copy_paste(im.copy(), labels, segments, p=1.0)
        np.testing.assert_array_equal(out, im)
        np.testing.assert_array_equal(new, labels)
        assert random.getstate() == state  # no draws either: a seeded run continues as without copy-paste


def test_copy_paste_skips_copies_that_would_hide_objects():
    im = np.zeros((50, 100, 3), np.uint8)
    labels = np.array([[0, 40, 10, 58, 30]], np.float32)  # mirror overlaps the original by far more than 30%
    segments = [np.array([[40, 10], [58, 10], [58, 30], [40, 30]], np.float32)]
    out, new, segs = copy_paste(im.copy(), labels, segments, p=1.0)
    np.testing.assert_array_equal(new, labels)
    np.testing.assert_array_equal(out, im)
    assert len(segs) == 1


def test_box_ioa():
    ioa = box_ioa(np.array([0, 0, 10, 10]), np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 5, 10]], np.float64))
    np.testing.assert_allclose(ioa, [0.25, 0.0, 1.0], atol=1e-6)


# albumentations ----------------------------------------------------------------------------------------------


def test_albumentations_off_when_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "albumentations", None)  # makes `import albumentations` raise ImportError
    t = Albumentations(size=64)
    assert t.transform is None
    im, labels = np.zeros((8, 8, 3), np.uint8), np.array([[0, 0.5, 0.5, 0.2, 0.2]], np.float32)
    out, lb = t(im, labels)
    assert out is im and lb is labels
