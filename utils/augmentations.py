"""Image augmentations for detection: letterbox, random perspective, HSV jitter, mixup, copy-paste, Albumentations."""

from __future__ import annotations

import math
import random

import cv2
import numpy as np

from utils.general import LOGGER, colorstr, resample_segments, segment2box

PAD_COLOR = (114, 114, 114)  # grey used for letterbox borders and empty mosaic/perspective areas


class Albumentations:
    """Optional pixel augmentations (blur, median blur, grayscale, CLAHE); a no-op without albumentations."""

    def __init__(self, size: int = 640, p: float = 0.01):
        self.transform = None
        self.size = size
        prefix = colorstr("albumentations: ")
        try:
            import albumentations as A  # optional dependency, hence the local import
        except ImportError:
            return
        try:
            transforms = [A.Blur(p=p), A.MedianBlur(p=p), A.ToGray(p=p), A.CLAHE(p=p)]
            boxes = A.BboxParams(format="yolo", label_fields=["class_labels"])
            self.transform = A.Compose(transforms, bbox_params=boxes)
            LOGGER.info(prefix + ", ".join(f"{t}".replace("always_apply=False, ", "") for t in transforms if t.p))
        except Exception as e:  # an incompatible albumentations version must not stop training
            LOGGER.warning(f"{prefix}disabled, could not build the pipeline: {e}")
            self.transform = None

    def __call__(self, im: np.ndarray, labels: np.ndarray, p: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Apply the pipeline with probability p to an image and its (n, 5) class-xywhn labels."""
        if self.transform is not None and random.random() < p:
            out = self.transform(image=im, bboxes=labels[:, 1:], class_labels=labels[:, 0])
            boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            classes = np.asarray(out["class_labels"], dtype=np.float32).reshape(-1, 1)
            im, labels = out["image"], np.concatenate((classes, boxes), 1)
        return im, labels


def augment_hsv(im: np.ndarray, hgain: float = 0.5, sgain: float = 0.5, vgain: float = 0.5) -> None:
    """Randomly scale hue, saturation and value of a BGR uint8 image in place (gains are +/- fractions)."""
    if not (hgain or sgain or vgain):
        return
    gains = np.random.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(im, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float64)
    # look-up tables: 256 multiplications instead of one per pixel; OpenCV hue lives in [0, 180)
    lut_hue = ((x * gains[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=im)


def letterbox(
    im: np.ndarray,
    new_shape: int | tuple[int, int] = (640, 640),
    color: tuple[int, int, int] = PAD_COLOR,
    auto: bool = True,
    scaleFill: bool = False,  # noqa: N803 (YOLOv5 keyword name)
    scaleup: bool = True,
    stride: int = 32,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize keeping aspect ratio and pad to new_shape (h, w); returns image, (w, h) ratio and (dw, dh) padding.

    auto pads only up to the next multiple of stride (minimum rectangle), scaleFill stretches without padding,
    scaleup=False never enlarges (useful for validation where upsampling would invent detail).
    """
    h0, w0 = im.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / h0, new_shape[1] / w0)
    if not scaleup:
        r = min(r, 1.0)
    ratio = (r, r)
    new_w, new_h = int(round(w0 * r)), int(round(h0 * r))
    dw, dh = new_shape[1] - new_w, new_shape[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    elif scaleFill:
        dw, dh = 0, 0
        new_w, new_h = new_shape[1], new_shape[0]
        ratio = (new_w / w0, new_h / h0)
    dw, dh = float(dw) / 2, float(dh) / 2  # split padding between both sides
    if (w0, h0) != (new_w, new_h):
        im = cv2.resize(im, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))  # odd padding: the extra pixel goes bottom/right
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return im, ratio, (dw, dh)


def box_candidates(
    box1: np.ndarray,
    box2: np.ndarray,
    wh_thr: float = 2,
    ar_thr: float = 100,
    area_thr: float = 0.1,
    eps: float = 1e-16,
) -> np.ndarray:
    """Mask of boxes worth keeping after a transform: box1 (4, n) before, box2 (4, n) after, both xyxy.

    A box survives if it is still wider and taller than wh_thr pixels, kept more than area_thr of its
    area and is not thinner than 1:ar_thr.
    """
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (aspect < ar_thr)


def random_perspective(
    im: np.ndarray,
    targets: np.ndarray = (),
    segments: list[np.ndarray] | None = None,
    degrees: float = 10,
    translate: float = 0.1,
    scale: float = 0.1,
    shear: float = 10,
    perspective: float = 0.0,
    border: tuple[int, int] = (0, 0),
):
    """Random rotation, scale, shear, translation and perspective of an image and its (n, 5) class-xyxy targets.

    Returns (im, targets), or (im, targets, segments) when segments (one (k, 2) pixel polygon per target, (0, 2)
    for a target without one) are given. A target with a polygon gets the box of its transformed polygon
    (resampled to 1000 points, only the points inside the image count); the others the hull of their transformed
    corners, clipped. border (y, x) grows (positive) or shrinks (negative) the output: a 2s mosaic with border -s/2
    comes out s. Boxes that became too small, lost most of their area (90%, or 99% for polygons) or turned into
    slivers are dropped (box_candidates). Random draws in YOLOv5's order: perspective x, y, angle, scale, shear x,
    y, translation x, y.
    """
    height, width = im.shape[0] + border[0] * 2, im.shape[1] + border[1] * 2

    center = np.eye(3)  # move the image centre to the origin so rotation and scale act about it
    center[0, 2], center[1, 2] = -im.shape[1] / 2, -im.shape[0] / 2

    persp = np.eye(3)
    persp[2, 0] = random.uniform(-perspective, perspective)
    persp[2, 1] = random.uniform(-perspective, perspective)

    rot = np.eye(3)
    angle = random.uniform(-degrees, degrees)
    s = random.uniform(1 - scale, 1 + scale)
    rot[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=s)

    shr = np.eye(3)
    shr[0, 1] = math.tan(math.radians(random.uniform(-shear, shear)))
    shr[1, 0] = math.tan(math.radians(random.uniform(-shear, shear)))

    trans = np.eye(3)  # back from the origin to a random point around the output centre
    trans[0, 2] = random.uniform(0.5 - translate, 0.5 + translate) * width
    trans[1, 2] = random.uniform(0.5 - translate, 0.5 + translate) * height

    m = trans @ shr @ rot @ persp @ center  # right to left: centre first, translate last
    if border[0] or border[1] or not np.allclose(m, np.eye(3)):
        if perspective:
            im = cv2.warpPerspective(im, m, dsize=(width, height), borderValue=PAD_COLOR)
        else:
            im = cv2.warpAffine(im, m[:2], dsize=(width, height), borderValue=PAD_COLOR)

    targets = np.asarray(targets, dtype=np.float32).reshape(-1, 5)
    n = len(targets)
    polys = list(segments) if segments is not None and len(segments) else [np.zeros((0, 2), np.float32)] * n
    if len(polys) != n:
        raise ValueError(f"random_perspective: {len(polys)} segments for {n} targets, expected one per target")
    if n:
        new, polys = _warp_labels(targets, polys, m, perspective, width, height)
        has_poly = np.array([len(p) > 0 for p in polys])
        # compare with the scaled original so that only area lost to clipping counts, not the zoom itself
        keep = box_candidates(box1=targets[:, 1:5].T * s, box2=new.T, area_thr=np.where(has_poly, 0.01, 0.10))
        targets = targets[keep]
        targets[:, 1:5] = new[keep]
        polys = [p for p, k in zip(polys, keep) if k]
    return (im, targets) if segments is None else (im, targets, polys)


def _project(xy: np.ndarray, m: np.ndarray, perspective: float) -> np.ndarray:
    """Points (k, 2) through the 3x3 matrix m (divided by w only for a perspective transform)."""
    h = np.ones((len(xy), 3))
    h[:, :2] = xy
    h = h @ m.T
    return h[:, :2] / h[:, 2:3] if perspective else h[:, :2]


def _warp_labels(targets: np.ndarray, polys: list[np.ndarray], m: np.ndarray, perspective: float, width: int,
                 height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """New xyxy boxes (n, 4) for targets under m, from their polygons where they have one, and the moved polygons."""
    n = len(targets)
    corners = _project(targets[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2), m, perspective).reshape(n, 8)
    x, y = corners[:, [0, 2, 4, 6]], corners[:, [1, 3, 5, 7]]
    new = np.stack((x.min(1), y.min(1), x.max(1), y.max(1)), 1)
    new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
    new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
    out = []
    for i, p in enumerate(polys):
        if len(p):
            p = _project(resample_segments([p])[0], m, perspective).astype(np.float32)
            new[i] = segment2box(p, width, height)
        out.append(p)
    return new, out


def mixup(im: np.ndarray, labels: np.ndarray, im2: np.ndarray, labels2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend two same-sized images with a Beta(32, 32) ratio and keep the labels of both (MixUp)."""
    r = np.random.beta(32.0, 32.0)  # concentrated around 0.5 so both images stay visible
    im = (im * r + im2 * (1 - r)).astype(np.uint8)
    return im, np.concatenate((labels, labels2), 0)


def box_ioa(box: np.ndarray, boxes: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Intersection of one xyxy box with each of boxes (n, 4), divided by the area of each of boxes."""
    iw = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    ih = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    return iw * ih / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + eps)


def copy_paste(
    im: np.ndarray, labels: np.ndarray, segments: list[np.ndarray], p: float = 0.5
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Segment copy-paste (Ghiasi et al. 2021) as in YOLOv5: paste left-right mirrored copies of polygon objects.

    A fraction p of the labels that have a polygon is picked; each is mirrored across the vertical centre line and
    kept only if its mirrored box covers less than 30% of every box already there. The pixels inside the polygon
    are copied from the mirrored image. labels are (n, 5) class-xyxy pixels and segments one (k, 2) pixel polygon
    per label ((0, 2) for a box label), or [] for box-only labels: then nothing happens. im is modified in place.
    """
    if not p or not len(segments):
        return im, labels, segments
    if len(segments) != len(labels):
        raise ValueError(f"copy_paste: {len(segments)} segments for {len(labels)} labels, expected one per label")
    candidates = [j for j, s in enumerate(segments) if len(s)]
    if not candidates:
        return im, labels, segments
    w = im.shape[1]
    segments = list(segments)
    mask = np.zeros(im.shape[:2], np.uint8)
    for j in random.sample(candidates, k=round(p * len(candidates))):
        c, x1, y1, x2, y2 = labels[j]
        mirrored = np.array([w - x2, y1, w - x1, y2], dtype=np.float32)
        if (box_ioa(mirrored, labels[:, 1:5]) < 0.30).all():
            labels = np.concatenate((labels, np.array([[c, *mirrored]], dtype=labels.dtype)), 0)
            seg = segments[j]
            segments.append(np.stack((w - seg[:, 0], seg[:, 1]), 1).astype(seg.dtype))
            cv2.fillPoly(mask, [seg.astype(np.int32)], 1)  # the source region, truncated to pixels
    if mask.any():
        target = mask[:, ::-1].astype(bool)  # where the mirrored copies land
        im[target] = im[:, ::-1][target]
    return im, labels, segments
