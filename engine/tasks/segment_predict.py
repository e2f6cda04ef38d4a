"""Segmentation's hooks into the shared predict loop: NMS with mask coefficients, masks, polygons and overlays."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.tasks.detect_predict import DetectionPredictor, Detections, describe
from utils.general import LOGGER, scale_boxes
from utils.plots import Annotator, colors
from utils.segment.general import masks2segments, process_mask, process_mask_native, scale_image, scale_segments
from utils.segment.plots import overlay_masks


def masks_for_image(proto: torch.Tensor, det: torch.Tensor, input_shape: tuple[int, int], im0_shape: tuple[int, ...],
                    retina_masks: bool) -> torch.Tensor:
    """Binary masks of an image's detections at the original image size; det's boxes are scaled to it in place."""
    if retina_masks:
        det[:, :4] = scale_boxes(input_shape, det[:, :4], im0_shape).round()
        return process_mask_native(proto, det[:, 6:], det[:, :4], im0_shape[:2])
    masks = process_mask(proto, det[:, 6:], det[:, :4], input_shape, upsample=True)  # at the input size
    det[:, :4] = scale_boxes(input_shape, det[:, :4], im0_shape).round()
    m = scale_image(input_shape, masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8), im0_shape)
    return torch.from_numpy(m).permute(2, 0, 1).to(det.device)


def write_polygons(txt_file: Path, det: torch.Tensor, masks: torch.Tensor, shape: tuple[int, ...],
                   save_conf: bool) -> None:
    """Append one 'class x1 y1 x2 y2 ... [conf]' line per detection: its mask's outline, normalised."""
    with open(txt_file, "a") as f:
        for seg, (*_, conf, cls) in zip(masks2segments(masks), det[:, :6].tolist()):
            if not len(seg):
                continue  # a mask emptied by its box crop has no outline to write
            xy = scale_segments(shape[:2], seg, shape, normalize=True).reshape(-1).tolist()
            line = (int(cls), *xy, conf) if save_conf else (int(cls), *xy)
            f.write(("%g " * len(line)).rstrip() % line + "\n")


@dataclasses.dataclass
class SegmentDetections(Detections):
    """Detections with their mask coefficients (det[:, 6:]), the image's prototypes, then its masks."""

    proto: torch.Tensor | None = None  # (nm, h, w) mask prototypes, until prepare() has made the masks
    masks: torch.Tensor | None = None  # (n, H, W) binary masks at the original image size


class SegmentationPredictor(DetectionPredictor):
    """Detection's loop and drawing, plus the mask coefficients of each box, masks overlaid and polygons in
    --save-txt."""

    def check_options(self) -> None:
        """Refuse --augment; --cam is detection's only; --visualize needs a .pt model."""
        opt = self.opt
        if opt.augment:
            raise ValueError("--augment (test-time augmentation) is not supported for segmentation models")
        if opt.cam:
            LOGGER.warning("WARNING --cam heatmaps are made for detection models only; ignored by segment/predict.py")
        if opt.visualize and not self.model.pt:
            LOGGER.warning(f"WARNING --visualize needs a PyTorch .pt model; ignored for {opt.weights}")
            opt.visualize = False
        self.cammer = None

    def postprocess(self, out: Any, x: torch.Tensor) -> list[SegmentDetections]:
        """NMS on boxes with mask coefficients; each image keeps its prototypes."""
        if not isinstance(out, (list, tuple)) or len(out) < 2 or out[1].ndim != 4:
            raise ValueError(f"{self.opt.weights} is not a segmentation model (no mask prototypes); use detect.py "
                             "for it")
        pred, proto = out[0], out[1]  # one coefficient per prototype follows each box's 6 columns (YOLOv5's 32)
        return [SegmentDetections(det, proto=proto[i]) for i, det in enumerate(self.nms(pred, nm=proto.shape[1]))]

    def prepare(self, result: SegmentDetections, x: torch.Tensor, shape: tuple[int, ...]) -> str:
        """Masks (--retina-masks: at the original resolution) and boxes at the original image size; class counts."""
        det, proto = result.det, result.proto
        result.proto = None  # not kept while the image waits for the writer
        if not len(det):
            return ""
        result.masks = masks_for_image(proto, det, x.shape[2:], shape, self.opt.retina_masks)
        return describe(det, self.names)

    def write_txt(self, result: SegmentDetections, file: Path, shape: tuple[int, ...]) -> None:
        """--save-txt: each mask's outline as a polygon label line."""
        write_polygons(file, result.det, result.masks, shape, self.opt.save_conf)

    def draw(self, result: SegmentDetections, annotator: Annotator) -> None:
        """The masks, the best on top, under detection's boxes and labels."""
        if len(result.det):
            mask_colors = [colors(int(c), True) for c in result.det[:, 5]]
            overlay_masks(annotator.im, result.masks.cpu().numpy()[::-1], mask_colors[::-1])
        super().draw(result, annotator)
