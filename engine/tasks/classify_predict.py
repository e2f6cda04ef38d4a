"""Classification's hooks into the predict loop: softmax, the top-5 classes logged, drawn and written."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.options import predict_parser
from engine.predictor import ImageDest, Predictor
from utils.classify_data import classify_transforms
from utils.plots import Annotator
from utils.sources import LoadImages, LoadStreams


def top5(prob: torch.Tensor) -> list[int]:
    """Indices of the five most probable classes (fewer when there are fewer), most probable first."""
    return prob.argsort(0, descending=True)[:5].tolist()


def draw_top5(im: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write the lines at the top-left, outlined, scaled down so that they fit images as small as 32 px."""
    h, w = im.shape[:2]
    annotator = Annotator(im)
    margin = max(2, round(min(h, w) * 0.04))
    widest = max(cv2.getTextSize(x, 0, 1.0, 1)[0][0] for x in lines)
    annotator.fs = min(annotator.fs, (w - 2 * margin) / widest, (h - 2 * margin) / len(lines) / 30)
    annotator.tf = max(1, min(annotator.tf, round(annotator.fs * 2)))
    step = 30 * annotator.fs  # a Hershey line is ~22 px tall at scale 1, plus spacing
    for k, line in enumerate(lines):
        xy = (margin, margin + k * step)
        annotator.tf += 1
        annotator.text(xy, line, txt_color=(0, 0, 0))  # outline: readable on light and dark backgrounds
        annotator.tf -= 1
        annotator.text(xy, line, txt_color=(255, 255, 255))
    return annotator.result()


class ClassificationPredictor(Predictor):
    """The shared predict loop with a classifier: softmax, the top-5 classes logged, drawn and written."""

    post_stage = "post-process"

    def load_source(self, source: str, webcam: bool):
        """Images center-cropped and normalised as in classification training."""
        loader = LoadStreams if webcam else LoadImages
        return loader(source, img_size=self.imgsz, transforms=classify_transforms(self.imgsz[0]),
                      vid_stride=self.opt.vid_stride)

    def postprocess(self, out: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
        """Class probabilities, one row per image."""
        return list(F.softmax(out.float(), dim=1))

    def prepare(self, prob: torch.Tensor, x: torch.Tensor, shape: tuple[int, ...]) -> str:
        """The top-5 classes with their probabilities."""
        return ", ".join(f"{self.names[j]} {prob[j]:.2f}" for j in top5(prob)) + ", "

    def render(self, prob: torch.Tensor, im: np.ndarray, dest: ImageDest, draw: bool) -> np.ndarray:
        """v7.0's top-5 lines ('0.93 circle') into --save-txt's file and onto the image."""
        lines = [f"{prob[j]:.2f} {self.names[j]}" for j in top5(prob)]
        if self.opt.save_txt:
            with open(dest.labels, "a") as fh:
                fh.write("\n".join(lines) + "\n")
        return draw_top5(im, lines) if draw else im


def detection_only_options(params) -> dict[str, tuple[str, object, str]]:
    """detect.py's options that a run() with these parameters lacks, as {dest: (flag, default, 'detection')}."""
    return {a.dest: (a.option_strings[0], a.default, "detection") for a in predict_parser()._actions
            if a.option_strings and a.dest not in params and a.dest != "help"}
