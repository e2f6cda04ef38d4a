"""Train a YOLOv5 segmentation model: the engine's Trainer with masks in the data, the loss and the validation.

Usage:
    python segment/train.py --cfg yolov5n-seg-csppc.yaml --data shapes-seg.yaml --img 320 --epochs 30
    python segment/train.py --weights yolov5s-seg.pt --data shapes-seg.yaml       # fine-tune
    torchrun --nproc_per_node 2 segment/train.py --cfg yolov5n-seg.yaml --data shapes-seg.yaml --batch-size 32
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
from engine.tasks.segment import SEGMENT  # noqa: E402
from utils.general import set_logging  # noqa: E402


def parse_opt(known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """train.py's options, a segmentation model and dataset by default, plus the mask options of YOLOv5 v7.0."""
    return SEGMENT.parse_opt(known, argv)


def main(opt: argparse.Namespace, callbacks=None):
    """The engine's training run with the segmentation task."""
    return runner.main(opt, SEGMENT, callbacks)


def run(**kwargs) -> argparse.Namespace:
    """Train from Python: run(data='shapes-seg.yaml', cfg='yolov5n-seg-csppc.yaml', imgsz=320, epochs=10)."""
    return runner.run_task(SEGMENT, **kwargs)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
