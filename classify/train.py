"""Train a YOLOv5 classifier on an ImageFolder dataset (train/ and val/, one folder per class).

Usage - single process:
    python classify/train.py --model yolov5n-csppc.yaml --data shapes-cls --img 64 --epochs 10   # from scratch
    python classify/train.py --model runs/train-cls/exp/weights/best.pt --data path/to/imagefolder  # fine-tune
    python classify/train.py --model resnet18 --data shapes-cls     # torchvision; weights only if cached locally

Usage - distributed:
    torchrun --nproc_per_node 2 classify/train.py --model yolov5n.yaml --data shapes-cls --batch-size 128
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: the repository's packages, not this folder's modules
    sys.path.insert(0, str(ROOT))

from engine import runner  # noqa: E402
from engine.tasks.classify import (  # noqa: E402, F401  the model builders and keys, as classify/train.py's names
    CLASSIFY,
    LRF,
    RESULTS_KEYS,
    build_model,
    check_model_name,
    reshape_classifier_output,
)
from engine.trainer import Trainer  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.general import set_logging  # noqa: E402


def train(opt: argparse.Namespace, device, callbacks: Callbacks) -> tuple[float, float, float]:
    """Train a classifier with prepared options on device; returns the best model's (top1, top5, val loss)."""
    return Trainer(CLASSIFY, opt, device, callbacks)()


def parse_opt(known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """YOLOv5 v7.0's classify/train.py options (defaults that run offline: a CSPPC YAML on shapes-cls)."""
    return CLASSIFY.parse_opt(known, argv)


def main(opt: argparse.Namespace, callbacks: Callbacks | None = None) -> tuple[float, float, float]:
    """Check options, set up DDP when launched by torchrun, then train; the best model's (top1, top5, val loss)."""
    return runner.main(opt, CLASSIFY, callbacks)


def run(**kwargs) -> argparse.Namespace:
    """Train from Python: run(model='yolov5n-csppc.yaml', data='shapes-cls', imgsz=64, epochs=5)."""
    return runner.run_task(CLASSIFY, **kwargs)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
