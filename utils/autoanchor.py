"""Anchor checks: anchor order against strides (and, for training, best possible recall and k-means evolution)."""

from __future__ import annotations

import torch.nn as nn

from utils.general import LOGGER


def check_anchor_order(m: nn.Module) -> None:
    """Reverse Detect's anchors in place when their size order disagrees with the stride order."""
    a = m.anchors.prod(-1).mean(-1).view(-1)  # mean anchor area per level
    da = a[-1] - a[0]
    ds = m.stride[-1] - m.stride[0]
    if da and (da.sign() != ds.sign()):
        LOGGER.info("AutoAnchor: Reversing anchor order")
        m.anchors[:] = m.anchors.flip(0)
