"""YOLOv5 training loss: target-to-anchor assignment, CIoU box loss, objectness and class BCE."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from utils.metrics import bbox_iou
from utils.torch_utils import de_parallel


def smooth_BCE(eps: float = 0.1) -> tuple[float, float]:
    """Positive and negative BCE targets under label smoothing eps: 1 - eps/2 and eps/2."""
    return 1.0 - 0.5 * eps, 0.5 * eps


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) around a BCEWithLogitsLoss: down-weights easy examples by (1 - p_t)^gamma."""

    def __init__(self, loss_fcn: nn.BCEWithLogitsLoss, gamma: float = 1.5, alpha: float = 0.25):
        super().__init__()
        self.loss_fcn = loss_fcn
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = loss_fcn.reduction
        self.loss_fcn.reduction = "none"  # the focal weights apply per element, before reducing

    def forward(self, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fcn(pred, true)
        p = torch.sigmoid(pred)
        p_t = true * p + (1 - true) * (1 - p)
        alpha_factor = true * self.alpha + (1 - true) * (1 - self.alpha)
        loss = loss * alpha_factor * (1.0 - p_t) ** self.gamma
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


class ComputeLoss:
    """Loss of a DetectionModel's training-mode outputs against (n, 6) targets [image, class, x, y, w, h]."""

    sort_obj_iou = False  # YOLOv5 option: let the highest-IoU target win a cell shared by several targets

    def __init__(self, model: nn.Module, autobalance: bool = False):
        device = next(model.parameters()).device
        h = model.hyp if hasattr(model, "hyp") else de_parallel(model).hyp  # set on the wrapper or on the model
        self.hyp = h
        bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([h["cls_pw"]], device=device))
        bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([h["obj_pw"]], device=device))
        self.cp, self.cn = smooth_BCE(eps=h.get("label_smoothing", 0.0))
        g = h.get("fl_gamma", 0.0)
        if g > 0:
            bce_cls, bce_obj = FocalLoss(bce_cls, g), FocalLoss(bce_obj, g)
        self.BCEcls, self.BCEobj = bce_cls, bce_obj

        m = de_parallel(model).model[-1]  # Detect
        # Objectness weight per level: the many small-stride cells would otherwise dominate
        self.balance = {3: [4.0, 1.0, 0.4]}.get(m.nl, [4.0, 1.0, 0.25, 0.06, 0.02])
        self.ssi = list(m.stride).index(16) if autobalance else 0  # stride-16 level is the reference
        self.gr = 1.0  # objectness target: (1 - gr) + gr * IoU
        self.autobalance = autobalance
        self.na, self.nc, self.nl = m.na, m.nc, m.nl
        self.anchors = m.anchors  # (nl, na, 2) in grid units
        self.device = device

    def __call__(self, p: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (total loss times batch size, detached [box, obj, cls])."""
        lbox, lobj, lcls = self.detection_losses(p, *self.build_targets(p, targets))
        bs = p[0].shape[0]
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()

    def detection_losses(self, p: list[torch.Tensor], tcls, tbox, indices, anchors, extra: Callable | None = None):
        """Weighted box, objectness and class losses summed over levels.

        extra(i, b, ps), when given, sees each level's matched predictions ps (one row per assigned target, all
        channels) and their image indices b, so a task can add its own terms (segmentation adds the mask loss).
        """
        lcls = torch.zeros(1, device=self.device)
        lbox = torch.zeros(1, device=self.device)
        lobj = torch.zeros(1, device=self.device)
        for i, pi in enumerate(p):  # pi: (bs, na, ny, nx, 5 + nc [+ extra channels])
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=self.device)
            n = b.shape[0]
            if n:
                ps = pi[b, a, gj, gi]
                pxy, pwh, pcls = ps[:, :2], ps[:, 2:4], ps[:, 5 : 5 + self.nc]
                # Same decoding as Detect: centre within (-0.5, 1.5) of the cell, size within (0, 4) anchors
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * anchors[i]
                pbox = torch.cat((pxy, pwh), 1)
                iou = bbox_iou(pbox, tbox[i], CIoU=True).squeeze(-1)
                lbox += (1.0 - iou).mean()

                iou = iou.detach().clamp(0).type(tobj.dtype)
                if self.sort_obj_iou:
                    j = iou.argsort()
                    b, a, gj, gi, iou = b[j], a[j], gj[j], gi[j], iou[j]
                if self.gr < 1:
                    iou = (1.0 - self.gr) + self.gr * iou
                tobj[b, a, gj, gi] = iou

                if self.nc > 1:  # a single class needs no class loss
                    t = torch.full_like(pcls, self.cn)
                    t[range(n), tcls[i]] = self.cp
                    lcls += self.BCEcls(pcls, t)
                if extra is not None:
                    extra(i, b, ps)

            obji = self.BCEobj(pi[..., 4], tobj)
            lobj += obji * self.balance[i]
            if self.autobalance:
                self.balance[i] = self.balance[i] * 0.9999 + 0.0001 / obji.detach().item()

        if self.autobalance:
            self.balance = [x / self.balance[self.ssi] for x in self.balance]
        return lbox * self.hyp["box"], lobj * self.hyp["obj"], lcls * self.hyp["cls"]

    def build_targets(self, p: list[torch.Tensor], targets: torch.Tensor):
        """Per level: target classes, boxes (xy offset from cell, wh) in grid units, (b, a, gj, gi) and anchors."""
        return self.assign_targets(p, targets)[:4]

    def assign_targets(self, p: list[torch.Tensor], targets: torch.Tensor, ti: torch.Tensor | None = None):
        """build_targets, plus per level each assigned row's target id (ti, default its row) and its normalised xywh."""
        na, nt = self.na, targets.shape[0]
        tcls, tbox, indices, anch, tidxs, xywhn = [], [], [], [], [], []
        gain = torch.ones(8, device=self.device)  # scales targets to grid units, one entry per column
        ai = torch.arange(na, device=self.device).float().view(na, 1).repeat(1, nt)
        ti = torch.arange(nt, device=self.device).float() if ti is None else ti.float()
        # (na, nt, 8): one copy of every target per anchor, with its anchor and target ids as the last columns
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None], ti.view(1, nt, 1).repeat(na, 1, 1)), 2)

        g = 0.5  # a target also goes to a neighbouring cell when its centre lies within g of that side
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=self.device).float() * g

        for i in range(self.nl):
            anchors, shape = self.anchors[i], p[i].shape
            gain[2:6] = torch.tensor(shape, device=self.device)[[3, 2, 3, 2]].float()  # nx, ny, nx, ny
            t = targets * gain
            if nt:
                r = t[..., 4:6] / anchors[:, None]  # wh ratio target / anchor
                j = torch.max(r, 1 / r).max(2)[0] < self.hyp["anchor_t"]
                t = t[j]

                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy  # distance from the right / bottom edge
                left, top = ((gxy % 1 < g) & (gxy > 1)).T  # centre near that side, and not in the first cell
                right, bottom = ((gxi % 1 < g) & (gxi > 1)).T  # centre near that side, and not in the last cell
                j = torch.stack((torch.ones_like(left), left, top, right, bottom))
                t = t.repeat((5, 1, 1))[j]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[j]
            else:
                t = targets[0]
                offsets = 0

            bc, gxy, gwh, at = t.split((2, 2, 2, 2), 1)
            (a, tidx), (b, c) = at.long().T, bc.long().T
            gij = (gxy - offsets).long()
            gij[:, 0].clamp_(0, shape[3] - 1)
            gij[:, 1].clamp_(0, shape[2] - 1)
            gi, gj = gij.T
            indices.append((b, a, gj, gi))
            tbox.append(torch.cat((gxy - gij, gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
            tidxs.append(tidx)
            xywhn.append(torch.cat((gxy, gwh), 1) / gain[2:6])
        return tcls, tbox, indices, anch, tidxs, xywhn
