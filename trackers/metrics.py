"""HOTA, CLEAR (MOTA) and Identity (IDF1) scores of a MOT result against MOTChallenge ground truth.

Written here from the published definitions (Luiten et al. 2021 for HOTA, Bernardin & Stiefelhagen 2008 for CLEAR
MOT, Ristani et al. 2016 for IDF1), following TrackEval's conventions so that the figures compare with its: IoU as
the similarity; CLEAR and IDF1 match at IoU 0.5; HOTA averages 19 thresholds 0.05 ... 0.95. (The `trackeval`
package itself pulls in a second OpenCV distribution beside the project's headless one, so it is not a dependency.)
Before scoring, as TrackEval's MOTChallenge loader does for one class:
- ground-truth rows whose 'consider' column (the 7th) is 0 are ignored, and so is any result box that matches one of
  them (IoU at least 0.5, one-to-one), so that a tracker is neither rewarded nor punished for them;
- ids are renumbered 0, 1, ... in order of appearance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from trackers.matching import box_iou, linear_assignment
from trackers.mot import read_mot

SUMMARY = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN")
ALPHAS = np.arange(1, 20) / 20  # HOTA's localisation thresholds 0.05 ... 0.95
MATCH_IOU = 0.5  # CLEAR's and IDF1's
EPS = np.finfo(float).eps  # thresholds are compared with this slack, so that IoU 0.5 computed as 0.4999... still counts


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


def clear_scores(data: dict) -> dict[str, float]:
    """MOTA, MOTP, IDSW, FP, FN: per frame, the most IoU among pairs at IoU 0.5 or more, a gt keeping its last
    frame's result id when it can; an id switch is a gt matched to another id than the last it was matched to."""
    last_frame = np.full(data["num_gt_ids"], -1)  # the result id matched in the previous frame (-1: none)
    last_ever = np.full(data["num_gt_ids"], -1)  # the result id matched last, however long ago
    tp = idsw = 0
    iou_sum = 0.0
    for g, r, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        score = 1000.0 * (r[None, :] == last_frame[g][:, None]) + sim  # continuing a match outweighs any IoU
        score[sim < MATCH_IOU - EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > EPS
        rows, cols = rows[ok], cols[ok]
        gm, rm = g[rows], r[cols]
        idsw += int(((last_ever[gm] >= 0) & (last_ever[gm] != rm)).sum())
        tp += len(rows)
        iou_sum += float(sim[rows, cols].sum())
        last_frame[:] = -1
        last_frame[gm] = last_ever[gm] = rm
    fn, fp = data["num_gt_dets"] - tp, data["num_tracker_dets"] - tp
    return {"MOTA": 1 - (fn + fp + idsw) / max(data["num_gt_dets"], 1), "MOTP": iou_sum / max(tp, 1),
            "IDSW": idsw, "FP": fp, "FN": fn}


def identity_scores(data: dict) -> dict[str, float]:
    """IDF1: the one-to-one pairing of gt ids and result ids that shares the most boxes (IoU 0.5 or more)."""
    shared = np.zeros((data["num_gt_ids"], data["num_tracker_ids"]))
    for g, r, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        rows, cols = np.nonzero(sim >= MATCH_IOU - EPS)
        np.add.at(shared, (g[rows], r[cols]), 1)
    rows, cols = linear_sum_assignment(-shared)
    idtp = shared[rows, cols].sum()
    return {"IDF1": 2 * idtp / max(data["num_gt_dets"] + data["num_tracker_dets"], 1)}


def alignment(data: dict) -> np.ndarray:
    """HOTA's global alignment of every gt id with every result id: their soft co-occurrence, as a Jaccard index."""
    pairs = np.zeros((data["num_gt_ids"], data["num_tracker_ids"]))
    gt_count, res_count = np.zeros((data["num_gt_ids"], 1)), np.zeros((1, data["num_tracker_ids"]))
    for g, r, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        union = sim.sum(0, keepdims=True) + sim.sum(1, keepdims=True) - sim  # each pair's share of its row and column
        pairs[g[:, None], r[None, :]] += np.divide(sim, union, out=np.zeros_like(sim), where=union > EPS)
        gt_count[g] += 1
        res_count[0, r] += 1
    return pairs / np.maximum(gt_count + res_count - pairs, EPS)


def hota_scores(data: dict) -> dict[str, float]:
    """HOTA, DetA, AssA averaged over ALPHAS: per frame, pairs chosen by alignment x IoU, kept where IoU >= alpha."""
    align = alignment(data)
    tp = np.zeros(len(ALPHAS))
    matched = np.zeros((len(ALPHAS), data["num_gt_ids"], data["num_tracker_ids"]))
    for g, r, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        rows, cols = linear_sum_assignment(-(align[g[:, None], r[None, :]] * sim))
        for a, alpha in enumerate(ALPHAS):
            ok = sim[rows, cols] >= alpha - EPS
            tp[a] += ok.sum()
            matched[a, g[rows[ok]], r[cols[ok]]] += 1
    gt_count = np.bincount(np.concatenate(data["gt_ids"]), minlength=data["num_gt_ids"])[None, :, None]
    res_count = np.bincount(np.concatenate(data["tracker_ids"]), minlength=data["num_tracker_ids"])[None, None, :]
    # each true positive's association: the boxes its two ids share over the boxes either of them has
    ass = matched / np.maximum(gt_count + res_count - matched, 1)
    ass_a = (matched * ass).sum((1, 2)) / np.maximum(tp, 1)
    det_a = tp / np.maximum(data["num_gt_dets"] + data["num_tracker_dets"] - tp, 1)
    return {"HOTA": float(np.sqrt(det_a * ass_a).mean()), "DetA": float(det_a.mean()), "AssA": float(ass_a.mean())}


def evaluate_arrays(gt: np.ndarray, res: np.ndarray) -> dict[str, float]:
    """HOTA, DetA, AssA, MOTA, MOTP, IDF1 (fractions), IDSW, FP, FN (counts) of result rows against gt rows."""
    data = sequence_data(gt, res)
    scores = {**hota_scores(data), **clear_scores(data), **identity_scores(data)}
    return {k: scores[k] if k in ("IDSW", "FP", "FN") else float(scores[k]) for k in SUMMARY}


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
