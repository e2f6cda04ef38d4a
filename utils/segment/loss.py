"""Segmentation training loss: the detection loss plus a per-instance mask BCE inside each target's box."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.general import xywh2xyxy
from utils.loss import ComputeLoss as DetectionLoss
from utils.segment.general import crop_mask
from utils.torch_utils import de_parallel


class ComputeLoss(DetectionLoss):
    """Loss of a SegmentationModel's training outputs (levels, prototypes) against targets and masks.

    masks are (n_targets, h, w) binary masks, one per target row, or with overlap=True (batch, h, w) maps in which
    pixel value k marks the image's k-th target (1-based) and 0 the background.
    """

    def __init__(self, model: nn.Module, autobalance: bool = False, overlap: bool = False):
        super().__init__(model, autobalance)
        self.overlap = overlap
        self.nm = de_parallel(model).model[-1].nm

    def __call__(self, preds, targets: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (total loss times batch size, detached [box, seg, obj, cls])."""
        p, proto = preds
        bs, _, mh, mw = proto.shape
        tcls, tbox, indices, anchors, tidxs, xywhn = self.assign_targets(p, targets, self._target_ids(targets, bs))
        if tuple(masks.shape[-2:]) != (mh, mw):  # masks come at 1/mask_ratio of the image; prototypes may differ
            masks = F.interpolate(masks[None].float(), (mh, mw), mode="nearest")[0]
        lseg = torch.zeros(1, device=self.device)
        scale = torch.tensor([mw, mh, mw, mh], device=self.device)

        def mask_loss(i, b, ps):
            nonlocal lseg
            pmask = ps[:, 5 + self.nc :]
            area = xywhn[i][:, 2:].prod(1)  # normalised box area: small objects weigh as much as large ones
            boxes = xywh2xyxy(xywhn[i] * scale)
            for bi in b.unique():
                j = b == bi
                if self.overlap:
                    gt = (masks[bi][None] == tidxs[i][j].view(-1, 1, 1)).float()
                else:
                    gt = masks[tidxs[i]][j].float()
                lseg = lseg + self.single_mask_loss(gt, pmask[j], proto[bi], boxes[j], area[j])

        lbox, lobj, lcls = self.detection_losses(p, tcls, tbox, indices, anchors, extra=mask_loss)
        lseg = lseg * self.hyp["box"] / bs
        return (lbox + lobj + lcls + lseg) * bs, torch.cat((lbox, lseg, lobj, lcls)).detach()

    def _target_ids(self, targets: torch.Tensor, bs: int) -> torch.Tensor:
        """The id of each target's mask: its row, or with overlap its 1-based rank within its image."""
        if not self.overlap:
            return torch.arange(targets.shape[0], device=self.device)
        ids = torch.zeros(targets.shape[0], device=self.device)
        for i in range(bs):
            j = targets[:, 0] == i
            ids[j] = torch.arange(1, int(j.sum()) + 1, device=self.device, dtype=ids.dtype)
        return ids

    def single_mask_loss(self, gt_mask: torch.Tensor, pred: torch.Tensor, proto: torch.Tensor, xyxy: torch.Tensor,
                         area: torch.Tensor) -> torch.Tensor:
        """Mean BCE of one image's predicted masks (coefficients @ prototypes) inside their boxes, over box area."""
        pred_mask = (pred @ proto.view(self.nm, -1)).view(-1, *proto.shape[1:])
        loss = F.binary_cross_entropy_with_logits(pred_mask, gt_mask, reduction="none")
        return (crop_mask(loss, xyxy).mean(dim=(1, 2)) / area).mean()
