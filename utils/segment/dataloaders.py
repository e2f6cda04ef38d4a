"""Segmentation data: the detection dataset plus instance masks rasterised from the label polygons."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from utils.dataloaders import LoadImagesAndLabels
from utils.dataloaders import create_dataloader as create_detection_dataloader


def polygon2mask(img_size: tuple[int, int], polygons: list[np.ndarray], color: int = 1,
                 downsample_ratio: int = 1) -> np.ndarray:
    """Fill polygons (flat [x1 y1 x2 y2 ...] pixel arrays) on an img_size (h, w) uint8 mask, then shrink it."""
    mask = np.zeros(img_size, dtype=np.uint8)
    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2).astype(np.int32) for p in polygons]
    pts = [p for p in pts if len(p)]
    if pts:
        cv2.fillPoly(mask, pts, color=color)
    nh, nw = img_size[0] // downsample_ratio, img_size[1] // downsample_ratio
    return cv2.resize(mask, (nw, nh))  # cv2's default bilinear resize, as YOLOv5 does


def polygons2masks(img_size: tuple[int, int], polygons: list[np.ndarray], color: int = 1,
                   downsample_ratio: int = 1) -> np.ndarray:
    """One mask per polygon: (n, h / ratio, w / ratio) uint8."""
    h, w = img_size[0] // downsample_ratio, img_size[1] // downsample_ratio
    masks = [polygon2mask(img_size, [p.reshape(-1)], color, downsample_ratio) for p in polygons]
    return np.array(masks, dtype=np.uint8) if masks else np.zeros((0, h, w), dtype=np.uint8)


def polygons2masks_overlap(img_size: tuple[int, int], segments: list[np.ndarray],
                           downsample_ratio: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """All instances in one map: pixel value k marks the k-th largest instance; smaller ones are drawn on top.

    Returns the map and the area order (largest first), by which the labels must be reordered to match.
    """
    h, w = img_size[0] // downsample_ratio, img_size[1] // downsample_ratio
    masks = np.zeros((h, w), dtype=np.int32 if len(segments) > 255 else np.uint8)
    single = polygons2masks(img_size, segments, 1, downsample_ratio)
    index = np.argsort(-single.reshape(len(single), h * w).sum(1), kind="stable")
    for k, i in enumerate(index, start=1):
        masks = np.clip(masks + single[i].astype(masks.dtype) * k, 0, k).astype(masks.dtype)
    return masks, index


class LoadImagesAndLabelsAndMasks(LoadImagesAndLabels):
    """Detection items plus masks: (image, labels (n, 6), path, shapes, masks).

    masks are at 1/downsample_ratio of the image: (n, h, w) binary, one per label, or with overlap (1, h, w)
    with pixel value k for the k-th label (the labels are then ordered by decreasing mask area).
    """

    def __init__(self, *args, downsample_ratio: int = 1, overlap: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.downsample_ratio = downsample_ratio
        self.overlap = overlap

    def __getitem__(self, index: int):
        img, labels, segments, path, shapes = self.load_sample(index)
        h, w = img.shape[1:]
        r = self.downsample_ratio
        pixels = [s * np.array([w, h], np.float32) for s in segments]
        if self.overlap:
            masks, order = polygons2masks_overlap((h, w), pixels, downsample_ratio=r)
            masks = masks[None]
            labels = labels[torch.from_numpy(order)] if len(order) else labels
        else:
            masks = polygons2masks((h, w), pixels, color=1, downsample_ratio=r)
        return img, labels, path, shapes, torch.from_numpy(masks.astype(np.float32) if self.overlap else masks)

    @staticmethod
    def collate_fn(batch: list):
        """Stack images, concatenate labels (image index in column 0) and masks along their first axis."""
        im, labels, paths, shapes, masks = zip(*batch)
        for i, lb in enumerate(labels):
            lb[:, 0] = i
        return torch.stack(im, 0), torch.cat(labels, 0), paths, shapes, torch.cat(masks, 0)

    @staticmethod
    def collate_fn4(batch: list):
        raise ValueError("--quad is not supported for segmentation: the 2x2 tiles would need their masks tiled too")


def create_dataloader(path, imgsz: int, batch_size: int, stride: int, *args, mask_downsample_ratio: int = 1,
                      overlap_mask: bool = False, **kwargs):
    """create_dataloader of utils.dataloaders with LoadImagesAndLabelsAndMasks; masks at 1/mask_downsample_ratio."""
    return create_detection_dataloader(
        path, imgsz, batch_size, stride, *args, dataset_cls=LoadImagesAndLabelsAndMasks,
        dataset_kwargs={"downsample_ratio": mask_downsample_ratio, "overlap": overlap_mask}, **kwargs,
    )
