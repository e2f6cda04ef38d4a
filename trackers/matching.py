"""Costs between tracks and detections, and the linear assignment that pairs them under a cost limit."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, 4) with every box in b (m, 4), both x1 y1 x2 y2: (n, m)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 2)
    area_a = np.prod(a[:, 2:] - a[:, :2], 1)
    area_b = np.prod(b[:, 2:] - b[:, :2], 1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def iou_distance(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """1 - IoU between track boxes and detection boxes (x1 y1 x2 y2)."""
    return 1 - box_iou(tracks, dets)


def fuse_score(cost: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ByteTrack's score fusion: the IoU similarity times each detection's confidence, back to a cost."""
    if not cost.size:
        return cost
    return 1 - (1 - cost) * scores[None]


def embedding_distance(track_feats: np.ndarray, det_feats: np.ndarray) -> np.ndarray:
    """Cosine distance between unit-norm appearance features, clipped at 0."""
    if not len(track_feats) or not len(det_feats):
        return np.zeros((len(track_feats), len(det_feats)))
    return np.maximum(0.0, 1 - track_feats @ det_feats.T)


def linear_assignment(cost: np.ndarray, thresh: float,
                      solver: str = "lap") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost pairs of rows and columns whose cost is at most thresh: (matches (k, 2), rows, columns unmatched).

    solver 'lap' uses lap.lapjv on the cost matrix extended so that leaving a row or column unmatched costs thresh
    (a pair above the limit is never worth taking); 'scipy' solves the full problem and drops pairs above it.
    """
    n, m = cost.shape
    if not cost.size:
        return np.empty((0, 2), int), np.arange(n), np.arange(m)
    if solver == "lap":
        import lap  # imported here: the package is only needed once there is something to assign

        _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
        rows = np.flatnonzero(x >= 0)
        matches = np.stack((rows, x[rows]), 1)
    else:
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] <= thresh
        matches = np.stack((r[keep], c[keep]), 1)
    unmatched_rows = np.setdiff1d(np.arange(n), matches[:, 0])
    unmatched_cols = np.setdiff1d(np.arange(m), matches[:, 1])
    return matches, unmatched_rows, unmatched_cols
