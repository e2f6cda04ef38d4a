"""TorchScript (.torchscript): the traced model, with its input shape, stride and names stored as config.txt."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from models.formats.registry import ExportContext, ExportFormat, Runner, register
from models.formats.tracing import quiet_tracing
from utils.general import LOGGER, colorstr


def export_torchscript(model, im: torch.Tensor, file: Path, metadata: dict, optimize: bool,
                       prefix: str = colorstr("TorchScript:")) -> Path:
    """Trace the model and save it with its metadata (shape, stride, names) as config.txt."""
    LOGGER.info(f"\n{prefix} starting export with torch {torch.__version__}...")
    f = TORCHSCRIPT.path(file)
    with quiet_tracing():  # the tracer's own re-run check is skipped: check_export compares real outputs after
        ts = torch.jit.trace(model, im, strict=False, check_trace=False)
    extra_files = {"config.txt": json.dumps({"shape": list(im.shape), **metadata})}
    if optimize:  # https://pytorch.org/tutorials/recipes/mobile_interpreter.html
        from torch.utils.mobile_optimizer import optimize_for_mobile

        optimize_for_mobile(ts)._save_for_lite_interpreter(str(f), _extra_files=extra_files)
    else:
        ts.save(str(f), _extra_files=extra_files)
    return f


def _export(ctx: ExportContext) -> Path:
    """The registry's call: export_torchscript with export.run's --optimize."""
    return export_torchscript(ctx.model, ctx.im, ctx.file, ctx.metadata, ctx.options["optimize"])


def _check_layer(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Trace one layer alone (raises where the tracer cannot)."""
    with quiet_tracing():
        torch.jit.trace(layer, args, strict=False, check_trace=False)


class TorchScriptRunner(Runner):
    """A TorchScript file loaded with torch.jit.load; its config.txt gives stride and names."""

    def __init__(self, w: str, device: torch.device, fp16: bool = False, **_):
        LOGGER.info(f"Loading {w} for TorchScript inference...")
        extra_files = {"config.txt": ""}
        with warnings.catch_warnings():  # torch>=2.9 marks torch.jit deprecated; loading still works
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            self.model = torch.jit.load(w, _extra_files=extra_files, map_location=device)
        self.model.half() if fp16 else self.model.float()
        self.meta = json.loads(extra_files["config.txt"]) if extra_files["config.txt"] else {}

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False):
        """The traced model's output."""
        return self.model(im)


TORCHSCRIPT = register(ExportFormat("TorchScript", "torchscript", ".torchscript", "jit", export=_export,
                                    load=TorchScriptRunner, requirements=("torch",), check_layer=_check_layer,
                                    gpu=True))
