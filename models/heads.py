"""The model heads: Detect and Segment (boxes, masks), Classify, and Proto, the mask prototypes Segment holds.

v7.0 checkpoints pickle Detect and Segment as models.yolo.<Name>, Proto and Classify as models.common.<Name>; each
class carries that module name (set at the end), and those modules hand the classes out under it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.blocks import Conv, autopad, pickled_as, register
from utils.general import make_divisible


class Proto(nn.Module):
    """Mask prototypes for segmentation: a 3x3 conv, a 2x nearest upsample, then 3x3 and 1x1 convs to c2 masks."""

    def __init__(self, c1, c_=256, c2=32):
        super().__init__()
        self.cv1 = Conv(c1, c_, k=3)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.cv2 = Conv(c_, c_, k=3)
        self.cv3 = Conv(c_, c2)

    def forward(self, x):
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


def classify_parser(args, n, ch_in, gw, d):
    """Classify takes (c2, ...) with c2 the class count, unscaled; several inputs are concatenated first."""
    return [sum(ch_in), *args], n, args[0]


@register(classify_parser)
class Classify(nn.Module):
    """Classification head: a 1x1 Conv to 1280 channels, global average pooling, dropout and a Linear to c2 logits."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, dropout_p: float = 0.0):
        super().__init__()
        c_ = 1280  # EfficientNet-B0's head width, as YOLOv5 v7.0
        self.conv = Conv(c1, c_, k, s, autopad(k, p), g)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(p=dropout_p, inplace=True)
        self.linear = nn.Linear(c_, c2)

    def forward(self, x):
        if isinstance(x, list):
            x = torch.cat(x, 1)
        return self.linear(self.drop(self.pool(self.conv(x)).flatten(1)))


def detect_parser(args, n, ch_in, gw, d):
    """Detect takes (nc, anchors, [input channels]); an int anchor count becomes that many placeholder anchors."""
    args = list(args)
    if isinstance(args[1], int):
        args[1] = [list(range(args[1] * 2))] * len(ch_in)
    args.append(list(ch_in))
    return args, n, None


@register(detect_parser)
class Detect(nn.Module):
    """Detection head: a 1x1 conv per level; decodes xywh, objectness and class scores in inference."""

    stride = None  # strides computed during build
    dynamic = False  # force grid reconstruction
    export = False  # export mode: return only the decoded tensor

    def __init__(self, nc=80, anchors=(), ch=(), inplace=True):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.grid = [torch.empty(0) for _ in range(self.nl)]
        self.anchor_grid = [torch.empty(0) for _ in range(self.nl)]
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.inplace = inplace

    @classmethod
    def decodes_as_detect(cls) -> bool:
        """Whether inference gives Detect's own decode (no override of forward, _activate or _make_grid).

        Code that depends on the exact decode (the fused inference form) asks this rather than `type(m) is Detect`,
        so a subclass that changes only the layers or adds attributes is treated as Detect is.
        """
        return all(getattr(cls, k) is getattr(Detect, k) for k in ("forward", "_activate", "_make_grid"))

    def reset_grids(self) -> None:
        """Forget the cached cell and anchor grids; the next inference call rebuilds them for its input size."""
        self._buffers.pop("anchor_grid", None)  # YOLOv5 before v6.2 kept anchor_grid as a buffer
        self.grid = [torch.empty(0) for _ in range(self.nl)]
        self.anchor_grid = [torch.empty(0) for _ in range(self.nl)]

    def forward(self, x):
        z = []
        for i in range(self.nl):
            x[i] = self.m[i](x[i])
            bs, _, ny, nx = x[i].shape
            if not self.training:
                # sigmoid straight on the convolution's output: elementwise, so the same values as after the reshape,
                # and an exported graph then has Conv -> Sigmoid, which ONNX Runtime fuses into one kernel
                y = self._activate(x[i]).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
            x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            if not self.training:
                if self.dynamic or self.grid[i].shape[2:4] != x[i].shape[2:4]:
                    self.grid[i], self.anchor_grid[i] = self._make_grid(nx, ny, i)
                xy, wh, conf = y.split((2, 2, self.no - 4), 4)  # conf: objectness, classes and any extra outputs
                xy = (xy * 2 + self.grid[i]) * self.stride[i]
                wh = wh * 2
                wh = wh * wh * self.anchor_grid[i]  # a product, not ** 2: LiteRT has no legal pow op (same values)
                z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * nx * ny, self.no))
        if self.training:
            return x
        return (torch.cat(z, 1),) if self.export else (torch.cat(z, 1), x)

    def _activate(self, p: torch.Tensor) -> torch.Tensor:
        """Every output of the level's convolution goes through the sigmoid."""
        return p.sigmoid()

    def _make_grid(self, nx: int = 20, ny: int = 20, i: int = 0):
        """Cell offsets (minus 0.5, so that 2*sigmoid - 0.5 becomes 2*sigmoid + grid) and pixel anchors."""
        d, t = self.anchors[i].device, self.anchors[i].dtype
        shape = 1, self.na, ny, nx, 2
        yv, xv = torch.meshgrid(torch.arange(ny, device=d, dtype=t), torch.arange(nx, device=d, dtype=t), indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(shape) - 0.5
        anchor_grid = (self.anchors[i] * self.stride[i]).view((1, self.na, 1, 1, 2)).expand(shape)
        return grid, anchor_grid


def segment_parser(args, n, ch_in, gw, d):
    """Segment takes (nc, anchors, nm, npr, [input channels]); the prototype channels npr scale with the width."""
    args, n, _ = detect_parser(args, n, ch_in, gw, d)
    args[3] = make_divisible(args[3] * gw, 8)
    return args, n, None


@register(segment_parser)
class Segment(Detect):
    """Detect that also predicts nm mask coefficients per anchor, and Proto, the npr-channel mask prototypes."""

    def __init__(self, nc=80, anchors=(), nm=32, npr=256, ch=(), inplace=True):
        super().__init__(nc, anchors, ch, inplace)
        self.nm = nm
        self.npr = npr
        self.no = 5 + nc + nm
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.proto = Proto(ch[0], self.npr, self.nm)
        # YOLOv5 also stores Detect.forward as an instance attribute `detect`; its checkpoints then pickle a
        # getattr call, which the safe loader allows for exactly that attribute. Ours call Detect.forward directly.

    def forward(self, x):
        p = self.proto(x[0])
        x = Detect.forward(self, x)
        if self.training:
            return x, p
        return (x[0], p) if self.export else (x[0], p, x[1])

    def _activate(self, p: torch.Tensor) -> torch.Tensor:
        """Sigmoid on boxes, objectness and classes; the mask coefficients stay linear."""
        bs, _, ny, nx = p.shape
        p = p.view(bs, self.na, self.no, ny, nx)
        k = self.nc + 5
        return torch.cat((p[:, :, :k].sigmoid(), p[:, :, k:]), 2).view(bs, -1, ny, nx)


pickled_as("models.common", Proto, Classify)
pickled_as("models.yolo", Detect, Segment)
