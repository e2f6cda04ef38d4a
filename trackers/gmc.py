"""Camera-motion compensation (BoT-SORT's GMC): the 2x3 affine warp from the previous frame to this one.

Estimated on a downscaled grey frame, so its cost barely grows with resolution; translations are scaled back up.
'sparseOptFlow' tracks corners with pyramidal Lucas-Kanade and fits a partial affine (rotation, scale, shift)
with RANSAC; 'ecc' maximises the enhanced correlation coefficient for a Euclidean warp; 'none' is the identity.
"""

from __future__ import annotations

import cv2
import numpy as np

GMC_METHODS = ("sparseOptFlow", "ecc", "none")


class GMC:
    """Frame-to-frame camera motion by the chosen method; the first frame, and any failure, give the identity."""

    def __init__(self, method: str = "sparseOptFlow", downscale: int = 2):
        if method not in GMC_METHODS:
            raise ValueError(f"unknown gmc_method '{method}', expected one of {', '.join(GMC_METHODS)}")
        self.method, self.downscale = method, max(int(downscale), 1)
        self.prev: np.ndarray | None = None  # the previous grey frame
        self.prev_points: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (a new sequence starts)."""
        self.prev = self.prev_points = None

    def apply(self, img: np.ndarray | None) -> np.ndarray:
        """The warp (2, 3) that maps the previous frame's pixels to img's."""
        if self.method == "none" or img is None:
            return np.eye(2, 3)
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        if self.downscale > 1:
            grey = cv2.resize(grey, (grey.shape[1] // self.downscale, grey.shape[0] // self.downscale))
        prev, self.prev = self.prev, grey
        if prev is None or prev.shape != grey.shape:
            self.prev_points = self.corners(grey) if self.method == "sparseOptFlow" else None
            return np.eye(2, 3)
        warp = self.flow(prev, grey) if self.method == "sparseOptFlow" else self.ecc(prev, grey)
        warp[:, 2] *= self.downscale
        return warp

    @staticmethod
    def corners(grey: np.ndarray) -> np.ndarray | None:
        """Good features to track in a grey frame, (k, 1, 2) float32."""
        return cv2.goodFeaturesToTrack(grey, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3)

    def flow(self, prev: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """Sparse optical flow from the previous frame's corners, then a RANSAC partial affine fit."""
        points, self.prev_points = self.prev_points, self.corners(grey)
        if points is None or len(points) < 4:
            return np.eye(2, 3)
        moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, grey, points, None)
        ok = status.ravel() == 1
        if ok.sum() < 4:
            return np.eye(2, 3)
        warp, _ = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC)
        return warp if warp is not None else np.eye(2, 3)

    @staticmethod
    def ecc(prev: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """ECC alignment (Euclidean) of the previous frame to this one; the identity if it does not converge."""
        warp = np.eye(2, 3, dtype=np.float32)
        # blurred first: ECC climbs the correlation from the identity, and fine texture leaves it no slope to climb
        prev, grey = (cv2.GaussianBlur(x, (0, 0), 2) for x in (prev, grey))
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        try:
            _, warp = cv2.findTransformECC(prev, grey, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 1)
        except cv2.error:  # no convergence (a cut, a blank frame): assume a still camera for this frame
            return np.eye(2, 3)
        return warp.astype(np.float64)
