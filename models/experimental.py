"""Checkpoint loading without running code (torch_safe_load), attempt_load and model Ensembles."""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.common import BLOCKS, DualPConv, PConv
from models.extra_blocks import (
    CrossConv,
    MixConv2d,  # noqa: F401  (v7.0 pickles it as models.experimental.MixConv2d)
    TransformerBlock,
    TransformerLayer,
)
from models.fused import CSPPCFused, DetectFused, SPPFFused
from models.yolo import BaseModel, Detect, DetectionModel
from utils.general import LOGGER
from utils.torch_utils import save_atomic


def _torch_nn_modules() -> list[type]:
    """Every nn.Module class torch.nn exports: their pickled state is data, rebuilding them runs no user code."""
    out = [c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.Module)]
    # nn.MultiheadAttention's out_proj is this Linear subclass, which torch.nn does not export by name
    return out + [nn.modules.linear.NonDynamicallyQuantizableLinear]


def _numpy_globals() -> list:
    """numpy arrays, scalars and dtypes under the names numpy 1.x and 2.x pickle them with."""
    core = np._core if hasattr(np, "_core") else np.core
    out = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    for prefix in ("numpy.core", "numpy._core"):
        out += [(core.multiarray._reconstruct, f"{prefix}.multiarray._reconstruct"),
                (core.multiarray.scalar, f"{prefix}.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes as numpy.dtypes.Float32DType etc.
    if dtypes is not None:
        out += [c for c in vars(dtypes).values() if isinstance(c, type) and issubclass(c, np.dtype)]
    return out


def safe_globals() -> list:
    """The allowlist: the project's model classes, torch.nn modules and harmless metadata of YOLOv5 checkpoints."""
    project = [cls for cls, _ in BLOCKS.values()] + [BaseModel, DetectionModel, Detect, PConv, DualPConv]
    project += [CSPPCFused, SPPFFused, DetectFused]  # fuse()'s inference forms; checkpoints hold trained models
    project += [(DetectionModel, "models.yolo.Model"), (DetectionModel, "models.yolo.DetectionModel")]
    project += [TransformerLayer, TransformerBlock]  # parts of C3TR, not YAML blocks themselves
    # YOLOv5 before v6.1 kept CrossConv in models.experimental (MixConv2d is still there in v7.0: its own name)
    project += [(CrossConv, "models.experimental.CrossConv")]
    metadata = [
        argparse.Namespace,
        pathlib.Path, pathlib.PosixPath, pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath,
        (pathlib.PureWindowsPath, "pathlib.WindowsPath"),  # a Windows path read as data on any system
        set, frozenset, slice, range, complex,
    ]
    return project + _torch_nn_modules() + metadata + _numpy_globals()


def torch_safe_load(weights: str | Path, map_location="cpu") -> dict:
    """torch.load with weights_only=True and the project's allowlist; other globals are refused with their name."""
    if not hasattr(torch.serialization, "safe_globals"):
        raise RuntimeError(f"Loading {weights} safely needs torch>=2.5 (torch.serialization.safe_globals)")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            ckpt = torch.load(weights, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        name = found.group(1) if found else f"unknown ({e})"
        raise pickle.UnpicklingError(
            f"{weights}: refused to load: its pickle names the global '{name}', which is not a model or metadata "
            f"type this project allows. The file may run code when unpickled; it was not loaded."
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{weights}: not a YOLOv5 checkpoint (expected a dict with a 'model' entry)")
    return ckpt


def strip_optimizer(f="best.pt", s: str = "") -> None:
    """Make a checkpoint inference-ready: EMA weights as the model in FP16, no optimizer, epoch -1; save to s or f."""
    x = torch_safe_load(f)
    if x.get("ema"):
        x["model"] = x["ema"]
    for k in "optimizer", "best_fitness", "ema", "updates":
        x[k] = None
    x["epoch"] = -1
    x["model"].half()
    for p in x["model"].parameters():
        p.requires_grad = False
    save_atomic(x, s or f)
    mb = os.path.getsize(s or f) / 1e6
    LOGGER.info(f"Optimizer stripped from {f},{f' saved as {s},' if s else ''} {mb:.1f}MB")


class Ensemble(nn.ModuleList):
    """Several models whose detections are concatenated before NMS."""

    def forward(self, x, augment: bool = False, profile: bool = False, visualize: bool = False):
        y = [module(x, augment, profile, visualize)[0] for module in self]
        return torch.cat(y, 1), None


def _update_legacy_modules(model: nn.Module, inplace: bool) -> None:
    """Attributes that models pickled by other torch/YOLOv5 versions may lack or hold in an older form."""
    for m in model.modules():
        t = type(m)
        if t in (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU, Detect, DetectionModel):
            m.inplace = inplace
            if t is Detect and not isinstance(m.anchor_grid, list):  # YOLOv5 before v6.2 kept a buffer here
                delattr(m, "anchor_grid")
                m.anchor_grid = [torch.zeros(1)] * m.nl
            if t is Detect:
                m.grid = [torch.zeros(1)] * m.nl  # force rebuilding on the first call
        elif t is nn.Upsample and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None  # torch 1.11.0 compatibility


def attempt_load(weights, device=None, inplace: bool = True, fuse: bool = True) -> nn.Module:
    """Load a model (or an Ensemble from a list of weights) from checkpoints, FP32, in eval mode."""
    model = Ensemble()
    for w in weights if isinstance(weights, list) else [weights]:
        ckpt = torch_safe_load(w)
        m = (ckpt.get("ema") or ckpt["model"]).to(device).float()
        if not hasattr(m, "stride"):
            m.stride = torch.tensor([32.0])
        if hasattr(m, "names") and isinstance(m.names, (list, tuple)):
            m.names = dict(enumerate(m.names))
        model.append(m.fuse().eval() if fuse and hasattr(m, "fuse") else m.eval())
    _update_legacy_modules(model, inplace)
    if len(model) == 1:
        return model[-1]
    LOGGER.info(f"Ensemble created with {weights}\n")
    ncs = [m.model[-1].nc for m in model]
    if len(set(ncs)) > 1:
        raise ValueError(f"Models in the ensemble {weights} have different class counts: {ncs}")
    model.names, model.yaml, model.nc = model[0].names, model[0].yaml, ncs[0]
    model.stride = model[torch.argmax(torch.tensor([m.stride.max() for m in model])).int()].stride
    return model
