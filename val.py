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

from models.common import DetectMultiBackend  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.coco_eval import coco_evaluate, save_one_json  # noqa: E402, F401  YOLOv5's val.* names
from utils.coco_json import coco80_to_coco91_class  # noqa: E402, F401  YOLOv5's val.coco80_to_coco91_class
from utils.general import LOGGER, check_dataset, check_yaml, colorstr, set_logging  # noqa: E402, F401
from utils.metrics import match_predictions  # noqa: E402
from utils.validator import (  # noqa: E402, F401  save_one_txt: YOLOv5's val.save_one_txt
    STUDY_SIZES,
    DetectionValidator,
    run_task,
    save_one_txt,
)
from utils.validator import study as study_sizes  # noqa: E402


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
    """Command-line options, as YOLOv5 v7.0 val.py; segment/val.py adds to them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=str, default=ROOT / "data/shapes.yaml", help="dataset YAML to score on")
    parser.add_argument("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt", help="model file(s) to score")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=640, help="square input side, in px")
    parser.add_argument("--conf-thres", type=float, default=0.001, help="lowest confidence scored (low for mAP)")
    parser.add_argument("--iou-thres", type=float, default=0.6, help="IoU above which NMS drops the weaker box")
    parser.add_argument("--max-det", type=int, default=300, help="keep at most this many detections per image")
    parser.add_argument("--task", default="val", help="train, val or test split; or speed, study")
    parser.add_argument("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    parser.add_argument("--workers", type=int, default=8, help="dataloader worker processes (at most)")
    parser.add_argument("--single-cls", action="store_true", help="score every class as one")
    parser.add_argument("--augment", action="store_true", help="test-time flips and rescales, merged")
    parser.add_argument("--verbose", action="store_true", help="print the metrics of each class")
    parser.add_argument("--save-txt", action="store_true", help="write predictions as YOLO label files")
    parser.add_argument("--save-hybrid", action="store_true", help="write labels plus predictions (inflates mAP)")
    parser.add_argument("--save-conf", action="store_true", help="add the confidence to each --save-txt line")
    parser.add_argument("--save-json", action="store_true", help="write predictions to a COCO-format JSON file")
    parser.add_argument("--project", default=ROOT / "runs/val", help="folder that holds the run folders")
    parser.add_argument("--name", default="exp", help="run folder name under --project, numbered when taken")
    parser.add_argument("--exist-ok", action="store_true", help="reuse --project/--name, no new number")
    parser.add_argument("--half", action="store_true", help="FP16 inference on CUDA; bf16 on CPUs that have it")
    parser.add_argument("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    return parser


def parse_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse val.py's options (or those of parser), resolving the data YAML and the options that imply others."""
    opt = (parser or build_parser()).parse_args(argv)
    opt.data = check_yaml(opt.data)
    opt.save_json |= opt.data.endswith("coco.yaml")
    opt.save_txt |= opt.save_hybrid
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


def main(opt: argparse.Namespace):
    """Dispatch on --task: a validation run, a speed run per weight, or an image-size study."""
    set_logging()
    LOGGER.info(colorstr("val: ") + ", ".join(f"{k}={v}" for k, v in vars(opt).items()))
    return run_task(opt, run, study)


if __name__ == "__main__":
    main(parse_opt())
