"""Validate a trained detector on a dataset: mAP, per-class metrics, speed, plots and COCO JSON.

Usage:
    $ python val.py --weights best.pt --data shapes.yaml --img 640
    $ python val.py --weights best.pt --data coco.yaml --save-json      # + COCOeval when pycocotools is installed
    $ python val.py --weights best.pt --data shapes.yaml --task speed   # timing only
    $ python val.py --weights best.pt --data shapes.yaml --task study   # mAP and speed over image sizes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision  # noqa: F401  loaded up front so its import time is not counted as NMS time

FILE = Path(__file__).resolve()
ROOT = FILE.parents[0]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from engine.options import parse_val_opt, val_parser  # noqa: E402
from engine.tasks.detect_val import DetectionValidator, save_one_txt  # noqa: E402, F401  YOLOv5's val.save_one_txt
from engine.validator import STUDY_SIZES, run_task  # noqa: E402
from engine.validator import study as study_sizes  # noqa: E402
from models.common import DetectMultiBackend  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.coco_eval import coco_evaluate, save_one_json  # noqa: E402, F401  YOLOv5's val.* names
from utils.coco_json import coco80_to_coco91_class  # noqa: E402, F401  YOLOv5's val.coco80_to_coco91_class
from utils.general import LOGGER, check_dataset, check_yaml, colorstr, set_logging  # noqa: E402, F401
from utils.metrics import match_predictions  # noqa: E402


def process_batch(detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor) -> torch.Tensor:
    """Correct-at-each-IoU matrix for detections [xyxy, conf, cls] against labels [cls, xyxy] (YOLOv5 name)."""
    return match_predictions(detections, labels, iouv)


def run(
    data,
    weights=None,  # model.pt path(s)
    batch_size: int = 32,
    imgsz: int = 640,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    task: str = "val",  # train, val, test, speed or study
    device: str = "",
    workers: int = 8,
    single_cls: bool = False,
    augment: bool = False,
    verbose: bool = False,
    save_txt: bool = False,
    save_hybrid: bool = False,  # save label+prediction hybrid results to *.txt
    save_conf: bool = False,
    save_json: bool = False,
    project=ROOT / "runs/val",
    name: str = "exp",
    exist_ok: bool = False,
    half: bool | None = None,  # None: FP16 on CUDA, FP32 on CPU; True on CPU: bf16 where the CPU has it
    dnn: bool = False,
    model=None,
    dataloader=None,
    save_dir=Path(""),
    plots: bool = True,
    callbacks: Callbacks = Callbacks(),
    compute_loss=None,
):
    """Validate; returns ((P, R, mAP50, mAP50-95, box, obj, cls losses), per-class mAP50-95, (pre, inf, NMS) ms)."""
    return DetectionValidator(dict(locals()))(DetectMultiBackend)  # locals(): exactly the arguments above


def study(opt: argparse.Namespace, sizes: tuple[int, ...] = STUDY_SIZES) -> Path:
    """--task study: validate every weight at each image size; writes study_<data>_<weights>.csv and study.png."""
    return study_sizes(run, opt, DetectionValidator.study_columns(), sizes)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options, as YOLOv5 v7.0 val.py."""
    return val_parser()


def parse_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse val.py's options (or those of parser), resolving the data YAML and the options that imply others."""
    return parse_val_opt(argv, parser)


def main(opt: argparse.Namespace):
    """Dispatch on --task: a validation run, a speed run per weight, or an image-size study."""
    set_logging()
    LOGGER.info(colorstr("val: ") + ", ".join(f"{k}={v}" for k, v in vars(opt).items()))
    return run_task(opt, run, study)


if __name__ == "__main__":
    main(parse_opt())
