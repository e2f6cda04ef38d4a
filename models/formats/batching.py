"""Running a fixed-shape export on the batch it is given (MNN, TFLite): as is, or image by image."""

from __future__ import annotations

from typing import Callable

import numpy as np


def run_fixed_shape(forward: Callable[[np.ndarray], list[np.ndarray]], x: np.ndarray, shape: list[int],
                    what: str) -> list[np.ndarray]:
    """forward(x) when x has the exported shape; a batch-1 export runs a larger batch image by image; else a clear
    error naming the shape it was exported for."""
    if list(x.shape) == list(shape):
        return forward(x)
    if shape[0] == 1 and list(x.shape[1:]) == list(shape[1:]):
        return [np.concatenate(ys) for ys in zip(*(forward(xi[None]) for xi in x))]
    raise ValueError(f"this {what} model was exported for input shape {tuple(shape)}, got {tuple(x.shape)}: use "
                     f"--imgsz {shape[2]} {shape[3]}")
