"""Boxes and segments: format conversions (xyxy, xywh, normalised), clipping and rescaling between letterboxed and
original images, and non-maximum suppression. YOLOv5 v7.0 code imports these from utils.general, which re-exports
them."""

from __future__ import annotations

import numpy as np
import torch
import torchvision  # imported with the module so the first NMS call is not charged its import time

# Box formats -----------------------------------------------------------------------------------------------
# Each takes and returns a torch tensor or numpy array of shape (n, 4) and never modifies its input.


def _empty_like(x):
    return x.clone() if isinstance(x, torch.Tensor) else np.copy(x)


def xyxy2xywh(x):
    """[x1, y1, x2, y2] to [x_center, y_center, w, h]."""
    y = _empty_like(x)
    y[..., 0] = (x[..., 0] + x[..., 2]) / 2
    y[..., 1] = (x[..., 1] + x[..., 3]) / 2
    y[..., 2] = x[..., 2] - x[..., 0]
    y[..., 3] = x[..., 3] - x[..., 1]
    return y


def xywh2xyxy(x):
    """[x_center, y_center, w, h] to [x1, y1, x2, y2]."""
    y = _empty_like(x)
    y[..., 0] = x[..., 0] - x[..., 2] / 2
    y[..., 1] = x[..., 1] - x[..., 3] / 2
    y[..., 2] = x[..., 0] + x[..., 2] / 2
    y[..., 3] = x[..., 1] + x[..., 3] / 2
    return y


def xywhn2xyxy(x, w: int = 640, h: int = 640, padw: float = 0, padh: float = 0):
    """Normalised [x_center, y_center, w, h] to pixel [x1, y1, x2, y2], shifted by padding."""
    y = _empty_like(x)
    y[..., 0] = w * (x[..., 0] - x[..., 2] / 2) + padw
    y[..., 1] = h * (x[..., 1] - x[..., 3] / 2) + padh
    y[..., 2] = w * (x[..., 0] + x[..., 2] / 2) + padw
    y[..., 3] = h * (x[..., 1] + x[..., 3] / 2) + padh
    return y


def xyxy2xywhn(x, w: int = 640, h: int = 640, clip: bool = False, eps: float = 0.0):
    """Pixel [x1, y1, x2, y2] to normalised [x_center, y_center, w, h], optionally clipped to the image."""
    if clip:
        x = _empty_like(x)
        clip_boxes(x, (h - eps, w - eps))
    y = _empty_like(x)
    y[..., 0] = ((x[..., 0] + x[..., 2]) / 2) / w
    y[..., 1] = ((x[..., 1] + x[..., 3]) / 2) / h
    y[..., 2] = (x[..., 2] - x[..., 0]) / w
    y[..., 3] = (x[..., 3] - x[..., 1]) / h
    return y


def xyn2xy(x, w: int = 640, h: int = 640, padw: float = 0, padh: float = 0):
    """Normalised segment points (n, 2) to pixels."""
    y = _empty_like(x)
    y[..., 0] = w * x[..., 0] + padw
    y[..., 1] = h * x[..., 1] + padh
    return y


def segment2box(segment: np.ndarray, width: float = 640, height: float = 640) -> np.ndarray:
    """xyxy box around the points of one (n, 2) polygon that lie inside a width x height image; zeros if none do."""
    x, y = segment[:, 0], segment[:, 1]
    inside = (x >= 0) & (y >= 0) & (x <= width) & (y <= height)
    x, y = x[inside], y[inside]
    if not len(x):
        return np.zeros(4, dtype=segment.dtype)
    return np.array([x.min(), y.min(), x.max(), y.max()], dtype=segment.dtype)


def segments2boxes(segments: list[np.ndarray]) -> np.ndarray:
    """(n, 4) xywh boxes, each the extent of one (k, 2) polygon (no clipping)."""
    boxes = np.zeros((len(segments), 4), dtype=np.float32)
    for i, s in enumerate(segments):
        boxes[i] = s[:, 0].min(), s[:, 1].min(), s[:, 0].max(), s[:, 1].max()
    return xyxy2xywh(boxes)


def resample_segments(segments: list[np.ndarray], n: int = 1000) -> list[np.ndarray]:
    """Each (k, 2) polygon, closed, as n points spaced evenly in vertex index (linear between vertices)."""
    out = []
    for s in segments:
        closed = np.concatenate((s, s[:1]), 0)
        t = np.linspace(0, len(closed) - 1, n)  # position along the vertex list: 1.5 is halfway from vertex 1 to 2
        idx = np.arange(len(closed))
        out.append(np.stack((np.interp(t, idx, closed[:, 0]), np.interp(t, idx, closed[:, 1])), 1))
    return out


def clip_boxes(boxes, shape: tuple[int, int]) -> None:
    """Clip xyxy boxes in place to an image of shape (height, width)."""
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, shape[1])
        boxes[..., 1].clamp_(0, shape[0])
        boxes[..., 2].clamp_(0, shape[1])
        boxes[..., 3].clamp_(0, shape[0])
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, shape[1])
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, shape[0])


def scale_boxes(img1_shape: tuple[int, int], boxes, img0_shape: tuple[int, ...], ratio_pad=None):
    """Map xyxy boxes in place from a letterboxed image (img1_shape) back to the original image (img0_shape)."""
    if ratio_pad is None:  # derive the letterbox gain and padding from the two shapes
        gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
        pad = (img1_shape[1] - img0_shape[1] * gain) / 2, (img1_shape[0] - img0_shape[0] * gain) / 2
    else:
        gain, pad = ratio_pad[0][0], ratio_pad[1]
    boxes[..., [0, 2]] -= pad[0]
    boxes[..., [1, 3]] -= pad[1]
    boxes[..., :4] /= gain
    clip_boxes(boxes, img0_shape)
    return boxes


# Post-processing -------------------------------------------------------------------------------------------


def non_max_suppression(prediction, conf_thres: float = 0.25, iou_thres: float = 0.45, classes=None,
                        agnostic: bool = False, multi_label: bool = False, labels=(), max_det: int = 300,
                        nm: int = 0) -> list[torch.Tensor]:
    """NMS per image over (batch, n, 5 + nc + nm) predictions; returns per-image (k, 6 + nm) [xyxy, conf, cls]."""
    if not 0.0 <= conf_thres <= 1.0:
        raise ValueError(f"Invalid confidence threshold {conf_thres}, valid values are between 0.0 and 1.0")
    if not 0.0 <= iou_thres <= 1.0:
        raise ValueError(f"Invalid IoU threshold {iou_thres}, valid values are between 0.0 and 1.0")
    if isinstance(prediction, (list, tuple)):  # eval-mode model output (pred, raw maps)
        prediction = prediction[0]
    if prediction.ndim != 3 or prediction.shape[2] < 6 + nm:
        raise ValueError(f"Expected predictions of shape (batch, n, 5 + nc + {nm}) with nc >= 1, "
                         f"got {tuple(prediction.shape)}")

    device = prediction.device
    if device.type == "mps":  # torchvision NMS is not implemented on MPS
        prediction = prediction.cpu()
    bs, nc = prediction.shape[0], prediction.shape[2] - nm - 5
    mi = 5 + nc  # index where mask coefficients start
    max_nms = 30000  # most boxes handed to torchvision NMS per image; beyond this it becomes slow
    multi_label &= nc > 1
    candidates = prediction[..., 4] > conf_thres
    output = [torch.zeros((0, 6 + nm), device=device)] * bs
    for xi, x in enumerate(prediction):
        x = x[candidates[xi]]  # boolean indexing copies, so the in-place edits below leave prediction alone
        if labels is not None and len(labels) and len(labels[xi]):  # --save-hybrid: labels as sure predictions
            lb = labels[xi]
            v = torch.zeros((len(lb), nc + nm + 5), device=x.device, dtype=x.dtype)
            v[:, :4] = lb[:, 1:5]  # xywh
            v[:, 4] = 1.0
            v[range(len(lb)), lb[:, 0].long() + 5] = 1.0
            x = torch.cat((x, v), 0)
        if not x.shape[0]:
            continue

        x[:, 5:mi] *= x[:, 4:5]  # conf = obj_conf * cls_conf
        box = xywh2xyxy(x[:, :4])
        mask = x[:, mi:]
        if multi_label:  # one row per (box, class) pair above threshold
            i, j = (x[:, 5:mi] > conf_thres).nonzero(as_tuple=False).T
            if classes is not None:  # before the cap below, so it never spends places on unwanted classes
                wanted = (j[:, None] == torch.tensor(classes, device=j.device)).any(1)
                i, j = i[wanted], j[wanted]
            conf = x[i, 5 + j]
            if conf.shape[0] > max_nms:  # keep the best pairs before building rows: cheaper than sorting them all
                top = conf.topk(max_nms).indices
                i, j, conf = i[top], j[top], conf[top]
            x = torch.cat((box[i], conf[:, None], j[:, None].to(x.dtype), mask[i]), 1)
        else:  # best class only
            conf, j = x[:, 5:mi].max(1, keepdim=True)
            x = torch.cat((box, conf, j.to(x.dtype), mask), 1)[conf.view(-1) > conf_thres]
        if classes is not None:
            x = x[(x[:, 5:6] == torch.tensor(classes, device=x.device, dtype=x.dtype)).any(1)]
        if not x.shape[0]:
            continue
        x = x[x[:, 4].argsort(descending=True)[:max_nms]]

        boxes, scores = x[:, :4].float(), x[:, 4].float()
        if agnostic:
            keep = torchvision.ops.nms(boxes, scores, iou_thres)
        else:  # per class: class-offset boxes for small inputs, a loop over classes for large ones (faster on CPU)
            keep = torchvision.ops.batched_nms(boxes, scores, x[:, 5].long(), iou_thres)
        output[xi] = x[keep[:max_det]].to(device)
    return output
