"""ByteTrack: Kalman-predicted tracks matched to detections in two stages, high-confidence boxes first.

Per frame: predict every tracked and lost track one frame ahead; match them to the high-confidence detections by
IoU (optionally fused with the confidence); match the tracks still unmatched to the low-confidence detections, which
recovers objects whose confidence dips while they are occluded; let unconfirmed tracks (seen once) take what is left;
start tracks from the remaining confident detections; tracks unmatched for more than track_buffer frames (at 30 fps)
are dropped. A track is confirmed, and reported, from its second matched frame (or at once on the first frame).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from trackers.config import TrackerConfig
from trackers.kalman import KalmanFilterXYAH
from trackers.matching import fuse_score, iou_distance, linear_assignment


class TrackState(IntEnum):
    """Where a track stands."""

    TRACKED = 1
    LOST = 2
    REMOVED = 3


class STrack:
    """One track: its Kalman state, its last detection's confidence, class and index, and its bookkeeping."""

    __slots__ = ("mean", "covariance", "score", "cls", "idx", "feat", "track_id", "state", "is_activated",
                 "frame_id", "start_frame")

    def __init__(self, score: float, cls: float, idx: int, feat: np.ndarray | None = None):
        self.score, self.cls, self.idx, self.feat = score, cls, idx, feat
        self.mean = self.covariance = None
        self.track_id, self.state, self.is_activated = 0, TrackState.TRACKED, False
        self.frame_id = self.start_frame = 0  # the frames of its last match and of its start


class Candidates:
    """A frame's detections for one association stage: boxes x1 y1 x2 y2, confidences, classes, row indices."""

    def __init__(self, dets: np.ndarray, rows: np.ndarray, feats: np.ndarray | None = None):
        self.xyxy, self.scores, self.cls, self.idx, self.feats = dets[:, :4], dets[:, 4], dets[:, 5], rows, feats

    def __len__(self) -> int:
        return len(self.idx)

    def take(self, keep: np.ndarray) -> Candidates:
        """The detections at positions keep."""
        out = Candidates(np.empty((0, 6)), self.idx[keep], None if self.feats is None else self.feats[keep])
        out.xyxy, out.scores, out.cls = self.xyxy[keep], self.scores[keep], self.cls[keep]
        return out


class BYTETracker:
    """ByteTrack over the boxes of one video or stream; update() once per frame."""

    kalman_class = KalmanFilterXYAH
    still_velocities = (7,)  # velocity entries zeroed while a track is lost (ByteTrack: the height's)

    def __init__(self, cfg: TrackerConfig, frame_rate: float = 30.0):
        self.cfg, self.kf = cfg, self.kalman_class()
        self.tracks: list[STrack] = []  # tracked and lost; removed tracks are dropped
        self.frame_id, self.next_id = 0, 1
        self.max_time_lost = int(frame_rate / 30.0 * cfg.track_buffer)

    # What BoT-SORT changes -------------------------------------------------------------------------------------------

    def features(self, img: np.ndarray | None, boxes: np.ndarray) -> np.ndarray | None:
        """Appearance features of the boxes (none for ByteTrack)."""
        return None

    def compensate(self, tracks: list[STrack], img: np.ndarray | None) -> None:
        """Correct the tracks' predicted states for camera motion (none for ByteTrack)."""

    def distance(self, tracks: list[STrack], dets: Candidates, boxes: np.ndarray | None = None) -> np.ndarray:
        """IoU cost between the tracks (whose boxes may be given) and dets, fused with the confidences if set."""
        cost = iou_distance(self.boxes(tracks) if boxes is None else boxes, dets.xyxy)
        return fuse_score(cost, dets.scores) if self.cfg.fuse_score else cost

    # The frame -------------------------------------------------------------------------------------------------------

    def update(self, dets: np.ndarray, img: np.ndarray | None = None) -> np.ndarray:
        """Track one frame's detections (n, 6+: x1 y1 x2 y2 conf cls); rows x1 y1 x2 y2 id conf cls idx of the
        tracks matched in this frame, idx being the row of dets each was matched to."""
        self.frame_id += 1
        cfg, dets = self.cfg, np.asarray(dets, dtype=np.float64)
        dets = dets.reshape(0, 6) if not dets.size else dets
        scores, rows = dets[:, 4], np.arange(len(dets))
        high = scores >= cfg.track_high_thresh
        low = (scores > cfg.track_low_thresh) & ~high
        first = Candidates(dets[high], rows[high], self.features(img, dets[high, :4]))
        second = Candidates(dets[low], rows[low])

        unconfirmed = [t for t in self.tracks if t.state == TrackState.TRACKED and not t.is_activated]
        pool = [t for t in self.tracks if t.is_activated]  # confirmed tracks, tracked and lost
        self.predict(pool)
        self.compensate(pool + unconfirmed, img)

        pool_boxes = self.boxes(pool)
        matches, u_track, u_det = linear_assignment(self.distance(pool, first, pool_boxes), cfg.match_thresh)
        self.apply(pool, first, matches)
        u_track = [i for i in u_track if pool[i].state == TrackState.TRACKED]  # lost tracks wait for a high box
        remain = [pool[i] for i in u_track]
        matches, u_remain, _ = linear_assignment(iou_distance(pool_boxes[u_track], second.xyxy), 0.5)
        self.apply(remain, second, matches)
        for i in u_remain:
            remain[i].state = TrackState.LOST

        left = first.take(u_det)
        matches, u_unconfirmed, u_new = linear_assignment(self.distance(unconfirmed, left), 0.7)
        self.apply(unconfirmed, left, matches)
        for i in u_unconfirmed:
            unconfirmed[i].state = TrackState.REMOVED
        self.start(left.take(u_new[left.scores[u_new] >= cfg.new_track_thresh]))
        return self.results(self.retire())

    def predict(self, tracks: list[STrack]) -> None:
        """Every track one frame ahead; a lost track keeps its position but not its growth."""
        if not tracks:
            return
        mean = np.array([t.mean for t in tracks])
        lost = np.array([t.state != TrackState.TRACKED for t in tracks])
        mean[np.ix_(lost, self.still_velocities)] = 0
        mean, cov = self.kf.predict(mean, np.array([t.covariance for t in tracks]))
        self.set_states(tracks, mean, cov)

    def apply(self, tracks: list[STrack], dets: Candidates, matches: np.ndarray) -> None:
        """Correct each matched track with its detection; lost tracks come back under their id."""
        if not len(matches):
            return
        chosen = [tracks[i] for i in matches[:, 0]]
        j = matches[:, 1]
        mean, cov = self.kf.update(np.array([t.mean for t in chosen]), np.array([t.covariance for t in chosen]),
                                   self.kf.from_xyxy(dets.xyxy[j]))
        self.set_states(chosen, mean, cov)
        for t, k in zip(chosen, j):
            t.state, t.is_activated, t.frame_id = TrackState.TRACKED, True, self.frame_id
            t.score, t.cls, t.idx = float(dets.scores[k]), float(dets.cls[k]), int(dets.idx[k])
            if dets.feats is not None:
                self.blend_feature(t, dets.feats[k])

    def start(self, dets: Candidates) -> None:
        """New tracks from unmatched confident detections; confirmed at once only on the first frame."""
        if not len(dets):
            return
        mean, cov = self.kf.initiate(self.kf.from_xyxy(dets.xyxy))
        for k in range(len(dets)):
            t = STrack(float(dets.scores[k]), float(dets.cls[k]), int(dets.idx[k]),
                       None if dets.feats is None else dets.feats[k])
            t.mean, t.covariance, t.track_id, self.next_id = mean[k], cov[k], self.next_id, self.next_id + 1
            t.is_activated, t.frame_id, t.start_frame = self.frame_id == 1, self.frame_id, self.frame_id
            self.tracks.append(t)

    def retire(self) -> np.ndarray:
        """Drop removed tracks, tracks lost too long, and the younger of a tracked/lost pair on the same object;
        returns the boxes of the tracks kept."""
        for t in self.tracks:
            if t.state == TrackState.LOST and self.frame_id - t.frame_id > self.max_time_lost:
                t.state = TrackState.REMOVED
        boxes = self.boxes(self.tracks)
        state = np.array([t.state for t in self.tracks])
        tracked, lost = np.flatnonzero(state == TrackState.TRACKED), np.flatnonzero(state == TrackState.LOST)
        if len(tracked) and len(lost):
            for i, j in zip(*np.nonzero(iou_distance(boxes[tracked], boxes[lost]) < 0.15)):
                a, b = self.tracks[tracked[i]], self.tracks[lost[j]]
                younger = a if a.frame_id - a.start_frame <= b.frame_id - b.start_frame else b
                younger.state = TrackState.REMOVED
        keep = [k for k, t in enumerate(self.tracks) if t.state != TrackState.REMOVED]
        self.tracks = [self.tracks[k] for k in keep]
        return boxes[keep]

    def results(self, boxes: np.ndarray) -> np.ndarray:
        """Rows x1 y1 x2 y2 id conf cls idx of the confirmed tracks matched in this frame (boxes: of all tracks)."""
        out = [k for k, t in enumerate(self.tracks) if t.is_activated and t.frame_id == self.frame_id]
        if not out:
            return np.empty((0, 8))
        extra = np.array([(t.track_id, t.score, t.cls, t.idx) for t in map(self.tracks.__getitem__, out)])
        return np.concatenate((boxes[out], extra), 1)

    # Helpers ---------------------------------------------------------------------------------------------------------

    def boxes(self, tracks: list[STrack]) -> np.ndarray:
        """The tracks' current boxes x1 y1 x2 y2 (n, 4)."""
        if not tracks:
            return np.empty((0, 4))
        return self.kf.to_xyxy(np.array([t.mean for t in tracks]))

    @staticmethod
    def set_states(tracks: list[STrack], mean: np.ndarray, cov: np.ndarray) -> None:
        """Write batched states back to their tracks."""
        for t, m, c in zip(tracks, mean, cov):
            t.mean, t.covariance = m, c

    @staticmethod
    def blend_feature(track: STrack, feat: np.ndarray, alpha: float = 0.9) -> None:
        """Exponential moving average of a track's unit-norm appearance feature."""
        f = feat if track.feat is None else alpha * track.feat + (1 - alpha) * feat
        track.feat = f / max(np.linalg.norm(f), 1e-12)

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new sequence)."""
        self.tracks, self.frame_id, self.next_id = [], 0, 1
