"""Exact inference forms that BaseModel.fuse() swaps in: CSPPCFused for CSPPC, SPPFFused for SPPF, DetectFused.

CSPPC (models/common.py) concatenates y0, y1 and the n DualPConv outputs and mixes them with a 1x1 cv2. A DualPConv
convolves only its first q = c // n_div channels and passes the other c - q through, so every block output repeats
y1[:, q:]. Since cv2 is linear before its activation, the cv2 columns that read those copies add into the columns
that read y1[:, q:] itself; what is left to concatenate is [y0, y1, z_1 .. z_n] with z_k the q convolved channels of
block k, 2c + n*q channels instead of (2 + n)c. The partial convolutions run on a channel slice of cv1's output (a
view, nothing copied), and z_k = conv(conv(z_{k-1})) chains from z_0 = y1[:, :q].

Not folded on purpose: a DualPConv's two 3x3 convolutions equal one 5x5 convolution only away from the image border
(the zero padding of the intermediate differs), and the 5x5 form costs 25 q^2 multiply-adds per pixel against 18 q^2.
cv1 cannot fold into cv2 or into the partial convolutions because its SiLU sits between them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks import CSPPC, SPPF, Conv
from models.heads import Detect
from utils.torch_utils import fuse_conv_and_bn


def folded_weights(m: Conv) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a project Conv's convolution with its BatchNorm folded in (if fuse() has not done so)."""
    conv = fuse_conv_and_bn(m.conv, m.bn) if hasattr(m, "bn") else m.conv
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    return conv.weight, bias


class CSPPCFused(nn.Module):
    """CSPPC rewritten for inference: cv2 reads 2c + n*q channels, the partial convolutions run on channel slices."""

    def __init__(self, c1: int, c2: int, n: int = 1, c: int = 16, q: int = 4):
        super().__init__()
        if not 0 <= q <= c:
            raise ValueError(f"CSPPCFused: partial channels q={q} must lie in [0, c={c}]")
        self.c, self.q, self.n = c, q, n
        self.cv1 = nn.Conv2d(c1, 2 * c, 1, bias=True)
        self.act1 = nn.SiLU(inplace=True)
        # the 2n partial 3x3 convolutions of the n DualPConv blocks, in the order they are applied
        self.m = nn.ModuleList(nn.Conv2d(q, q, 3, 1, 1, bias=False) for _ in range(2 * n))
        self.cv2 = nn.Conv2d(2 * c + n * q, c2, 1, bias=True)
        self.act2 = nn.SiLU(inplace=True)

    @classmethod
    @torch.no_grad()
    def from_csppc(cls, block: CSPPC) -> CSPPCFused:
        """The exact inference form of a trained CSPPC block (eval-mode BatchNorm statistics are folded in)."""
        c, n = block.c, len(block.m)
        q = block.m[0].pconv1.dim_conv3 if n else 0
        (w1, b1), (w, b2) = folded_weights(block.cv1), folded_weights(block.cv2)
        new = cls(w1.shape[1], w.shape[0], n, c, q).to(device=w1.device, dtype=w1.dtype)
        new.cv1.weight.copy_(w1)
        new.cv1.bias.copy_(b1)
        new.act1, new.act2 = block.cv1.act, block.cv2.act  # a model-wide activation other than SiLU stays as built
        for i, d in enumerate(block.m):
            new.m[2 * i].load_state_dict(d.pconv1.partial_conv3.state_dict())
            new.m[2 * i + 1].load_state_dict(d.pconv2.partial_conv3.state_dict())
        # w is (c2, (2 + n) c, 1, 1): columns for y0, y1, then each block's [z_k, pass-through]
        w_new = w[:, : 2 * c].clone()
        for k in range(n):
            blk = w[:, (2 + k) * c : (3 + k) * c]
            w_new[:, c + q : 2 * c] += blk[:, q:]  # block k's pass-through channels are y1[:, q:]
            w_new = torch.cat((w_new, blk[:, :q]), 1)  # its convolved channels z_k keep their own columns
        new.cv2.weight.copy_(w_new)
        new.cv2.bias.copy_(b2)
        return new.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.cv1(x))
        zs, z = [], y[:, self.c : self.c + self.q]
        for a, b in zip(self.m[0::2], self.m[1::2]):
            z = b(a(z))
            zs.append(z)
        if not zs:
            return self.act2(self.cv2(y))
        if torch.onnx.is_in_onnx_export():
            # ONNX Runtime keeps convolutions in a blocked channel layout (NCHWc): a Concat drops back to NCHW and
            # costs two layout reorders, while an Add after a Conv fuses into it. So the export sums two 1x1
            # convolutions; the weight slices are constant-folded into two initializers.
            zc = torch.cat(zs, 1) if len(zs) > 1 else zs[0]
            w = self.cv2.weight
            out = F.conv2d(y, w[:, : 2 * self.c], self.cv2.bias) + F.conv2d(zc, w[:, 2 * self.c :])
            return self.act2(out)
        # PyTorch eager: one concatenation and one convolution beat two convolutions and a full-size add
        return self.act2(self.cv2(torch.cat((y, *zs), 1)))


class SPPFFused(SPPF):
    """SPPF whose max-pools run on channels-last tensors on CPU: the same maxima, several times faster in PyTorch."""

    @classmethod
    def from_sppf(cls, m: SPPF) -> SPPFFused:
        """The same modules (cv1, cv2, pool) under the faster forward."""
        new = cls(m.cv1.conv.in_channels, m.cv2.conv.out_channels, m.m.kernel_size)
        new.cv1, new.cv2, new.m = m.cv1, m.cv2, m.m  # the trained (possibly BN-folded) modules themselves
        return new.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        if x.device.type == "cpu" and not (torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()):
            # torch's CPU max_pool2d is ~15x slower on NCHW than on channels-last tensors at these sizes; a fused CPU
            # model is channels-last already (BaseModel.fuse), so this is a no-op there. Exports keep a plain
            # MaxPool, which ONNX Runtime and OpenCV run fast.
            x = x.contiguous(memory_format=torch.channels_last)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class DetectFused(Detect):
    """Detect whose eager inference decodes into one preallocated output: the same values, far fewer large copies.

    Detect's decode (sigmoid, split, arithmetic, a concatenation per level, then one across levels) allocates
    several fresh tensors the size of the output; on CPU their page faults cost more than the arithmetic. Here each
    level's sigmoid writes straight into its slice of the final output and the box terms are updated in place with
    the same operations in the same order, so results are bitwise equal. Training, exports and any call autograd records
    (grad mode on and an input or a parameter requiring grad) use Detect's forward.
    """

    @classmethod
    def from_detect(cls, m: Detect) -> DetectFused:
        """The same convolutions, anchors and flags (export, dynamic, inplace, stride) under the faster decode."""
        new = cls.__new__(cls)
        new.__dict__.update(m.__dict__)
        new._buffers = dict(m._buffers)  # its own dict: reset_grids must not touch m's
        new.reset_grids()  # rebuilt on first use, never stale from a checkpoint
        return new

    def forward(self, x):
        if self.training or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or self._needs_grad(x):
            return super().forward(x)
        bs, n = x[0].shape[0], sum(self.na * t.shape[2] * t.shape[3] for t in x)  # 1x1 convs keep the grid sizes
        out, j = None, 0
        for i in range(self.nl):
            x[i] = self.m[i](x[i])
            _, _, ny, nx = x[i].shape
            if out is None:
                out = torch.empty(bs, n, self.no, device=x[i].device, dtype=x[i].dtype)
            x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            if self.dynamic or self.grid[i].shape[2:4] != x[i].shape[2:4]:
                self.grid[i], self.anchor_grid[i] = self._make_grid(nx, ny, i)
            y = out[:, j : j + self.na * ny * nx].view(bs, self.na, ny, nx, self.no)
            torch.sigmoid(x[i], out=y)
            xy, wh = y[..., :2], y[..., 2:4]
            xy.copy_((xy * 2 + self.grid[i]) * self.stride[i])
            wh2 = wh * 2
            wh.copy_(wh2 * wh2 * self.anchor_grid[i])  # a product, not ** 2: LiteRT has no legal pow (same values)
            j += self.na * ny * nx
        return (out,) if self.export else (out, x)

    def _needs_grad(self, x: list[torch.Tensor]) -> bool:
        """Whether autograd will record this call: sigmoid(out=...) and the in-place box updates cannot be recorded."""
        if not torch.is_grad_enabled():
            return False
        return any(t.requires_grad for t in x) or any(p.requires_grad for p in self.parameters())


def inference_form(m: nn.Module) -> nn.Module | None:
    """The exact inference replacement of a module, or None when it has none (or already is one)."""
    if isinstance(m, CSPPC):
        return CSPPCFused.from_csppc(m)
    # the faster forms reproduce SPPF's and Detect's own forward: a subclass is replaced only if it keeps them
    # (SPPFFused and DetectFused override forward, so a fused model is left as it is)
    if isinstance(m, SPPF) and type(m).forward is SPPF.forward:
        return SPPFFused.from_sppf(m)
    if isinstance(m, Detect) and m.decodes_as_detect():
        return DetectFused.from_detect(m)
    return None
