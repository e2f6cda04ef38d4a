"""Detection metrics: box IoU variants, prediction matching, per-class AP, confusion matrix and metric curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from utils.general import LOGGER
from utils.plots import agg_pyplot

# Shared by the plotting helpers below: each function sets the Agg backend itself so importing this module
# never touches matplotlib's global state.


def fitness(x: np.ndarray) -> np.ndarray:
    """Model fitness as a weighted sum of [P, R, mAP@0.5, mAP@0.5:0.95] (0.1 mAP@0.5 + 0.9 mAP@0.5:0.95)."""
    w = np.array([0.0, 0.0, 0.1, 0.9])
    return (np.asarray(x)[:, :4] * w).sum(1)


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Box-filter a curve over a window of fraction f of its length, padding with the end values."""
    nf = round(len(y) * f * 2) // 2 + 1  # odd number of filter elements
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


# IoU ------------------------------------------------------------------------------------------------------


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    (a1, a2), (b1, b2) = box1.float().unsqueeze(1).chunk(2, 2), box2.float().unsqueeze(0).chunk(2, 2)
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(0).prod(2)
    area1 = (box1[:, 2] - box1[:, 0]) * (box1[:, 3] - box1[:, 1])
    area2 = (box2[:, 2] - box2[:, 0]) * (box2[:, 3] - box2[:, 1])
    return inter / (area1[:, None] + area2[None] - inter + eps)


def bbox_iou(box1: torch.Tensor, box2: torch.Tensor, xywh: bool = True, GIoU: bool = False, DIoU: bool = False,
             CIoU: bool = False, eps: float = 1e-7) -> torch.Tensor:
    """Element-wise IoU (or GIoU/DIoU/CIoU) of box1 (1, 4) or (n, 4) against box2 (n, 4); returns (n, 1)."""
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(eps)
        w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(eps)

    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(0) * \
            (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not (GIoU or DIoU or CIoU):
        return iou

    cw = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)  # width of the smallest enclosing box
    ch = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
    if GIoU and not (DIoU or CIoU):
        c_area = cw * ch + eps
        return iou - (c_area - union) / c_area
    c2 = cw**2 + ch**2 + eps  # squared diagonal of the enclosing box
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4  # squared centre distance
    if not CIoU:
        return iou - rho2 / c2
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))).pow(2)
    with torch.no_grad():  # alpha is a weight, not something to differentiate through (CIoU paper, eq. 11)
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def bbox_ioa(box1: np.ndarray, box2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Intersection of one xyxy box (4,) with boxes (n, 4), divided by the area of each box2."""
    inter = (np.minimum(box1[2], box2[:, 2]) - np.maximum(box1[0], box2[:, 0])).clip(0) * \
            (np.minimum(box1[3], box2[:, 3]) - np.maximum(box1[1], box2[:, 1])).clip(0)
    return inter / ((box2[:, 2] - box2[:, 0]) * (box2[:, 3] - box2[:, 1]) + eps)


def wh_iou(wh1: torch.Tensor, wh2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of (N, 2) against (M, 2) width-height pairs as if the boxes shared a centre -> (N, M)."""
    wh1, wh2 = wh1[:, None], wh2[None]
    inter = torch.min(wh1, wh2).prod(2)
    return inter / (wh1.prod(2) + wh2.prod(2) - inter + eps)


# Matching and AP ------------------------------------------------------------------------------------------


def _by_iou(matches: np.ndarray) -> np.ndarray:
    """Rows of [label, detection, iou] in descending IoU; equal IoUs in the order YOLOv5 v7.0's numpy sort gives."""
    return matches[np.argsort(matches[:, 2])[::-1]]


def _first_per(matches: np.ndarray, col: int) -> np.ndarray:
    """The first row for each distinct value of column col, returned sorted by that value (np.unique's order)."""
    return matches[np.unique(matches[:, col], return_index=True)[1]]


def match_predictions(detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor,
                      iou: torch.Tensor | None = None) -> torch.Tensor:
    """Mark each detection [x1, y1, x2, y2, conf, cls] correct or not at each IoU threshold in iouv.

    labels are [cls, x1, y1, x2, y2]. YOLOv5 v7.0's rule, at each threshold: each detection keeps the
    same-class label it overlaps most, then each label keeps the first of the detections that kept it, in
    detection order (NMS output is sorted by confidence, so the most confident one). There is deliberately
    no second sort by IoU in between. Returns a (n_detections, n_thresholds) bool tensor. iou, when given, is a
    precomputed (n_labels, n_detections) overlap used instead of box IoU (segmentation matches by mask IoU).
    """
    correct = np.zeros((detections.shape[0], iouv.shape[0]), dtype=bool)
    if detections.shape[0] and labels.shape[0]:
        iou = box_iou(labels[:, 1:], detections[:, :4]) if iou is None else iou
        same_class = labels[:, 0:1] == detections[:, 5]
        for i, t in enumerate(iouv.tolist()):
            li, di = torch.where((iou >= t) & same_class)
            if li.shape[0]:
                matches = torch.stack((li.float(), di.float(), iou[li, di].float()), 1).cpu().numpy()
                if li.shape[0] > 1:
                    per_det = _first_per(_by_iou(matches), 1)  # best label per detection, rows in detection order
                    matches = _first_per(per_det, 0)  # first (most confident) detection per label
                correct[matches[:, 1].astype(int), i] = True
    return torch.tensor(correct, dtype=torch.bool, device=iouv.device)


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Average precision from one recall/precision curve; returns (ap, precision envelope, recall).

    The envelope (precision made monotonically non-increasing) is sampled at 101 recall points and integrated
    with the trapezoid rule, as YOLOv5 does. Sentinels (recall 0, precision 1) and (recall 1, precision 0)
    close the curve, so a perfect detector scores 0.995 rather than 1, and recall short of 1 is joined
    linearly to (1, 0); results are therefore comparable with YOLOv5 logs, not identical to COCOeval.
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    y = np.interp(x, mrec, mpre)
    ap = float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())  # trapezoid rule (np.trapz was renamed in numpy 2)
    return ap, mpre, mrec


def ap_per_class(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray, plot: bool = False,
                 save_dir: Path | str = ".", names: dict | list | tuple = (), eps: float = 1e-16, prefix: str = ""):
    """Per-class precision, recall, F1 and AP at every IoU threshold from matched predictions.

    tp: (n, t) bool correct-at-threshold per prediction; conf, pred_cls: (n,); target_cls: (m,) labels.
    Returns (tp, fp, p, r, f1, ap, classes): P, R, F1 (and tp/fp counts) at the confidence that maximises
    the class-mean F1, ap of shape (n_classes, t), for the classes that have labels.
    """
    tp, conf, pred_cls, target_cls = (np.asarray(a) for a in (tp, conf, pred_cls, target_cls))
    if tp.ndim == 1:
        tp = tp[:, None]
    # numpy's default sort, as in YOLOv5 v7.0: among equal confidences (frequent with FP16 scores) the order, and
    # with it the curve through the tied block, then matches v7.0's on the same numpy; a stable sort differs there
    order = np.argsort(-conf)
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]

    classes, nt = np.unique(target_cls, return_counts=True)
    nc, niou = classes.shape[0], tp.shape[1]
    px = np.linspace(0, 1, 1000)  # confidence axis of the P, R and F1 curves
    ap, p, r = np.zeros((nc, niou)), np.zeros((nc, 1000)), np.zeros((nc, 1000))
    py = []  # precision at IoU 0.5 on the recall axis px, for the PR plot
    for ci, c in enumerate(classes):
        i = pred_cls == c
        n_labels, n_preds = nt[ci], i.sum()
        if n_preds == 0 or n_labels == 0:
            py.append(np.zeros(1000))
            continue
        tpc = tp[i].astype(float).cumsum(0)
        fpc = (1 - tp[i].astype(float)).cumsum(0)
        recall = tpc / (n_labels + eps)
        precision = tpc / (tpc + fpc)
        # np.interp needs increasing x, and confidence decreases along the curve, hence the negations
        r[ci] = np.interp(-px, -conf[i], recall[:, 0], left=0)
        p[ci] = np.interp(-px, -conf[i], precision[:, 0], left=1)
        for j in range(niou):
            ap[ci, j], mpre, mrec = compute_ap(recall[:, j], precision[:, j])
            if j == 0:
                py.append(np.interp(px, mrec, mpre))

    f1 = 2 * p * r / (p + r + eps)
    if isinstance(names, dict):
        names = [names.get(int(c), str(int(c))) for c in classes]
    else:
        names = [names[int(c)] if int(c) < len(names) else str(int(c)) for c in classes]
    names = dict(enumerate(names))  # only classes that have labels
    if plot:
        save_dir = Path(save_dir)
        plot_pr_curve(px, np.stack(py, 1) if py else np.zeros((1000, 0)), ap, save_dir / f"{prefix}PR_curve.png", names)
        plot_mc_curve(px, f1, save_dir / f"{prefix}F1_curve.png", names, ylabel="F1")
        plot_mc_curve(px, p, save_dir / f"{prefix}P_curve.png", names, ylabel="Precision")
        plot_mc_curve(px, r, save_dir / f"{prefix}R_curve.png", names, ylabel="Recall")

    i = int(smooth(f1.mean(0), 0.1).argmax()) if nc else 0  # confidence of best (smoothed) mean F1
    p, r, f1 = p[:, i], r[:, i], f1[:, i]
    tp = (r * nt).round()
    fp = (tp / (p + eps) - tp).round()
    return tp, fp, p, r, f1, ap, classes.astype(int)


# Confusion matrix -----------------------------------------------------------------------------------------


class ConfusionMatrix:
    """Counts of predicted class (rows) against true class (columns), with a background row and column."""

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45):
        """nc classes; detections below conf are ignored, a match needs IoU above iou_thres."""
        self.matrix = np.zeros((nc + 1, nc + 1))
        self.nc = nc
        self.conf = conf
        self.iou_thres = iou_thres

    def process_batch(self, detections: torch.Tensor | None, labels: torch.Tensor) -> None:
        """Add one image: detections (n, 6) [x1, y1, x2, y2, conf, cls] or None, labels (m, 5) [cls, xyxy].

        With detections None, labels may be the class column alone (m,); every label counts as missed.
        """
        if detections is None:
            for gc in (labels if labels.ndim == 1 else labels[:, 0]).int().tolist():
                self.matrix[self.nc, gc] += 1  # missed: predicted background
            return
        detections = detections[detections[:, 4] > self.conf]
        gt_classes = labels[:, 0].int().tolist()
        det_classes = detections[:, 5].int().tolist()
        iou = box_iou(labels[:, 1:], detections[:, :4])
        li, di = torch.where(iou > self.iou_thres)
        matches = torch.stack((li.float(), di.float(), iou[li, di].float()), 1).cpu().numpy()
        if matches.shape[0] > 1:
            # as v7.0's confusion matrix: best label per detection, then best detection per label (IoU re-sorted)
            matches = _first_per(_by_iou(_first_per(_by_iou(matches), 1)), 0)
        label_to_det = {int(m[0]): int(m[1]) for m in matches}
        for i, gc in enumerate(gt_classes):
            if i in label_to_det:
                self.matrix[det_classes[label_to_det[i]], gc] += 1  # right or wrong class at a true object
            else:
                self.matrix[self.nc, gc] += 1  # missed
        matched = set(label_to_det.values())
        for i, dc in enumerate(det_classes):
            if i not in matched:
                self.matrix[dc, self.nc] += 1  # false positive on background

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """True and false positives per class (background excluded)."""
        tp = self.matrix.diagonal()
        fp = self.matrix.sum(1) - tp
        return tp[:-1], fp[:-1]

    def plot(self, normalize: bool = True, save_dir: Path | str = "", names: list | tuple = ()) -> None:
        """Save confusion_matrix.png; columns are normalised to sum to 1 when normalize is set."""
        plt = agg_pyplot()
        array = self.matrix / ((self.matrix.sum(0).reshape(1, -1) + 1e-9) if normalize else 1)
        array[array < 0.005] = np.nan  # leave near-empty cells blank
        n = self.nc + 1
        ticks = list(names) + ["background"] if 0 < len(names) < 99 and len(names) == self.nc else None
        fig, ax = plt.subplots(1, 1, figsize=(12, 9), tight_layout=True)
        im = ax.imshow(array, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if n < 30:  # annotate cells only while they stay legible
            for (row, col), v in np.ndenumerate(array):
                if not np.isnan(v):
                    text = f"{v:.2f}" if normalize else f"{int(v)}"
                    ax.text(col, row, text, ha="center", va="center", fontsize=8,
                            color="white" if v > 0.5 * np.nanmax(array) else "black")
        if ticks:
            ax.set_xticks(range(n), ticks, rotation=90, fontsize=8)
            ax.set_yticks(range(n), ticks, fontsize=8)
        ax.set_xlabel("True")
        ax.set_ylabel("Predicted")
        ax.set_title("Confusion Matrix")
        fig.savefig(Path(save_dir) / "confusion_matrix.png", dpi=250)
        plt.close(fig)

    def print(self) -> None:
        """Log the matrix one row per predicted class."""
        for i in range(self.nc + 1):
            LOGGER.info(" ".join(map(str, self.matrix[i])))


# Curves ---------------------------------------------------------------------------------------------------


def plot_pr_curve(px: np.ndarray, py: np.ndarray, ap: np.ndarray, save_dir: Path | str = "pr_curve.png",
                  names: dict | tuple = ()) -> None:
    """Save a precision-recall plot: one line per class (when fewer than 21) and the class mean."""
    plt = agg_pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(9, 6), tight_layout=True)
    if 0 < len(names) < 21:
        for i in range(py.shape[1]):
            ax.plot(px, py[:, i], linewidth=1, label=f"{names[i]} {ap[i, 0]:.3f}")
    else:
        ax.plot(px, py, linewidth=1, color="grey")
    if py.shape[1]:
        ax.plot(px, py.mean(1), linewidth=3, color="blue", label=f"all classes {ap[:, 0].mean():.3f} mAP@0.5")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    ax.set_title("Precision-Recall Curve")
    fig.savefig(save_dir, dpi=250)
    plt.close(fig)


def plot_mc_curve(px: np.ndarray, py: np.ndarray, save_dir: Path | str = "mc_curve.png", names: dict | tuple = (),
                  xlabel: str = "Confidence", ylabel: str = "Metric") -> None:
    """Save a metric-versus-confidence plot: one line per class (when fewer than 21) and the smoothed mean."""
    plt = agg_pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(9, 6), tight_layout=True)
    if 0 < len(names) < 21:
        for i, y in enumerate(py):
            ax.plot(px, y, linewidth=1, label=f"{names[i]}")
    else:
        ax.plot(px, py.T, linewidth=1, color="grey")
    if len(py):
        y = smooth(py.mean(0), 0.05)
        ax.plot(px, y, linewidth=3, color="blue", label=f"all classes {y.max():.2f} at {px[y.argmax()]:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    ax.set_title(f"{ylabel}-Confidence Curve")
    fig.savefig(save_dir, dpi=250)
    plt.close(fig)
