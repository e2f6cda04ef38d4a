"""PyTorch checkpoints (.pt): the format every export starts from, run by DetectMultiBackend as the model itself."""

from __future__ import annotations

from typing import Any

import torch

from models.experimental import attempt_load
from models.formats.registry import ExportFormat, Runner, register


class PyTorchRunner(Runner):
    """A .pt checkpoint (or an ensemble of several), fused; --half runs FP16 on CUDA and bf16 autocast on CPU."""

    raw_output = True  # the model's own (pred, maps) structure, as v7.0's DetectMultiBackend returns it

    def __init__(self, w: str, device: torch.device, fp16: bool = False, bf16: bool = False, fuse: bool = True,
                 weights: Any = None, **_):
        self.model = attempt_load(weights if isinstance(weights, list) else w, device=device, inplace=True, fuse=fuse)
        self.bf16 = bf16
        stride = max(int(self.model.stride.max()), 32)
        names = self.model.module.names if hasattr(self.model, "module") else self.model.names
        self.meta = {"stride": stride, "names": names}
        self.model.half() if fp16 else self.model.float()

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False):
        """The model's output; augment and visualize are passed on only when asked for, as v7.0 does."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            y = self.model(im, augment=augment, visualize=visualize) if augment or visualize else self.model(im)
        return _to_float(y) if self.bf16 else y  # NMS and box scaling stay in float32


def _to_float(y):
    """bf16 tensors in a (nested) model output as float32; everything else as is."""
    if isinstance(y, torch.Tensor):
        return y.float() if y.dtype == torch.bfloat16 else y
    if isinstance(y, (list, tuple)):
        return type(y)(_to_float(x) for x in y)
    return y


PYTORCH = register(ExportFormat("PyTorch", "-", ".pt", "pt", load=PyTorchRunner, requirements=("torch",), gpu=True,
                                bf16=True))
