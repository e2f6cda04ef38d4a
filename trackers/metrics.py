"""HOTA, CLEAR (MOTA) and Identity (IDF1) scores of a MOT result against MOTChallenge ground truth.

The metrics are TrackEval's own (the maintained `trackeval` package on PyPI): this module only turns two MOT files
into the per-frame ids and IoU similarities that TrackEval's metric classes take, the way its MOTChallenge loader
does for one class:
- ground-truth rows whose 'consider' column (the 7th) is 0 are ignored, and so is any result box that matches one of
  them (IoU at least 0.5, one-to-one), so that a tracker is neither rewarded nor punished for them;
- ids are renumbered 0, 1, ... in order of appearance, as TrackEval's arrays are indexed by them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trackers.matching import box_iou, linear_assignment
from trackers.mot import read_mot

SUMMARY = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN")


def xyxy(rows: np.ndarray) -> np.ndarray:
    """MOT rows' x, y, w, h (columns 2-5) as x1 y1 x2 y2."""
    return np.concatenate((rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]), 1)


def drop_ignored(gt: np.ndarray, res: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's gt and result rows without the ignored gt rows and the result rows that match them."""
    ignored = gt[:, 6] == 0
    if ignored.any() and len(res):
        matches, _, _ = linear_assignment(1 - box_iou(xyxy(gt[ignored]), xyxy(res)), 0.5)
        res = np.delete(res, matches[:, 1], 0)
    return gt[~ignored], res


def renumber(ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Ids per frame mapped to 0..n-1 in order of first appearance, and n."""
    table: dict[int, int] = {}
    out = [np.array([table.setdefault(int(i), len(table)) for i in frame], dtype=int) for frame in ids]
    return out, len(table)


def sequence_data(gt: np.ndarray, res: np.ndarray) -> dict:
    """TrackEval's per-sequence input from gt and result rows (frame, id, x, y, w, h, conf)."""
    frames = int(max(gt[:, 0].max(initial=0), res[:, 0].max(initial=0)))
    gt_ids, res_ids, sims = [], [], []
    for t in range(1, frames + 1):
        g, r = drop_ignored(gt[gt[:, 0] == t], res[res[:, 0] == t])
        gt_ids.append(g[:, 1])
        res_ids.append(r[:, 1])
        sims.append(box_iou(xyxy(g), xyxy(r)))
    gt_ids, n_gt = renumber(gt_ids)
    res_ids, n_res = renumber(res_ids)
    return {"num_timesteps": frames, "gt_ids": gt_ids, "tracker_ids": res_ids, "similarity_scores": sims,
            "num_gt_ids": n_gt, "num_tracker_ids": n_res, "num_gt_dets": sum(map(len, gt_ids)),
            "num_tracker_dets": sum(map(len, res_ids))}


def evaluate_arrays(gt: np.ndarray, res: np.ndarray) -> dict[str, float]:
    """HOTA, DetA, AssA, MOTA, MOTP, IDF1 (fractions), IDSW, FP, FN (counts) of result rows against gt rows."""
    from trackeval.metrics import CLEAR, HOTA, Identity  # imported here: only scoring needs it

    data = sequence_data(gt, res)
    quiet = {"PRINT_CONFIG": False}
    hota = HOTA(dict(quiet)).eval_sequence(data)
    clear = CLEAR(dict(quiet)).eval_sequence(data)
    identity = Identity(dict(quiet)).eval_sequence(data)
    return {"HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
            "AssA": float(np.mean(hota["AssA"])), "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]),
            "IDF1": float(identity["IDF1"]), "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]),
            "FN": int(clear["CLR_FN"])}


def evaluate(gt_file: str | Path, result_file: str | Path) -> dict[str, float]:
    """Scores of a MOT result file against a MOT ground-truth file (see evaluate_arrays)."""
    gt = read_mot(gt_file)
    if not len(gt):
        raise ValueError(f"ground truth {gt_file} has no boxes")
    return evaluate_arrays(gt, read_mot(result_file) if Path(result_file).is_file() else np.empty((0, 7)))


def format_scores(scores: dict[str, float]) -> list[str]:
    """A header line and a value line: fractions as percentages, counts as integers."""
    head = "".join(f"{k:>8}" for k in SUMMARY)
    vals = "".join(f"{scores[k] * 100:8.1f}" if isinstance(scores[k], float) else f"{scores[k]:8d}" for k in SUMMARY)
    return [head, vals]
