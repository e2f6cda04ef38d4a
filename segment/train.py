"""Train a YOLOv5 segmentation model: train.py's loop with masks in the data, the loss and the validation.

Usage:
    python segment/train.py --cfg yolov5n-seg-csppc.yaml --data shapes-seg.yaml --img 320 --epochs 30
    python segment/train.py --weights yolov5s-seg.pt --data shapes-seg.yaml       # fine-tune
    torchrun --nproc_per_node 2 segment/train.py --cfg yolov5n-seg.yaml --data shapes-seg.yaml --batch-size 32
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: `import val` / `import train` must find the root scripts, not this folder's
    sys.path.insert(0, str(ROOT))

import train as detect_train  # noqa: E402
from models.yolo import SegmentationModel  # noqa: E402
from segment import val as validate  # noqa: E402
from utils.general import set_logging  # noqa: E402
from utils.segment.dataloaders import create_dataloader  # noqa: E402
from utils.segment.loss import ComputeLoss  # noqa: E402
from utils.segment.metrics import KEYS, fitness  # noqa: E402


def parse_opt(known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """train.py's options, a segmentation model and dataset by default, plus the mask options of YOLOv5 v7.0."""
    parser = detect_train.build_parser()
    parser.set_defaults(data="shapes-seg.yaml", project=str(ROOT / "runs/train-seg"))
    parser.add_argument("--mask-ratio", type=int, default=4, help="train on masks at 1/mask-ratio of the image size")
    parser.add_argument("--no-overlap", action="store_true",
                        help="one mask per instance instead of one overlap map per image (more memory)")
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def _loader(opt):
    return functools.partial(create_dataloader, mask_downsample_ratio=opt.mask_ratio, overlap_mask=not opt.no_overlap)


def _validator(opt):
    return functools.partial(validate.run, mask_downsample_ratio=opt.mask_ratio, overlap=not opt.no_overlap)


SEGMENT = detect_train.TrainTask(
    name="segment",
    model_cls=SegmentationModel,
    loss_names=("box_loss", "seg_loss", "obj_loss", "cls_loss"),
    result_keys=tuple(KEYS),
    make_loss=lambda model, opt: ComputeLoss(model, overlap=not opt.no_overlap),
    create_dataloader=_loader,
    validate=_validator,
    fitness=fitness,
    parse_opt=parse_opt,
    scripts=("segment/val.py", "segment/predict.py"),
)


def main(opt: argparse.Namespace, callbacks=None) -> None:
    """train.py's main with the segmentation task."""
    detect_train.main(opt, callbacks, task=SEGMENT)


def run(**kwargs) -> argparse.Namespace:
    """Train from Python: run(data='shapes-seg.yaml', cfg='yolov5n-seg-csppc.yaml', imgsz=320, epochs=10)."""
    return detect_train.run_task(SEGMENT, **kwargs)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
