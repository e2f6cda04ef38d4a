"""Costs between tracks and detections, and the linear assignment that pairs them under a cost limit."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment  # at import: its first import takes a second, not a frame


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, 4) with every box in b (m, 4), both x1 y1 x2 y2: (n, m)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    # column by column: a product over a length-2 axis of an (n, m, 2) array costs more than the IoU itself
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
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
                      solver: str = "scipy") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of rows and columns, each cost at most thresh, that save the most against leaving both unmatched:
    (matches (k, 2), unmatched rows, unmatched columns).

    This is lap.lapjv's problem with extend_cost and cost_limit (ByteTrack's): solver 'scipy' solves it as an
    assignment over the savings min(cost - thresh, 0), where a pair above the limit is worth no more than none;
    'lap' calls lap.lapjv itself (the optional `lap` package; benchmarks/track_speed.py compares the two).
    """
    n, m = cost.shape
    if not cost.size:
        return np.empty((0, 2), int), np.arange(n), np.arange(m)
    if solver == "lap":
        import lap  # optional: only this solver needs it

        _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
        rows = np.flatnonzero(x >= 0)
        matches = np.stack((rows, x[rows]), 1)
    else:
        r, c = linear_sum_assignment(np.minimum(cost - thresh, 0))
        keep = cost[r, c] <= thresh
        matches = np.stack((r[keep], c[keep]), 1)
    free_rows, free_cols = np.ones(n, bool), np.ones(m, bool)
    free_rows[matches[:, 0]] = free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)
