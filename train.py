"""Train a YOLOv5 model on a detection dataset, on one device or distributed.

Usage - single process:
    python train.py --cfg yolov5n-csppc.yaml --data shapes.yaml --imgsz 320 --epochs 30
    python train.py --weights yolov5n.pt --data shapes.yaml            # fine-tune (transfer matching tensors)
    python train.py --resume                                           # continue the latest interrupted run

Usage - distributed (DDP: NCCL on CUDA, gloo on CPU):
    torchrun --nproc_per_node 2 train.py --cfg yolov5n.yaml --data shapes.yaml --batch-size 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[0]
if str(ROOT) not in sys.path:  # run as a script from another folder
    sys.path.append(str(ROOT))

from engine import runner  # noqa: E402
from engine.options import INACTIVE, parse  # noqa: E402, F401  INACTIVE: v7.0's unused flags, as train.INACTIVE
from engine.options import train_parser as build_parser  # noqa: E402
from engine.runner import evolve, resume_options  # noqa: E402, F401  train.evolve, train.resume_options
from engine.tasks.detect import DETECT, load_model  # noqa: E402, F401  load_model: train.load_model
from engine.trainer import Trainer, TrainTask  # noqa: E402, F401  TrainTask: train.TrainTask
from models.yolo import Model  # noqa: E402, F401  train.Model, as YOLOv5 code imports it
from utils.callbacks import Callbacks  # noqa: E402
from utils.general import set_logging  # noqa: E402


def train(hyp: dict | str, opt: argparse.Namespace, device, callbacks: Callbacks, task: TrainTask | None = None):
    """v7.0's train(hyp, opt, device, callbacks): one training run with these hyperparameters; the final results."""
    opt.hyp = hyp
    return Trainer(task or DETECT, opt, device, callbacks)()


def parse_opt(known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of train.py."""
    return parse(build_parser(), known, argv)


def main(opt: argparse.Namespace, callbacks: Callbacks | None = None):
    """Check options, set up DDP when launched by torchrun, then train (or evolve hyperparameters)."""
    return runner.main(opt, DETECT, callbacks)


def run(**kwargs) -> argparse.Namespace:
    """Train from Python: run(data='shapes.yaml', cfg='yolov5n-csppc.yaml', imgsz=320, epochs=10)."""
    return runner.run_task(DETECT, **kwargs)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
