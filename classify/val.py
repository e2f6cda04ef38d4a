"""Validate a YOLOv5 classifier on an ImageFolder dataset: top-1 and top-5 accuracy, overall and per class.

Usage:
    python classify/val.py --weights runs/train-cls/exp/weights/best.pt --data shapes-cls --img 64
    python classify/val.py --weights best.onnx --data path/to/imagefolder   # .torchscript, _openvino_model/ alike
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: the repository's packages, not this folder's modules
    sys.path.insert(0, str(ROOT))

from engine.options import classify_val_parser, parse_predict_opt  # noqa: E402
from engine.tasks.classify_val import ClassificationValidator, print_table, topk_correct  # noqa: E402, F401
from models.backends import DetectMultiBackend  # noqa: E402
from utils.general import print_args, set_logging  # noqa: E402


def run(data: str | Path = "shapes-cls", weights: str | Path | None = None, batch_size: int = 128, imgsz: int = 224,
        device: str = "", workers: int = 8, verbose: bool = False, project: str | Path = ROOT / "runs/val-cls",
        name: str = "exp", exist_ok: bool = False, half: bool = False, dnn: bool = False, model=None,
        dataloader=None, criterion=None, pbar=None) -> tuple[float, float, float]:
    """Top-1 and top-5 accuracy and the mean loss (with criterion) of weights, or of a model in training."""
    return ClassificationValidator(dict(locals()))(DetectMultiBackend)  # locals(): exactly the arguments above


def main(opt: argparse.Namespace) -> tuple[float, float, float]:
    """Echo the flags, then validate."""
    print_args(vars(opt))
    return run(**vars(opt))


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """YOLOv5 v7.0's classify/val.py options."""
    return parse_predict_opt(argv, classify_val_parser())


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
