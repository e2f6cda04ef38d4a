"""Validate a trained segmentation model: box and mask P, R, mAP per class, speed, plots and COCO JSON.

Usage:
    $ python segment/val.py --weights best.pt --data shapes-seg.yaml --img 320
    $ python segment/val.py --weights best.pt --data coco128-seg.yaml --save-json  # + COCOeval bbox and segm
    $ python segment/val.py --weights best.pt --data shapes-seg.yaml --task speed   # timing only
    $ python segment/val.py --weights best.pt --data shapes-seg.yaml --task study   # box/mask mAP over image sizes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: the repository's packages, not this folder's modules
    sys.path.insert(0, str(ROOT))

from engine.options import parse_val_opt, val_parser  # noqa: E402
from engine.tasks.detect_val import val_args  # noqa: E402
from engine.tasks.segment_val import (  # noqa: E402, F401  gt_masks_for, match_masks, save_one_json: YOLOv5 names
    SegmentationValidator,
    gt_masks_for,
    match_masks,
    save_one_json,
)
from engine.validator import STUDY_SIZES, run_task  # noqa: E402
from engine.validator import study as study_sizes  # noqa: E402
from models.backends import DetectMultiBackend  # noqa: E402
from utils.general import print_args, set_logging  # noqa: E402


def run(data, weights=None, project=ROOT / "runs/val-seg", half: bool = True, overlap: bool = False,
        mask_downsample_ratio: int = 1, retina_masks: bool = False, **kwargs):
    """val.run's arguments (names and defaults; a segmentation run folder, FP16 on CUDA) plus the mask options.

    Returns ((box P, R, mAP50, mAP50-95, mask P, R, mAP50, mAP50-95, box, seg, obj, cls losses), per-class maps,
    (pre-process, inference, NMS) ms). An argument val.run does not take raises TypeError, as in a call to it.
    """
    args = val_args(data, weights=weights, project=project, half=half, **kwargs)
    masks = {"overlap": overlap, "mask_downsample_ratio": mask_downsample_ratio, "retina_masks": retina_masks}
    return SegmentationValidator({**args, **masks})(DetectMultiBackend)


def study(opt: argparse.Namespace, sizes: tuple[int, ...] = STUDY_SIZES) -> Path:
    """--task study: box and mask mAP and speed of every weight at each image size, into study_*.csv and study.png."""
    return study_sizes(run, opt, SegmentationValidator.study_columns(), sizes)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """val.py's options with a segmentation dataset and run folder by default, plus --retina-masks."""
    parser = val_parser()
    parser.set_defaults(data=ROOT / "data/shapes-seg.yaml", weights=ROOT / "yolov5s-seg.pt",
                        project=ROOT / "runs/val-seg")
    parser.add_argument("--retina-masks", action="store_true", help="masks at the original image resolution")
    return parse_val_opt(argv, parser)


def main(opt: argparse.Namespace):
    """Dispatch on --task: a validation run, a speed run per weight, or an image-size study."""
    set_logging()
    print_args(vars(opt))
    return run_task(opt, run, study)


if __name__ == "__main__":
    main(parse_opt())
