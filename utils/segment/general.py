"""Mask operations for instance segmentation: cropping to boxes, masks from prototypes, rescaling, contours."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def crop_mask(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Zero every mask (n, h, w) outside its box (n, 4), xyxy in mask pixels: pixel (x, y) is kept when x1 <= x < x2."""
    _, h, w = masks.shape
    x1, y1, x2, y2 = torch.chunk(boxes[:, :, None], 4, 1)  # each (n, 1, 1)
    cols = torch.arange(w, device=masks.device, dtype=x1.dtype)[None, None, :]
    rows = torch.arange(h, device=masks.device, dtype=x1.dtype)[None, :, None]
    return masks * ((cols >= x1) * (cols < x2) * (rows >= y1) * (rows < y2))


def process_mask(protos: torch.Tensor, masks_in: torch.Tensor, bboxes: torch.Tensor, shape: tuple[int, int],
                 upsample: bool = False) -> torch.Tensor:
    """Binary masks of n detections from prototypes (c, mh, mw) and coefficients (n, c), cropped to their boxes.

    bboxes are xyxy in the pixels of the network input `shape` (h, w). Masks stay at prototype resolution unless
    upsample, which resizes them bilinearly to `shape` before thresholding at 0.5.
    """
    c, mh, mw = protos.shape
    ih, iw = shape
    masks = (masks_in @ protos.float().view(c, -1)).sigmoid().view(-1, mh, mw)
    boxes = bboxes.clone()
    boxes[:, [0, 2]] *= mw / iw
    boxes[:, [1, 3]] *= mh / ih
    masks = crop_mask(masks, boxes)
    if upsample:
        masks = F.interpolate(masks[None], shape, mode="bilinear", align_corners=False)[0]
    return masks.gt_(0.5)


def process_mask_native(protos: torch.Tensor, masks_in: torch.Tensor, bboxes: torch.Tensor,
                        shape: tuple[int, int]) -> torch.Tensor:
    """Masks at the original image's resolution (retina masks): unpad the prototypes, resize, crop to boxes.

    bboxes are xyxy already scaled to the original image of size `shape` (h, w).
    """
    c, mh, mw = protos.shape
    masks = (masks_in @ protos.float().view(c, -1)).sigmoid().view(-1, mh, mw)
    top, left, bottom, right = _unpadded_window((mh, mw), shape)
    masks = masks[:, top:bottom, left:right]
    masks = F.interpolate(masks[None], shape, mode="bilinear", align_corners=False)[0]
    return crop_mask(masks, bboxes).gt_(0.5)


def _unpadded_window(padded: tuple[int, int], original: tuple[int, ...], ratio_pad=None) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the image inside a letterboxed array of size `padded` (h, w)."""
    if ratio_pad is None:
        gain = min(padded[0] / original[0], padded[1] / original[1])
        pad = (padded[1] - original[1] * gain) / 2, (padded[0] - original[0] * gain) / 2
    else:
        pad = ratio_pad[1]
    top, left = int(pad[1]), int(pad[0])
    return top, left, int(padded[0] - pad[1]), int(padded[1] - pad[0])


def scale_image(im1_shape: tuple[int, int], masks: np.ndarray, im0_shape: tuple[int, ...],
                ratio_pad=None) -> np.ndarray:
    """Masks (h, w, n) of the letterboxed input (im1_shape) cut to the image and resized to the original image."""
    if masks.shape[:2] != tuple(im1_shape[:2]):
        raise ValueError(f"masks of shape {masks.shape[:2]} do not have the letterboxed input's shape {im1_shape[:2]}")
    top, left, bottom, right = _unpadded_window(im1_shape, im0_shape, ratio_pad)
    masks = masks[top:bottom, left:right]
    masks = masks[:, :, None] if masks.ndim == 2 else masks
    size = (im0_shape[1], im0_shape[0])
    parts = []
    for i in range(0, max(masks.shape[2], 1), 128):  # cv2.resize takes at most 128 channels (OpenCV 5): in groups
        m = cv2.resize(np.ascontiguousarray(masks[:, :, i : i + 128]), size)
        parts.append(m[:, :, None] if m.ndim == 2 else m)
    return np.concatenate(parts, 2)


def mask_iou(mask1: torch.Tensor, mask2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every flattened mask in mask1 (N, h*w) with every one in mask2 (M, h*w); returns (N, M)."""
    inter = torch.matmul(mask1, mask2.t()).clamp(0)
    union = mask1.sum(1)[:, None] + mask2.sum(1)[None] - inter
    return inter / (union + eps)


def masks2segments(masks: torch.Tensor, strategy: str = "largest") -> list[np.ndarray]:
    """One polygon (k, 2) per binary mask (n, h, w): its largest outer contour, or all of them concatenated."""
    if strategy not in ("largest", "concat"):
        raise ValueError(f"strategy must be 'largest' or 'concat', got {strategy!r}")
    segments = []
    for m in masks.int().cpu().numpy().astype("uint8"):
        contours = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        if not contours:
            segments.append(np.zeros((0, 2), dtype=np.float32))
        elif strategy == "concat":
            segments.append(np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float32))
        else:
            segments.append(max(contours, key=len).reshape(-1, 2).astype(np.float32))
    return segments


def scale_segments(img1_shape: tuple[int, int], segments: np.ndarray, img0_shape: tuple[int, ...], ratio_pad=None,
                   normalize: bool = False) -> np.ndarray:
    """Polygon points (k, 2) from a letterboxed image (img1_shape) to the original image, clipped to it."""
    if ratio_pad is None:
        gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
        pad = (img1_shape[1] - img0_shape[1] * gain) / 2, (img1_shape[0] - img0_shape[0] * gain) / 2
    else:
        gain, pad = ratio_pad[0][0], ratio_pad[1]
    segments = np.array(segments, dtype=np.float32).reshape(-1, 2)
    segments[:, 0] = ((segments[:, 0] - pad[0]) / gain).clip(0, img0_shape[1])
    segments[:, 1] = ((segments[:, 1] - pad[1]) / gain).clip(0, img0_shape[0])
    if normalize:
        segments[:, 0] /= img0_shape[1]
        segments[:, 1] /= img0_shape[0]
    return segments
