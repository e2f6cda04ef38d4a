"""The other blocks of YOLOv5 v7.0's model zoo: Ghost, transformer, cross and mixed convolutions, C3 variants.

Constructor signatures, defaults and attribute names follow v7.0, so a v7.0 state dict maps onto these modules one to
one. v7.0 pickles most of them as `models.common.<Name>` and MixConv2d as `models.experimental.MixConv2d`; each class
carries that module name, and models.common / models.experimental hand the classes out under it, so checkpoints
resolve and this project's own checkpoints name the classes as v7.0 does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from models.blocks import C3, SPP, Conv, DWConv, channel_parser, pickled_as, register, same_channels_parser


def _contract_parser(args, n, ch_in, gw, d):
    """Contract(gain) trades space for channels: c2 = c1 * gain**2."""
    return list(args), n, ch_in[0] * args[0] ** 2


def _expand_parser(args, n, ch_in, gw, d):
    """Expand(gain) trades channels for space: c2 = c1 // gain**2."""
    return list(args), n, ch_in[0] // args[0] ** 2


# torch.nn layers v7.0 YAMLs use directly: pooling and padding keep the channel count, a transposed conv sets it
register(same_channels_parser, name="nn.MaxPool2d")(nn.MaxPool2d)
register(same_channels_parser, name="nn.ZeroPad2d")(nn.ZeroPad2d)
register(channel_parser(), name="nn.ConvTranspose2d")(nn.ConvTranspose2d)


@register()
class DWConvTranspose2d(nn.ConvTranspose2d):
    """Depth-wise transposed convolution (groups = gcd of the channel counts), with bias as torch's default."""

    def __init__(self, c1, c2, k=1, s=1, p1=0, p2=0):
        super().__init__(c1, c2, k, s, p1, p2, groups=math.gcd(c1, c2))


class TransformerLayer(nn.Module):
    """Multi-head self-attention then a two-layer linear feed-forward, each with a residual; no LayerNorm (as v7.0)."""

    def __init__(self, c, num_heads):
        super().__init__()
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(c, c, bias=False)
        self.v = nn.Linear(c, c, bias=False)
        self.ma = nn.MultiheadAttention(embed_dim=c, num_heads=num_heads)
        self.fc1 = nn.Linear(c, c, bias=False)
        self.fc2 = nn.Linear(c, c, bias=False)

    def forward(self, x):
        x = self.ma(self.q(x), self.k(x), self.v(x))[0] + x
        return self.fc2(self.fc1(x)) + x


class TransformerBlock(nn.Module):
    """Vision transformer over the pixels of a feature map: optional 1x1 Conv to c2, learned position term, layers."""

    def __init__(self, c1, c2, num_heads, num_layers):
        super().__init__()
        self.conv = Conv(c1, c2) if c1 != c2 else None
        self.linear = nn.Linear(c2, c2)  # position embedding computed from the features themselves
        self.tr = nn.Sequential(*(TransformerLayer(c2, num_heads) for _ in range(num_layers)))
        self.c2 = c2

    def forward(self, x):
        if self.conv is not None:
            x = self.conv(x)
        b, _, h, w = x.shape
        p = x.flatten(2).permute(2, 0, 1)  # (h*w, b, c): a sequence of pixels, batch second as MultiheadAttention wants
        return self.tr(p + self.linear(p)).permute(1, 2, 0).reshape(b, self.c2, h, w)


@register()
class CrossConv(nn.Module):
    """A (1, k) then a (k, 1) convolution, with an optional residual connection."""

    def __init__(self, c1, c2, k=3, s=1, g=1, e=1.0, shortcut=False):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, (1, k), (1, s))
        self.cv2 = Conv(c_, c2, (k, 1), (s, 1), g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register(channel_parser(repeat_inside=True))
class C3x(C3):
    """C3 whose bottlenecks are CrossConv blocks."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__(c1, c2, n, shortcut, g, e)
        c_ = int(c2 * e)
        self.m = nn.Sequential(*(CrossConv(c_, c_, 3, 1, g, 1.0, shortcut) for _ in range(n)))


@register(channel_parser(repeat_inside=True))
class C3TR(C3):
    """C3 whose bottlenecks are a 4-head TransformerBlock of n layers."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__(c1, c2, n, shortcut, g, e)
        c_ = int(c2 * e)
        self.m = TransformerBlock(c_, c_, 4, n)


@register()
class C3SPP(C3):
    """C3 whose bottleneck is an SPP with kernels k (YAML arguments: c2, k, n, ...; n is not scaled by depth)."""

    def __init__(self, c1, c2, k=(5, 9, 13), n=1, shortcut=True, g=1, e=0.5):
        super().__init__(c1, c2, n, shortcut, g, e)
        c_ = int(c2 * e)
        self.m = SPP(c_, c_, k)


@register()
class GhostConv(nn.Module):
    """Ghost convolution: half the outputs from a Conv, the other half from a cheap 5x5 depth-wise Conv of those."""

    def __init__(self, c1, c2, k=1, s=1, g=1, act=True):
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, k, s, None, g, act=act)
        self.cv2 = Conv(c_, c_, 5, 1, None, c_, act=act)

    def forward(self, x):
        y = self.cv1(x)
        return torch.cat((y, self.cv2(y)), 1)


@register()
class GhostBottleneck(nn.Module):
    """GhostNet bottleneck: GhostConv, a depth-wise Conv when striding, GhostConv; plus a (strided) shortcut."""

    def __init__(self, c1, c2, k=3, s=1):
        super().__init__()
        c_ = c2 // 2
        self.conv = nn.Sequential(
            GhostConv(c1, c_, 1, 1),
            DWConv(c_, c_, k, s, act=False) if s == 2 else nn.Identity(),
            GhostConv(c_, c2, 1, 1, act=False),
        )
        self.shortcut = (
            nn.Sequential(DWConv(c1, c1, k, s, act=False), Conv(c1, c2, 1, 1, act=False)) if s == 2 else nn.Identity()
        )

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)


@register(channel_parser(repeat_inside=True))
class C3Ghost(C3):
    """C3 whose bottlenecks are GhostBottlenecks."""

    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__(c1, c2, n, shortcut, g, e)
        c_ = int(c2 * e)
        self.m = nn.Sequential(*(GhostBottleneck(c_, c_) for _ in range(n)))


class _Rearrange(nn.Module):
    """Base of Contract and Expand: a parameter-free rearrangement of pixels and channels by `gain`."""

    def __init__(self, gain=2):
        super().__init__()
        self.gain = gain


@register(_contract_parser)
class Contract(_Rearrange):
    """Space to depth: (b, c, h, w) -> (b, c * gain**2, h / gain, w / gain)."""

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.gain
        x = x.view(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(b, c * s * s, h // s, w // s)


@register(_expand_parser)
class Expand(_Rearrange):
    """Depth to space, the inverse of Contract: (b, c, h, w) -> (b, c / gain**2, h * gain, w * gain)."""

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.gain
        x = x.view(b, s, s, c // s**2, h, w).permute(0, 3, 4, 1, 5, 2).contiguous()
        return x.view(b, c // s**2, h * s, w * s)


@register()
class MixConv2d(nn.Module):
    """Mixed depth-wise convolution (MixNet): output channels split between kernels k, then BatchNorm and SiLU.

    equal_ch=True splits the channels evenly; False splits them so that every kernel gets about the same parameters.
    """

    def __init__(self, c1, c2, k=(1, 3), s=1, equal_ch=True):
        super().__init__()
        n = len(k)
        if equal_ch:
            idx = torch.linspace(0, n - 1e-6, c2).floor()
            c_ = [int((idx == g).sum()) for g in range(n)]
        else:
            # solve c_0 + ... + c_n-1 = c2 with c_i * k_i**2 equal for all i (least squares, rounded)
            b = [c2] + [0] * n
            a = np.eye(n + 1, n, k=-1)
            a -= np.roll(a, 1, axis=1)
            a *= np.array(k) ** 2
            a[0] = 1
            c_ = [int(x) for x in np.linalg.lstsq(a, b, rcond=None)[0].round()]
        self.m = nn.ModuleList(
            [nn.Conv2d(c1, ci, ki, s, ki // 2, groups=math.gcd(c1, ci), bias=False) for ki, ci in zip(k, c_)]
        )
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(torch.cat([m(x) for m in self.m], 1)))


# the module names v7.0 pickles these classes under (see the module docstring)
pickled_as("models.common", DWConvTranspose2d, TransformerLayer, TransformerBlock, CrossConv, C3x, C3TR, C3SPP,
           GhostConv, GhostBottleneck, C3Ghost, Contract, Expand)
pickled_as("models.experimental", MixConv2d)
