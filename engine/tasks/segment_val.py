"""The segmentation validator: the detection validator's loop with masks in the batch, mask-IoU matching, box and
mask metrics side by side, masks in the plots and run-length-encoded masks in the COCO JSON (scored as 'segm')."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.tasks.detect_val import DetectionValidator
from utils.coco_eval import save_one_json
from utils.metrics import match_predictions
from utils.plots import output_to_target
from utils.segment.dataloaders import create_dataloader
from utils.segment.general import mask_iou, process_mask, process_mask_native, scale_image
from utils.segment.metrics import Metrics, ap_per_class_box_and_mask
from utils.segment.plots import plot_images_and_masks


def gt_masks_for(masks: torch.Tensor, n_labels: int, overlap: bool) -> torch.Tensor:
    """One binary mask per label from an image's masks: (n, h, w) as they are, or decoded from an overlap map."""
    if not overlap:
        return masks.float()
    index = torch.arange(1, n_labels + 1, device=masks.device).view(-1, 1, 1)
    return (masks.repeat(n_labels, 1, 1) == index).float()


def match_masks(detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor, pred_masks: torch.Tensor,
                gt_masks: torch.Tensor) -> torch.Tensor:
    """Correct-at-each-IoU matrix by mask IoU; ground-truth masks are resized to the predicted masks' size first."""
    if gt_masks.shape[1:] != pred_masks.shape[1:]:
        gt_masks = F.interpolate(gt_masks[None], pred_masks.shape[1:], mode="bilinear", align_corners=False)[0]
        gt_masks = gt_masks.gt_(0.5)
    iou = mask_iou(gt_masks.view(gt_masks.shape[0], -1), pred_masks.view(pred_masks.shape[0], -1).float())
    return match_predictions(detections, labels, iouv, iou=iou)


class SegmentationValidator(DetectionValidator):
    """Boxes and masks: the detection loop plus the masks of each batch, matched by mask IoU as YOLOv5 v7.0 does.

    Extra args: overlap (one overlap map per image), mask_downsample_ratio and retina_masks (JSON masks from the
    prototypes at the original resolution).
    """

    header = ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)", "Mask(P", "R", "mAP50", "mAP50-95)")
    metric_names = ("P(B)", "R(B)", "mAP50(B)", "mAP50-95(B)", "P(M)", "R(M)", "mAP50(M)", "mAP50-95(M)")
    loss_names = ("box_loss", "seg_loss", "obj_loss", "cls_loss")
    iou_types = ("bbox", "segm")
    n_match = 2  # masks, then boxes: the order ap_per_class_box_and_mask takes them
    bf16_on_cpu = False  # --half on a CPU stays FP32: the mask ops are not checked in bf16
    create_dataloader = staticmethod(create_dataloader)

    def setup(self, backend) -> None:
        """The detection set-up, refusing test-time augmentation (forward() reads the mask coefficient count)."""
        if self.args.augment:
            raise ValueError("--augment (test-time augmentation) is not supported for segmentation models")
        super().setup(backend)

    def build_dataloader(self, path: str, stride: int, pad: float, rect: bool, **kwargs):
        """Images, labels and their masks at 1/mask_downsample_ratio."""
        a = self.args
        return super().build_dataloader(path, stride, pad, rect, overlap_mask=a.overlap,
                                        mask_downsample_ratio=a.mask_downsample_ratio)

    def preprocess(self, batch: tuple) -> dict:
        """The detection batch plus its masks, as floats on the device."""
        out = super().preprocess(batch)
        masks = batch[4].to(self.device) if self.cuda else batch[4]
        out["masks"] = masks.float()
        return out

    def forward(self, batch: dict) -> tuple:
        """Detections (with mask coefficients) for NMS; the prototypes join the batch for matching and plots."""
        out = self.model(batch["img"])
        batch["protos"] = out[1]
        self.nm = out[1].shape[1]  # one mask coefficient per prototype: an export says so only in its outputs
        return out[0], (out[2] if self.args.compute_loss else None)

    def batch_loss(self, train_out, batch: dict) -> torch.Tensor:
        """box, seg, obj, cls."""
        return self.args.compute_loss((train_out, batch["protos"]), batch["targets"], batch["masks"])[1]

    def init_metrics(self) -> None:
        """The detection counters; box and mask metrics, and the masks of the plotted batches."""
        super().init_metrics()
        self.metrics, self.plot_masks = Metrics(), []

    def update_metrics(self, preds: list[torch.Tensor], batch: dict) -> None:
        """The detection bookkeeping; the plotted predicted masks are collected per batch."""
        self.plot_masks = []
        super().update_metrics(preds, batch)

    def prepare_pred(self, si: int, pred: torch.Tensor, batch: dict) -> torch.Tensor:
        """Image si's predicted masks at the input size."""
        pred_masks = process_mask(batch["protos"][si], pred[:, 6:], pred[:, :4], shape=batch["img"][si].shape[1:])
        if self.args.plots and self.batch_i < 3:
            self.plot_masks.append(pred_masks[:15].cpu())
        return pred_masks

    def match(self, si: int, predn: torch.Tensor, labelsn: torch.Tensor, batch: dict, pred_masks) -> tuple:
        """Mask IoU, then box IoU."""
        a, masks, targets = self.args, batch["masks"], batch["targets"]
        gt_masks = gt_masks_for(masks[[si]] if a.overlap else masks[targets[:, 0] == si], len(labelsn), a.overlap)
        return (match_masks(predn, labelsn, self.iouv, pred_masks, gt_masks),
                match_predictions(predn, labelsn, self.iouv))

    def pred_to_json(self, si: int, pred: torch.Tensor, predn: torch.Tensor, path: Path, batch: dict,
                     pred_masks) -> None:
        """Boxes and RLE masks at the original image size."""
        im, (shape, ratio_pad) = batch["img"][si], batch["shapes"][si]
        if self.args.retina_masks:
            full = process_mask_native(batch["protos"][si], pred[:, 6:], predn[:, :4], shape)
            full = full.permute(1, 2, 0).cpu().numpy()
        else:
            up = F.interpolate(pred_masks[None].float(), im.shape[1:], mode="bilinear", align_corners=False)[0]
            full = scale_image(im.shape[1:], up.gt_(0.5).permute(1, 2, 0).cpu().numpy(), shape, ratio_pad)
        save_one_json(predn, self.jdict, path, self.class_map, full)

    def plot_batch(self, batch: dict, preds: list[torch.Tensor]) -> None:
        """Labels and predictions with their masks (the first 15 per image)."""
        im, paths, f = batch["img"], batch["paths"], self.save_dir / f"val_batch{self.batch_i}"
        plot_images_and_masks(im, batch["targets"], batch["masks"], paths, f"{f}_labels.jpg", self.names,
                              overlap=self.args.overlap)
        masks = torch.cat(self.plot_masks, 0) if self.plot_masks else torch.zeros(0, *batch["protos"].shape[2:])
        plot_images_and_masks(im, output_to_target(preds, max_det=15), masks, paths, f"{f}_pred.jpg", self.names)

    def update_ap(self, stats: list[np.ndarray]) -> None:
        """ap_per_class on mask matches and on box matches."""
        self.metrics.update(ap_per_class_box_and_mask(*stats, plot=self.args.plots, save_dir=self.save_dir,
                                                      names=self.names))

    def mean_results(self) -> tuple[float, ...]:
        """Box P, R, mAP50, mAP50-95, then the same of the masks."""
        return self.metrics.mean_results()

    def class_result(self, i: int) -> tuple[float, ...]:
        """Box then mask figures of the i-th class with labels."""
        return self.metrics.class_result(i)

    @property
    def ap_class_index(self):
        """Class ids with labels."""
        return self.metrics.ap_class_index

    def get_maps(self) -> np.ndarray:
        """Per-class box mAP50-95 plus mask mAP50-95, as YOLOv5 v7.0 keeps it."""
        return self.metrics.get_maps(self.nc)

    def val_end_args(self) -> tuple:
        """nt, the Metrics object and the confusion matrix."""
        return self.nt, self.metrics, self.confusion_matrix
