"""Classify images, videos, folders, globs and streams with a YOLOv5 classifier; label each with its top-5 classes.

Usage - sources:
    python classify/predict.py --weights best.pt --source img.jpg      # image; also vid.mp4, path/, 'path/*.jpg', 0

Usage - formats:
    python classify/predict.py --weights best.pt                 # PyTorch
                                         best.torchscript        # TorchScript
                                         best.onnx               # ONNX Runtime or OpenCV DNN with --dnn
                                         best_openvino_model     # OpenVINO
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: `import train` / `import detect` must find the root scripts, not ours
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import detect  # noqa: E402
from utils.classify_data import classify_transforms  # noqa: E402
from utils.general import LOGGER, inactive_options, print_args, set_logging  # noqa: E402
from utils.plots import Annotator  # noqa: E402
from utils.predictor import ImageDest, Predictor  # noqa: E402
from utils.sources import LoadImages, LoadStreams  # noqa: E402
from utils.torch_utils import smart_inference_mode  # noqa: E402


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


@smart_inference_mode()
def run(weights: str | Path = ROOT / "yolov5s-cls.pt", source: str | Path = ROOT / "data/images",
        data: str | Path | None = None, imgsz: tuple[int, int] = (224, 224), device: str = "", view_img: bool = False,
        save_txt: bool = False, nosave: bool = False, augment: bool = False, visualize: bool = False,
        update: bool = False, project: str | Path = ROOT / "runs/predict-cls", name: str = "exp",
        exist_ok: bool = False, half: bool = False, dnn: bool = False, vid_stride: int = 1, prefetch: bool = True,
        **detection) -> Path:
    """Classify every image or frame of source; returns the run folder (prefetch: as in detect.run).

    detection takes detect.py's box options (the parser is shared): accepted, reported when set, otherwise unused.
    """
    unused = inactive_options(detection, detection_only_options(), "a classifier has no boxes")
    if unused:
        LOGGER.warning(unused)
    if augment or visualize:
        LOGGER.warning("WARNING --augment and --visualize have no classification form; ignored")
        augment = visualize = False
    return detect.predict(ClassificationPredictor, locals())


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then classify."""
    print_args(vars(opt))  # names this script in its line
    return run(**vars(opt))


def detection_only_options() -> dict[str, tuple[str, object, str]]:
    """detect.py's options that run() has no parameter for, as {dest: (flag, default, 'detection')}."""
    params = inspect.signature(run).parameters
    return {a.dest: (a.option_strings[0], a.default, "detection") for a in detect.build_parser()._actions
            if a.option_strings and a.dest not in params and a.dest != "help"}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """detect.py's flags (one parser for every predictor) with a classifier's defaults: 224 px, runs/predict-cls."""
    parser = detect.build_parser("Classify images with a YOLOv5 classifier")
    parser.set_defaults(weights=ROOT / "yolov5s-cls.pt", imgsz=[224], project=ROOT / "runs/predict-cls")
    return detect.parse_opt(argv, parser)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
