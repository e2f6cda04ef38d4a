"""Checkpoint loading without running code (torch_safe_load), attempt_load and model Ensembles."""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.blocks import BLOCKS, Conv, DualPConv, PConv
from models.extra_blocks import (
    CrossConv,
    MixConv2d,  # noqa: F401  (v7.0 pickles it as models.experimental.MixConv2d)
    TransformerBlock,
    TransformerLayer,
)
from models.fused import CSPPCFused, DetectFused, SPPFFused
from models.heads import Detect, Proto
from models.yolo import BaseModel, ClassificationModel, DetectionModel, SegmentationModel
from utils.classify_data import CenterCrop, ToTensor
from utils.general import LOGGER
from utils.torch_utils import save_atomic


def _torch_nn_modules() -> list[type]:
    """Every nn.Module class torch.nn exports: their pickled state is data, rebuilding them runs no user code."""
    out = [c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.Module)]
    # nn.MultiheadAttention's out_proj is this Linear subclass, which torch.nn does not export by name
    return out + [nn.modules.linear.NonDynamicallyQuantizableLinear]


def _torchvision_modules() -> list[type]:
    """torchvision's model and ops module classes, for classifiers trained with classify/train.py --model resnet18.

    Like torch.nn's, their pickled state is data: unpickling restores attributes without running their code.
    """
    try:
        import torchvision.models  # noqa: F401  (imports every model family's module)
        import torchvision.ops  # noqa: F401
    except ImportError:
        return []
    out = []
    for name, module in list(sys.modules.items()):
        if name.startswith(("torchvision.models", "torchvision.ops")) and module is not None:
            out += [c for c in vars(module).values()
                    if isinstance(c, type) and issubclass(c, nn.Module) and c.__module__ == name]
    return out


def _torchvision_transforms() -> list[type]:
    """The torchvision transforms of v7.0 classification checkpoints' model.transforms (plain attribute holders)."""
    try:
        from torchvision.transforms import Compose, Normalize
    except ImportError:
        return []
    return [Compose, Normalize]


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


def _allowed_getattr(obj, name: str, *default):
    """Stands in for getattr while unpickling, for the two bound methods YOLOv5 models pickle: getattr(Detect,
    'forward') in v7.0 segmentation checkpoints, and a fused Conv's forward (getattr(conv, 'forward_fuse'), which
    fuse() installs) in a saved fused model.

    Any other use is refused: a general getattr would let a pickle walk from an allowed class to anything.
    """
    if not default and obj is Detect and name == "forward":
        return Detect.forward
    if not default and isinstance(obj, Conv) and name == "forward_fuse":
        return obj.forward_fuse
    raise pickle.UnpicklingError(f"refused getattr({getattr(obj, '__name__', type(obj).__name__)!r}, {name!r}): "
                                 f"only getattr(Detect, 'forward') and a Conv's forward_fuse are allowed")


def safe_globals() -> list:
    """The allowlist: the project's model classes, torch.nn modules and harmless metadata of YOLOv5 checkpoints."""
    project = [cls for cls, _ in BLOCKS.values()] + [BaseModel, DetectionModel, Detect, PConv, DualPConv]
    project += [CSPPCFused, SPPFFused, DetectFused]  # fuse()'s inference forms; checkpoints hold trained models
    project += [(DetectionModel, "models.yolo.Model"), (DetectionModel, "models.yolo.DetectionModel")]
    project += [SegmentationModel, Proto]  # Segment is a YAML block; Proto lives inside it
    project += [ClassificationModel]  # Classify is a YAML block
    project += [(_allowed_getattr, "builtins.getattr")]  # Segment's getattr(Detect, 'forward'), fused Convs' forward
    project += [TransformerLayer, TransformerBlock]  # parts of C3TR, not YAML blocks themselves
    # YOLOv5 before v6.1 kept CrossConv in models.experimental (MixConv2d is still there in v7.0: its own name)
    project += [(CrossConv, "models.experimental.CrossConv")]
    # v7.0 classification checkpoints carry model.transforms: T.Compose([CenterCrop, ToTensor, T.Normalize])
    project += [(CenterCrop, "utils.augmentations.CenterCrop"), (ToTensor, "utils.augmentations.ToTensor")]
    project += _torchvision_transforms()
    metadata = [
        argparse.Namespace,
        pathlib.Path, pathlib.PosixPath, pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath,
        (pathlib.PureWindowsPath, "pathlib.WindowsPath"),  # a Windows path read as data on any system
        set, frozenset, slice, range, complex,
    ]
    return project + _torch_nn_modules() + _torchvision_modules() + metadata + _numpy_globals()


# a legacy (pre-zip) torch file starts with a pickle of this magic number: PROTO n, LONG1 10 bytes
_LEGACY_MAGIC = b"\x8a\x0a" + torch.serialization.MAGIC_NUMBER.to_bytes(10, "little")


def _refused_global(err: pickle.UnpicklingError) -> str | None:
    """The module.name of the global torch's weights-only unpickler refused, or None when it refused nothing."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if found is None:
        return None
    name = found.group(1)
    return name if "." in name else f"builtins.{name}"  # torch reports builtins without their module


def _torch_reason(err: Exception) -> str:
    """The informative part of a torch.load error (its boilerplate about weights_only removed)."""
    msg = str(err)
    found = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", msg, re.S)
    text = found.group(1) if found else msg
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    module = type(err).__module__.lstrip("_")  # struct.error, pickle.UnpicklingError; builtins stay bare
    kind = type(err).__name__ if module == "builtins" else f"{module}.{type(err).__name__}"
    return f"{kind}: {lines[0]}" if lines else kind


def _why_unreadable(weights: Path, err: Exception) -> str:
    """What a weights file torch could not read is: empty, a truncated or damaged torch file, or not a torch file."""
    size = weights.stat().st_size
    with open(weights, "rb") as f:
        head = f.read(16)
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04"):  # torch.save writes a zip archive
        if not zipfile.is_zipfile(weights):
            return f"truncated or corrupt torch file: a zip archive (torch's format) without its end ({size} bytes)"
        try:
            with zipfile.ZipFile(weights) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            return f"corrupt torch file: a damaged zip archive ({e})"
        if bad:
            return f"corrupt torch file: its zip entry {bad} fails its checksum"
        return f"corrupt torch file: a zip archive whose content torch cannot read ({_torch_reason(err)})"
    if head[:1] == b"\x80" and head[2:14] == _LEGACY_MAGIC:
        return f"truncated or corrupt torch file in the legacy (pre-zip) format ({_torch_reason(err)})"
    return (f"not a torch file: neither a zip archive (what torch.save writes) nor a legacy torch pickle; its first "
            f"bytes are {head[:8]!r}")


def _unreadable(weights: str | Path, err: Exception) -> ValueError:
    """The error for a file torch cannot read at all, as opposed to a pickle the allowlist refuses."""
    return ValueError(f"{weights}: cannot load: {_why_unreadable(Path(weights), err)}. This is a damaged or foreign "
                      f"file, not a refused pickle: copy or download it again.")


def _is_state_dict(x) -> bool:
    """A non-empty mapping of names to tensors, as model.state_dict() returns."""
    return isinstance(x, dict) and bool(x) and all(isinstance(v, torch.Tensor) for v in x.values())


def _describe(x) -> str:
    """A short description of what a checkpoint (or its model entry) holds instead of a model."""
    if _is_state_dict(x):
        return f"a state dict ({type(x).__name__} of {len(x)} tensors, the first '{next(iter(x))}')"
    if isinstance(x, dict):
        return f"a {type(x).__name__} with keys {list(x)[:6]}"
    return f"a {type(x).__name__}"


def _check_checkpoint(ckpt, weights: str | Path) -> None:
    """Raise a ValueError that says what was found unless ckpt is a YOLOv5 checkpoint (its model a model object)."""
    expected = ("A YOLOv5 checkpoint is a dict whose 'model' (or 'ema') entry is the model object itself, as train.py "
                "saves it")
    key, x = None, ckpt
    if isinstance(ckpt, dict) and "model" in ckpt:
        bad = [k for k in ("ema", "model") if ckpt.get(k) is not None and not isinstance(ckpt[k], nn.Module)]
        if not bad:
            if ckpt.get("model") is None and ckpt.get("ema") is None:
                raise ValueError(f"{weights}: not a YOLOv5 checkpoint: its 'model' entry is None. {expected}.")
            return
        key, x = bad[0], ckpt[bad[0]]
    found = f"its '{key}' entry is {_describe(x)}, not a model" if key else f"found {_describe(x)}"
    hint = ""
    if _is_state_dict(x):
        index = f"['{key}']" if key else ""
        hint = (f" To use a state dict, build the model from its YAML and load the weights into it: model = "
                f"DetectionModel('yolov5s.yaml', nc=...); model.load_state_dict(torch.load('{weights}'){index}).")
    raise ValueError(f"{weights}: not a YOLOv5 checkpoint: {found}. {expected}.{hint}")


def torch_safe_load(weights: str | Path, map_location="cpu") -> dict:
    """torch.load with weights_only=True and the project's allowlist; other globals are refused with their name.

    A file torch cannot read at all (empty, truncated, damaged, not a torch file) raises a ValueError saying so; a
    pickle that names a global outside the allowlist raises pickle.UnpicklingError naming it. Nothing runs either way.
    """
    if not hasattr(torch.serialization, "safe_globals"):
        raise RuntimeError(f"Loading {weights} safely needs torch>=2.5 (torch.serialization.safe_globals)")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    try:
        with torch.serialization.safe_globals(safe_globals()), warnings.catch_warnings():
            # a pickle protocol other than torch's 2 (foreign files) makes torch warn before it fails
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(weights, map_location=map_location, weights_only=True)
    except OSError:
        raise  # unreadable for the system (permissions ...): its own message names the file
    except pickle.UnpicklingError as e:
        name = _refused_global(e)
        if name is not None:
            raise pickle.UnpicklingError(
                f"{weights}: refused to load: its pickle names the global '{name}', which is not a model or metadata "
                f"type this project allows. Unpickling it could run code; nothing was run and the file was not loaded."
            ) from None
        reason = _torch_reason(e)
        if not re.search(r"Unsupported operand|String is too long|EOF", reason):  # readable, but not allowed content
            raise pickle.UnpicklingError(f"{weights}: refused to load: the safe loader does not accept its content "
                                         f"({reason}); nothing was run and the file was not loaded.") from None
        raise _unreadable(weights, e) from None
    except Exception as e:  # torch's zip reader, a truncated stream (EOFError), garbage bytes (KeyError ...)
        raise _unreadable(weights, e) from None
    _check_checkpoint(ckpt, weights)
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
        if isinstance(m, (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU, Detect, DetectionModel)):
            m.inplace = inplace
        if isinstance(m, Detect):  # any grid-decoding head, subclasses included
            m.reset_grids()  # grids pickled by another version may be stale or a pre-v6.2 buffer
        elif isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
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
