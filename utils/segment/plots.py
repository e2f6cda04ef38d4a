"""Drawing instance masks: colour overlays on images and on the training/validation mosaics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from utils.plots import colors, plot_images


def overlay_masks(im: np.ndarray, masks: np.ndarray, mask_colors: list[tuple[int, int, int]],
                  alpha: float = 0.5) -> np.ndarray:
    """Blend binary masks (n, h, w), each in its colour, into an image (h, w, 3) of the same size, in place."""
    if len(masks) == 0:
        return im
    if masks.shape[1:] != im.shape[:2]:
        raise ValueError(f"masks of size {masks.shape[1:]} do not match the image's {im.shape[:2]}")
    for m, c in zip(masks.astype(bool), mask_colors):  # the later (less confident) masks first, best on top
        im[m] = (im[m] * (1 - alpha) + np.array(c, dtype=np.float32) * alpha).astype(im.dtype)
    return im


def plot_images_and_masks(images, targets, masks, paths=None, fname: str | Path = "images.jpg", names=None,
                          overlap: bool = False) -> np.ndarray:
    """plot_images, then each labelled or predicted instance's mask tinted over its tile.

    masks are per target row (n, h, w), or with overlap one map per image (b, h, w) valued 1..k.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    if isinstance(targets, torch.Tensor):
        targets = targets.detach().cpu().float().numpy()
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().float().numpy()
    images = np.array(images, dtype=np.float32)
    if images.max() <= 1:
        images *= 255
    bs, _, h, w = images.shape
    for i in range(bs):
        rows = np.nonzero(targets[:, 0] == i)[0]
        if overlap:
            tile = [masks[i] == k + 1 for k in range(len(rows))]
        else:
            tile = [masks[j] for j in rows]
        if not tile:
            continue
        tile = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for m in tile])
        hwc = np.ascontiguousarray(images[i].transpose(1, 2, 0))
        overlay_masks(hwc, tile, [colors(int(targets[j, 1])) for j in rows])
        images[i] = hwc.transpose(2, 0, 1)
    return plot_images(images, targets, paths, fname, names)
