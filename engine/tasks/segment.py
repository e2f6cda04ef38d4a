"""Segmentation's training hooks: detection's, with masks in the data, the loss, the batch images and the validation."""

from __future__ import annotations

import argparse
import functools

import numpy as np

from engine.options import parse, segment_train_parser
from engine.tasks.detect import DetectTask
from engine.tasks.segment_val import SegmentationValidator
from models.yolo import SegmentationModel
from utils.general import ROOT
from utils.plots import SEGMENT_PANELS
from utils.segment.dataloaders import create_dataloader
from utils.segment.loss import ComputeLoss
from utils.segment.metrics import KEYS, fitness
from utils.segment.plots import plot_images_and_masks


class SegmentTask(DetectTask):
    """Boxes and masks: YOLOv5 v7.0's segment/train.py."""

    name = "segment"
    model_cls = SegmentationModel
    validator = SegmentationValidator
    loss_names = ("box_loss", "seg_loss", "obj_loss", "cls_loss")
    result_keys = tuple(KEYS)
    panels = SEGMENT_PANELS
    scripts = ("segment/val.py", "segment/predict.py")
    default_project = ROOT / "runs/train-seg"

    def parse_opt(self, known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
        """segment/train.py's options."""
        return parse(segment_train_parser(), known, argv)

    def make_loss(self, model, opt: argparse.Namespace):
        """Box and mask loss; masks as one overlap map per image unless --no-overlap."""
        return ComputeLoss(model, overlap=not opt.no_overlap)

    def create_dataloader(self, opt: argparse.Namespace):
        """Images, labels and masks at 1/--mask-ratio."""
        return functools.partial(create_dataloader, mask_downsample_ratio=opt.mask_ratio,
                                 overlap_mask=not opt.no_overlap)

    def validator_args(self, opt: argparse.Namespace) -> dict:
        """The masks' layout and resolution, as the loader makes them."""
        return {"mask_downsample_ratio": opt.mask_ratio, "overlap": not opt.no_overlap, "retina_masks": False}

    def plot_train_batch(self, opt: argparse.Namespace):
        """Training batches drawn with their masks (per target, or one overlap map per image)."""
        overlap = not opt.no_overlap

        def plot(imgs, targets, paths, file, masks):
            plot_images_and_masks(imgs, targets, masks, paths, file, overlap=overlap)

        return plot

    def fitness(self, results: tuple) -> float:
        """Box and mask mAP50 and mAP50-95, weighted as v7.0 does."""
        return float(fitness(np.array(results).reshape(1, -1))[0])


SEGMENT = SegmentTask()
