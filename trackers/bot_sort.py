"""BoT-SORT: ByteTrack's association on a (x, y, w, h) Kalman state, with camera-motion compensation and gating.

Before matching, each track's predicted state is warped by the camera motion between the two frames (GMC), so a
panning camera does not move every box off its track. With with_reid, a detection may also match a track by
appearance when their IoU cost is within proximity_thresh and their appearance cost within appearance_thresh; the
appearance feature here is a colour histogram of the box (no re-identification network ships with the project).
"""

from __future__ import annotations

import cv2
import numpy as np

from trackers.byte_tracker import BYTETracker, Candidates, STrack
from trackers.config import TrackerConfig
from trackers.gmc import GMC
from trackers.kalman import KalmanFilterXYWH
from trackers.matching import embedding_distance, fuse_score, iou_distance

HIST_BINS = (8, 4, 4)  # hue, saturation, value bins of the appearance histogram


def colour_histograms(img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Unit-norm HSV histograms (n, 128) of the boxes' pixels in a BGR image."""
    h, w = img.shape[:2]
    feats = np.zeros((len(boxes), int(np.prod(HIST_BINS))), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
        crop = img[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)]
        if crop.size:
            hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
            feats[k] = hist / max(np.linalg.norm(hist), 1e-12)
    return feats


class BOTSORT(BYTETracker):
    """BoT-SORT over the boxes of one video or stream; update(dets, img) once per frame (img for GMC and ReID)."""

    kalman_class = KalmanFilterXYWH
    still_velocities = (6, 7)  # a lost track keeps its size: the width's and height's velocities are zeroed

    def __init__(self, cfg: TrackerConfig, frame_rate: float = 30.0):
        super().__init__(cfg, frame_rate)
        self.gmc = GMC(cfg.gmc_method)

    def features(self, img: np.ndarray | None, boxes: np.ndarray) -> np.ndarray | None:
        """Colour histograms of the boxes when with_reid is set and there is an image."""
        return colour_histograms(img, boxes) if self.cfg.with_reid and img is not None else None

    def compensate(self, tracks: list[STrack], img: np.ndarray | None) -> None:
        """Warp the tracks' states (centre and velocity by the affine part, centre also by the shift)."""
        warp = self.gmc.apply(img)
        if not tracks or np.allclose(warp, np.eye(2, 3)):
            return
        rot = np.kron(np.eye(4), warp[:, :2])  # the 2x2 part applied to each (x, y)-like pair of the state
        mean = np.array([t.mean for t in tracks]) @ rot.T
        mean[:, :2] += warp[:, 2]
        cov = rot @ np.array([t.covariance for t in tracks]) @ rot.T
        self.set_states(tracks, mean, cov)

    def distance(self, tracks: list[STrack], dets: Candidates, boxes: np.ndarray | None = None) -> np.ndarray:
        """IoU cost (score-fused if set), lowered to the appearance cost where both gates pass (with_reid)."""
        iou_cost = iou_distance(self.boxes(tracks) if boxes is None else boxes, dets.xyxy)
        cost = fuse_score(iou_cost, dets.scores) if self.cfg.fuse_score else iou_cost
        if dets.feats is None or not cost.size or any(t.feat is None for t in tracks):
            return cost
        feats = np.array([t.feat for t in tracks])
        emb = embedding_distance(feats, dets.feats) / 2
        emb[(emb > self.cfg.appearance_thresh) | (iou_cost > self.cfg.proximity_thresh)] = 1.0
        return np.minimum(cost, emb)

    def reset(self) -> None:
        """Forget every track and the previous frame."""
        super().reset()
        self.gmc.reset()
