"""YOLOv5 v7.0's models.common: the module v7.0 code imports blocks from and v7.0 checkpoints pickle them under.

Nothing is defined here. The classes live in models/blocks.py (the registry, Conv ... CSPPC), models/heads.py (Proto,
Classify) and models/extra_blocks.py (v7.0's other blocks), each with __module__ 'models.common', so unpickling and
`from models.common import C3` resolve here. This module sits above them: none of them imports it.
"""

from __future__ import annotations

from models.blocks import (  # noqa: F401
    BLOCKS,
    C3,
    CSPPC,
    SPP,
    SPPF,
    Bottleneck,
    BottleneckCSP,
    Concat,
    Conv,
    DualPConv,
    DWConv,
    Focus,
    PConv,
    autopad,
    channel_parser,
    register,
    resolve_arg,
    same_channels_parser,
)
from models.extra_blocks import (  # noqa: F401
    C3SPP,
    C3TR,
    C3Ghost,
    C3x,
    Contract,
    CrossConv,
    DWConvTranspose2d,
    Expand,
    GhostBottleneck,
    GhostConv,
    TransformerBlock,
    TransformerLayer,
)
from models.heads import Classify, Proto, classify_parser  # noqa: F401
from utils.general import make_divisible  # noqa: F401  (v7.0 code imports it from here too)

BACKEND_NAMES = ("DetectMultiBackend", "AutoShape", "Detections")  # v7.0 defines these here; they live in backends


def __getattr__(name: str):
    """PEP 562: `from models.common import DetectMultiBackend` (as in v7.0), importing the backends only then."""
    # lazy so that unpickling a block does not import the inference backends (cv2, export formats)
    if name in BACKEND_NAMES:
        from models import backends

        return getattr(backends, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
