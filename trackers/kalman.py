"""Constant-velocity Kalman filters over a box: ByteTrack's (centre, aspect, height), BoT-SORT's (centre, w, h).

The state is the 4 box numbers and their 4 velocities. Noise is proportional to the box size, so a large box may
move more pixels per frame than a small one; the two filters differ only in which sizes scale which noise.
"""

from __future__ import annotations

import numpy as np

STD_POSITION = 1 / 20  # position noise per unit of box size
STD_VELOCITY = 1 / 160  # velocity noise per unit of box size


class KalmanFilterXYAH:
    """Box (x, y, a, h): centre, aspect ratio w / h and height; the aspect ratio's noise is a constant."""

    ndim = 4

    def __init__(self):
        self.motion = np.eye(8)
        self.motion[:4, 4:] = np.eye(4)  # x' = x + v (one frame)
        self.observe = np.eye(4, 8)

    def scales(self, mean: np.ndarray) -> np.ndarray:
        """(..., 4) sizes that scale the noise of each box coordinate: h, h, 0, h (a's noise is added in noise())."""
        s = np.repeat(mean[..., 3:4], 4, -1)
        s[..., 2] = 0
        return s

    def noise(self, mean: np.ndarray, k_pos: float, k_vel: float | None, a_pos: float, a_vel: float) -> np.ndarray:
        """Standard deviations (..., 4 or 8): k_pos, k_vel times the box scales, the aspect ratio's a_pos, a_vel."""
        s = self.scales(mean)
        pos = k_pos * STD_POSITION * s
        pos[..., 2] += a_pos
        if k_vel is None:
            return pos
        vel = k_vel * STD_VELOCITY * s
        vel[..., 2] += a_vel
        return np.concatenate((pos, vel), -1)

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks' means (n, 8: the boxes, still) and covariances (n, 8, 8) from their first boxes (n, 4)."""
        mean = np.concatenate((measurements, np.zeros_like(measurements)), -1)
        std = self.noise(mean, 2, 10, 1e-2, 1e-5)
        return mean, np.square(std)[..., None] * np.eye(8)

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: mean (n, 8), covariance (n, 8, 8)."""
        q = np.square(self.noise(mean, 1, 1, 1e-2, 1e-5))
        mean = mean @ self.motion.T
        covariance = self.motion @ covariance @ self.motion.T + q[..., None] * np.eye(8)  # + diag(q) per track
        return mean, covariance

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The states in measurement space: box means (n, 4) and innovation covariances (n, 4, 4)."""
        r = np.square(self.noise(mean, 1, None, 1e-1, 0))
        return mean @ self.observe.T, self.observe @ covariance @ self.observe.T + r[..., None] * np.eye(4)

    def update(self, mean: np.ndarray, covariance: np.ndarray,
               measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct the states (n, 8), (n, 8, 8) with their matched boxes (n, 4)."""
        projected, s = self.project(mean, covariance)
        ph = covariance @ self.observe.T  # P H^T, (n, 8, 4)
        # Kalman gain K = P H^T S^-1, solved as S K^T = (P H^T)^T rather than by inverting S
        gain = np.linalg.solve(s, ph.transpose(0, 2, 1)).transpose(0, 2, 1)
        mean = mean + (gain @ (measurements - projected)[..., None])[..., 0]
        covariance = covariance - gain @ s @ gain.transpose(0, 2, 1)
        return mean, covariance

    def from_xyxy(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes x1 y1 x2 y2 (n, 4) as this filter's measurements: centre x, y, aspect ratio w / h, height."""
        out = np.empty((len(boxes), 4))  # filled column by column: cheaper than stacking four small arrays
        out[:, :2] = (boxes[:, :2] + boxes[:, 2:]) / 2
        out[:, 3] = boxes[:, 3] - boxes[:, 1]
        out[:, 2] = (boxes[:, 2] - boxes[:, 0]) / out[:, 3]
        return out

    def to_xyxy(self, mean: np.ndarray) -> np.ndarray:
        """The states' boxes (n, 8) -> x1 y1 x2 y2 (n, 4)."""
        half = np.empty((len(mean), 2))
        half[:, 0], half[:, 1] = mean[:, 2] * mean[:, 3] / 2, mean[:, 3] / 2
        return np.concatenate((mean[:, :2] - half, mean[:, :2] + half), 1)


class KalmanFilterXYWH(KalmanFilterXYAH):
    """Box (x, y, w, h): BoT-SORT's form, whose noise scales x and w by the width, y and h by the height."""

    def scales(self, mean: np.ndarray) -> np.ndarray:
        """w, h, w, h."""
        return np.tile(mean[..., 2:4], 2)

    def noise(self, mean: np.ndarray, k_pos: float, k_vel: float | None, a_pos: float, a_vel: float) -> np.ndarray:
        """As XYAH's, with no constant term: the width is scaled like any other size."""
        return super().noise(mean, k_pos, k_vel, 0.0, 0.0)

    def from_xyxy(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes x1 y1 x2 y2 (n, 4) as centre x, y, width, height."""
        return np.concatenate(((boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]), 1)

    def to_xyxy(self, mean: np.ndarray) -> np.ndarray:
        """The states' boxes (n, 8) -> x1 y1 x2 y2 (n, 4)."""
        return np.concatenate((mean[:, :2] - mean[:, 2:4] / 2, mean[:, :2] + mean[:, 2:4] / 2), 1)
