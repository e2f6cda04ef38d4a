"""The registry parse_model reads YAML names from, and YOLOv5's building blocks: Conv, C3, SPPF ... PConv, CSPPC.

v7.0 checkpoints pickle these classes as models.common.<Name>, so each carries that module name (set at the end) and
models/common.py hands them out under it: checkpoints resolve, and new ones name the classes as v7.0 does.
"""

from __future__ import annotations

import ast
import math
import warnings
from typing import Callable

import torch
import torch.nn as nn

from utils.general import make_divisible

# Registry ------------------------------------------------------------------------------------------------------
# A YAML line `[from, n, Module, args]` is turned into a module by the parser registered for `Module`. A parser
# takes (args, n, ch_in, width_multiple, model_yaml) and returns (args, n, c2): constructor arguments, how many
# copies to stack, and the output channel count. Blocks register themselves where they are defined.
BLOCKS: dict[str, tuple[type, Callable]] = {}


def channel_parser(repeat_inside: bool = False, scale_width: bool = True) -> Callable:
    """Parser for blocks built as Block(c1, c2, *args); repeat_inside passes n to the block (C3) instead of stacking."""

    def parse(args, n, ch_in, gw, d):
        c1, c2 = ch_in[0], args[0]
        if scale_width:
            c2 = make_divisible(min(c2, d.get("max_channels", c2)) * gw, 8)
        args = [c1, c2, *args[1:]]
        if repeat_inside:
            args.insert(2, n)
            n = 1
        return args, n, c2

    return parse


def same_channels_parser(args, n, ch_in, gw, d):
    """Parser for blocks whose output channels equal their input (Upsample, Identity)."""
    return list(args), n, ch_in[0]


def register(parser: Callable = channel_parser(), name: str | None = None) -> Callable:
    """Class decorator: make a module usable by name in model YAMLs, with the given argument parser."""

    def decorate(cls):
        BLOCKS[name or cls.__name__] = (cls, parser)
        return cls

    return decorate


def resolve_arg(a, d: dict):
    """A YAML argument: names such as 'nc' or 'anchors' come from the model dict, other strings are literals."""
    if not isinstance(a, str):
        return a
    if a in d:
        return d[a]
    try:
        return ast.literal_eval(a)
    except (ValueError, SyntaxError):
        return a  # a plain string such as 'nearest'


register(same_channels_parser, name="nn.Upsample")(nn.Upsample)
register(same_channels_parser, name="nn.Identity")(nn.Identity)
register(lambda args, n, ch_in, gw, d: ([ch_in[0]], n, ch_in[0]), name="nn.BatchNorm2d")(nn.BatchNorm2d)


# Blocks --------------------------------------------------------------------------------------------------------


def autopad(k, p=None, d: int = 1):
    """Padding that keeps the spatial size ('same') for kernel k and dilation d."""
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


@register()
class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU."""

    default_act = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=0.001, momentum=0.03)
        self.act = self.default_act if act is True else act if isinstance(act, nn.Module) else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x):
        """Forward after BatchNorm has been folded into conv."""
        return self.act(self.conv(x))


@register()
class DWConv(Conv):
    """Depth-wise convolution."""

    def __init__(self, c1, c2, k=1, s=1, d=1, act=True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


@register()
class Bottleneck(nn.Module):
    """1x1 then 3x3 convolution with an optional residual connection."""

    def __init__(self, c1, c2, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


@register(channel_parser(repeat_inside=True))
class C3(nn.Module):
    """CSP bottleneck with 3 convolutions."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register()
class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained max-pools of kernel k equal SPP with k, 2k-1, 3k-2."""

    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        x = self.cv1(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 1.9.0 max_pool2d() warning
            y1 = self.m(x)
            y2 = self.m(y1)
            return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


@register(lambda args, n, ch_in, gw, d: (list(args), n, sum(ch_in)))
class Concat(nn.Module):
    """Concatenate a list of tensors along dimension d."""

    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


# Blocks of earlier YOLOv5 releases, kept so their checkpoints and YAMLs load ------------------------------------


@register()
class Focus(nn.Module):
    """Space-to-depth then Conv (YOLOv5 before v6.0)."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, act=True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act=act)

    def forward(self, x):
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


@register()
class SPP(nn.Module):
    """Spatial pyramid pooling with parallel max-pools (YOLOv3-SPP, YOLOv5 before v6.0)."""

    def __init__(self, c1, c2, k=(5, 9, 13)):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


@register(channel_parser(repeat_inside=True))
class BottleneckCSP(nn.Module):
    """CSP bottleneck of the original CSPNet layout (YOLOv5 before v4.0)."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1)
        self.bn = nn.BatchNorm2d(2 * c_)
        self.act = nn.SiLU()
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x):
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), 1))))


# Partial convolution (FasterNet) and CSPPC -----------------------------------------------------------------------


class PConv(nn.Module):
    """Partial convolution: a 3x3 conv over the first dim // n_div channels; the rest pass through untouched."""

    def __init__(self, dim: int, n_div: int = 4, forward: str = "split_cat"):
        super().__init__()
        if forward not in ("split_cat", "slicing"):
            raise ValueError(f"PConv forward must be 'split_cat' or 'slicing', got {forward!r}")
        self.dim_conv3 = dim // n_div
        self.dim_untouched = dim - self.dim_conv3
        self.partial_conv3 = nn.Conv2d(self.dim_conv3, self.dim_conv3, 3, 1, 1, bias=False)
        self.forward_mode = forward

    def forward(self, x):
        if self.forward_mode == "slicing":
            if self.training:
                raise RuntimeError("PConv 'slicing' mode is for inference only; use 'split_cat' to train")
            x = x.clone()  # never write into the caller's tensor
            x[:, : self.dim_conv3] = self.partial_conv3(x[:, : self.dim_conv3])
            return x
        x1, x2 = torch.split(x, [self.dim_conv3, self.dim_untouched], dim=1)
        return torch.cat((self.partial_conv3(x1), x2), 1)


class DualPConv(nn.Module):
    """Two PConv in series, without BatchNorm, activation or residual."""

    def __init__(self, dim: int, n_div: int = 4, forward: str = "split_cat"):
        super().__init__()
        self.pconv1 = PConv(dim, n_div, forward)
        self.pconv2 = PConv(dim, n_div, forward)

    def forward(self, x):
        return self.pconv2(self.pconv1(x))


@register(channel_parser(repeat_inside=True))
class CSPPC(nn.Module):
    """C2f-style CSP block whose inner blocks are DualPConv: cv1 splits in two, n blocks chain, cv2 fuses all."""

    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        # shortcut and g are accepted (unused) so a C3 line of a YAML switches to CSPPC by its name alone
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(DualPConv(self.c) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


def pickled_as(module: str, *classes: type) -> None:
    """Give classes the module name pickles (and parse_model's layer table) record for them: v7.0's, not this file's."""
    for cls in classes:
        cls.__module__ = module


pickled_as("models.common", Conv, DWConv, Bottleneck, C3, SPPF, Concat, Focus, SPP, BottleneckCSP, PConv, DualPConv,
           CSPPC)
