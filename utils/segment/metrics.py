"""Segmentation metrics: box and mask P/R/mAP side by side, and the fitness that weighs both."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.metrics import ap_per_class

KEYS = [
    "train/box_loss", "train/seg_loss", "train/obj_loss", "train/cls_loss",
    "metrics/precision(B)", "metrics/recall(B)", "metrics/mAP_0.5(B)", "metrics/mAP_0.5:0.95(B)",
    "metrics/precision(M)", "metrics/recall(M)", "metrics/mAP_0.5(M)", "metrics/mAP_0.5:0.95(M)",
    "val/box_loss", "val/seg_loss", "val/obj_loss", "val/cls_loss",
    "x/lr0", "x/lr1", "x/lr2",
]  # the columns of a segmentation run's results.csv, as in YOLOv5


def fitness(x: np.ndarray) -> np.ndarray:
    """0.1 mAP50 + 0.9 mAP50-95 of the boxes plus the same of the masks, from rows [P R mAP50 mAP (B), ... (M)]."""
    w = np.array([0.0, 0.0, 0.1, 0.9, 0.0, 0.0, 0.1, 0.9])
    return (np.asarray(x)[:, :8] * w).sum(1)


def ap_per_class_box_and_mask(tp_m: np.ndarray, tp_b: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray,
                              target_cls: np.ndarray, plot: bool = False, save_dir: Path | str = ".",
                              names: dict | list | tuple = ()) -> dict[str, tuple]:
    """ap_per_class once on box matches and once on mask matches; each entry is (p, r, ap, f1, ap_class)."""
    out = {}
    for key, tp, prefix in (("boxes", tp_b, "Box"), ("masks", tp_m, "Mask")):
        _, _, p, r, f1, ap, ap_class = ap_per_class(tp, conf, pred_cls, target_cls, plot=plot, save_dir=save_dir,
                                                    names=names, prefix=prefix)
        out[key] = (p, r, ap, f1, ap_class)
    return out


class Metric:
    """P, R, F1 and AP (per class and IoU threshold) of one kind of prediction, boxes or masks."""

    def __init__(self):
        self.p, self.r, self.f1, self.all_ap, self.ap_class_index = [], [], [], [], []

    @property
    def ap50(self) -> np.ndarray:
        """AP at IoU 0.5 per class."""
        return self.all_ap[:, 0] if len(self.all_ap) else []

    @property
    def ap(self) -> np.ndarray:
        """AP over IoU 0.5:0.95 per class."""
        return self.all_ap.mean(1) if len(self.all_ap) else []

    @property
    def mp(self) -> float:
        return float(self.p.mean()) if len(self.p) else 0.0

    @property
    def mr(self) -> float:
        return float(self.r.mean()) if len(self.r) else 0.0

    @property
    def map50(self) -> float:
        return float(self.all_ap[:, 0].mean()) if len(self.all_ap) else 0.0

    @property
    def map(self) -> float:
        return float(self.all_ap.mean()) if len(self.all_ap) else 0.0

    def mean_results(self) -> tuple[float, float, float, float]:
        """Class means: (P, R, mAP50, mAP50-95)."""
        return self.mp, self.mr, self.map50, self.map

    def class_result(self, i: int) -> tuple[float, float, float, float]:
        """(P, R, AP50, AP50-95) of the i-th class that has labels."""
        return float(self.p[i]), float(self.r[i]), float(self.ap50[i]), float(self.ap[i])

    def get_maps(self, nc: int) -> np.ndarray:
        """mAP50-95 per class id, the overall mAP for classes without labels."""
        maps = np.zeros(nc) + self.map
        for i, c in enumerate(self.ap_class_index):
            maps[c] = self.ap[i]
        return maps

    def update(self, results: tuple) -> None:
        """Take (p, r, all_ap, f1, ap_class_index) from ap_per_class_box_and_mask."""
        self.p, self.r, self.all_ap, self.f1, self.ap_class_index = results


class Metrics:
    """Box and mask metrics of one validation."""

    def __init__(self):
        self.metric_box = Metric()
        self.metric_mask = Metric()

    def update(self, results: dict[str, tuple]) -> None:
        self.metric_box.update(results["boxes"])
        self.metric_mask.update(results["masks"])

    def mean_results(self) -> tuple[float, ...]:
        """(P, R, mAP50, mAP50-95) of the boxes followed by the same of the masks."""
        return self.metric_box.mean_results() + self.metric_mask.mean_results()

    def class_result(self, i: int) -> tuple[float, ...]:
        return self.metric_box.class_result(i) + self.metric_mask.class_result(i)

    def get_maps(self, nc: int) -> np.ndarray:
        """Per-class mAP50-95 of the boxes plus that of the masks (the per-class fitness YOLOv5 keeps)."""
        return self.metric_box.get_maps(nc) + self.metric_mask.get_maps(nc)

    @property
    def ap_class_index(self) -> list[int]:
        return self.metric_box.ap_class_index
