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
if str(ROOT) not in sys.path[:1]:  # first: the repository's packages, not this folder's modules
    sys.path.insert(0, str(ROOT))

from engine.options import parse_predict_opt, predict_parser  # noqa: E402
from engine.predictor import predict  # noqa: E402
from engine.tasks.classify_predict import ClassificationPredictor, draw_top5, top5  # noqa: E402, F401
from engine.tasks.classify_predict import detection_only_options as box_options  # noqa: E402
from utils.general import LOGGER, inactive_options, print_args, set_logging  # noqa: E402
from utils.torch_utils import smart_inference_mode  # noqa: E402


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
    return predict(ClassificationPredictor, locals())


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then classify."""
    print_args(vars(opt))  # names this script in its line
    return run(**vars(opt))


def detection_only_options() -> dict[str, tuple[str, object, str]]:
    """detect.py's options that run() has no parameter for, as {dest: (flag, default, 'detection')}."""
    return box_options(inspect.signature(run).parameters)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """detect.py's flags (one parser for every predictor) with a classifier's defaults: 224 px, runs/predict-cls."""
    parser = predict_parser("Classify images with a YOLOv5 classifier")
    parser.set_defaults(weights=ROOT / "yolov5s-cls.pt", imgsz=[224], project=ROOT / "runs/predict-cls")
    return parse_predict_opt(argv, parser)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
