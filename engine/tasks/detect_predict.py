"""Detection's hooks into the predict loop: NMS, class counts in the log line, boxes, label lines, crops, --cam."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engine.predictor import ImageDest, PredictOptions, Predictor
from utils.cam import DetectionCAM, overlay_cam, unletterbox
from utils.general import LOGGER, non_max_suppression, scale_boxes, xyxy2xywh
from utils.plots import Annotator, colors, save_one_box


def describe(det: torch.Tensor, names: dict) -> str:
    """Counts per class in class order, as '2 circles, 1 square, '."""
    counts = Counter(int(c) for c in det[:, 5].tolist())  # plain Python: cheaper than tensor ops for a few boxes
    return "".join(f"{n} {names[c]}{'s' * (n > 1)}, " for c, n in sorted(counts.items()))


def write_labels(txt_file: Path, det: torch.Tensor, shape: tuple[int, ...], save_conf: bool) -> None:
    """Append one 'class x y w h [conf]' line per detection, normalised by the image width/height."""
    gn = torch.tensor(shape)[[1, 0, 1, 0]]
    xywh = (xyxy2xywh(det[:, :4].float().cpu()) / gn).tolist()  # elementwise: the same floats as box by box
    with open(txt_file, "a") as f:
        for b, (conf, cls) in zip(xywh, det[:, 4:6].tolist()):
            line = (int(cls), *b, conf) if save_conf else (int(cls), *b)
            f.write(("%g " * len(line)).rstrip() % line + "\n")


@dataclasses.dataclass
class Detections:
    """One image's detections on their way through the hooks."""

    det: torch.Tensor  # (n, 6 + extra): xyxy, conf, cls; xyxy in input pixels until prepare() scales them
    heat: torch.Tensor | None = None  # (h, w) --cam heatmap at the input size, in [0, 1]


class DetectionPredictor(Predictor):
    """Boxes: NMS, the class counts in the log line, boxes and labels drawn, YOLO label lines, crops, --cam."""

    def __init__(self, model, opt: PredictOptions):
        super().__init__(model, opt)
        self.check_options()

    def check_options(self) -> None:
        """Warn about options this model cannot honour, and turn them off."""
        opt, pt = self.opt, self.model.pt
        if (opt.augment or opt.visualize) and not pt:
            LOGGER.warning(f"WARNING --augment and --visualize need a PyTorch .pt model; ignored for {opt.weights}")
            opt.augment = opt.visualize = False
        if opt.cam and not pt:
            LOGGER.warning(f"WARNING --cam needs a PyTorch .pt model; ignored for {opt.weights}")
        self.cammer = DetectionCAM(self.model.model, opt.cam, opt.cam_layer, opt.conf_thres) if opt.cam and pt else None

    def nms(self, pred: torch.Tensor, nm: int = 0) -> list[torch.Tensor]:
        """non_max_suppression with the run's thresholds, classes and limits."""
        o = self.opt
        return non_max_suppression(pred, o.conf_thres, o.iou_thres, o.classes, o.agnostic_nms, max_det=o.max_det,
                                   nm=nm)

    def postprocess(self, out: Any, x: torch.Tensor) -> list[Detections]:
        """NMS."""
        return [Detections(det) for det in self.nms(out)]

    def after_batch(self, results: list[Detections], x: torch.Tensor, mode: str) -> None:
        """--cam: one heatmap per image of the batch."""
        if self.cammer and mode == "image":
            for r, heat in zip(results, self.cammer(x)):
                r.heat = heat

    def prepare(self, result: Detections, x: torch.Tensor, shape: tuple[int, ...]) -> str:
        """Boxes scaled from the letterboxed input to the original image; the class counts."""
        det = result.det
        if not len(det):
            return ""
        det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], shape).round()
        return describe(det, self.names)

    def empty_note(self, result: Detections) -> str:
        """'(no detections), ' after an image without any."""
        return "" if len(result.det) else "(no detections), "

    def write_txt(self, result: Detections, file: Path, shape: tuple[int, ...]) -> None:
        """--save-txt: one label line per detection."""
        write_labels(file, result.det, shape, self.opt.save_conf)

    def draw(self, result: Detections, annotator: Annotator) -> None:
        """Box and label of each detection, the least confident first (the best on top)."""
        o = self.opt
        for *xyxy, conf, cls in reversed(result.det[:, :6].tolist()):
            c = int(cls)
            label = None if o.hide_labels else (self.names[c] if o.hide_conf else f"{self.names[c]} {conf:.2f}")
            annotator.box_label(xyxy, label or "", color=colors(c, True))

    def render(self, result: Detections, im: np.ndarray, dest: ImageDest, draw: bool) -> np.ndarray:
        """Label lines, crops cut from the undrawn image, then the boxes drawn and --cam's overlay saved."""
        det = result.det
        if self.opt.save_txt and len(det):
            self.write_txt(result, dest.labels, im.shape)
        if self.opt.save_crop:  # in v7.0's order, so that increment_path numbers the crops alike
            for *xyxy, _, cls in reversed(det[:, :6].tolist()):
                save_one_box(xyxy, im, file=self.save_dir / "crops" / self.names[int(cls)] / f"{dest.source.stem}.jpg",
                             BGR=True)
        if not draw:
            return im
        lw = max(round(self.opt.line_thickness * max(im.shape[:2]) / 640), 1)  # --line-thickness is for 640 px
        annotator = Annotator(im, line_width=lw, example=str(self.names))
        self.draw(result, annotator)
        im = annotator.result()
        if result.heat is not None and self.save_img:
            heat = unletterbox(result.heat, im.shape)
            cv2.imwrite(str(dest.image.with_name(f"{dest.source.stem}_cam.jpg")), overlay_cam(im, heat))
        return im
