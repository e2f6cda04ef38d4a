"""MNN (<name>.mnn): the ONNX export converted by MNN's converter, run by the MNN package; stride and names are
stored as JSON in the model's bizCode field."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from models.formats.batching import run_fixed_shape
from models.formats.onnx import layer_to_onnx
from models.formats.registry import ExportContext, ExportFormat, Runner, register
from utils.general import LOGGER, colorstr

FLATBUFFER_MIN_BYTES = 64  # smaller than any MNN model's header and tables


def _converter():
    """MNN's converter entry (_tools.mnnconvert), or an ImportError saying how to install it.

    The converter is called directly, not through MNN.tools.mnnconvert.main, which also sends a usage log over the
    network.
    """
    try:
        import _tools
        import MNN
    except ImportError as e:
        raise ImportError("MNN export needs the 'MNN' package: pip install MNN") from e
    return MNN, _tools


def mnn_convert(onnx_file: Path, f: Path, metadata: dict, half: bool = False) -> Path:
    """Convert an ONNX file to MNN (FP16 weights with half), metadata as JSON in bizCode; raises when it fails."""
    _, tools = _converter()
    args = ["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx_file), "--MNNModel", str(f),
            "--bizCode", json.dumps(metadata)]
    if half:
        args.append("--fp16")
    if not tools.mnnconvert(args) or not f.is_file():
        raise RuntimeError(f"MNN's converter could not convert {onnx_file} (see its log above)")
    return f


def export_mnn(onnx_file: Path, file: Path, metadata: dict, shape: list[int], half: bool = False,
               prefix: str = colorstr("MNN:")) -> Path:
    """Convert the ONNX export (input shape `shape`) to <name>.mnn."""
    mnn, _ = _converter()
    LOGGER.info(f"\n{prefix} starting export with MNN {mnn.version()}...")
    return mnn_convert(onnx_file, MNN_FORMAT.path(file), {**metadata, "shape": shape, "half": half}, half)


def _export(ctx: ExportContext) -> Path:
    """The registry's call: from this run's ONNX export, FP16 weights with --half."""
    return export_mnn(ctx.need("onnx"), ctx.file, ctx.metadata, list(ctx.im.shape), ctx.options["half"])


def _check_layer(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Export one layer to ONNX and convert it to MNN (raises where either cannot)."""
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "layer.onnx"
        onnx_file.write_bytes(layer_to_onnx(layer, args, opset))
        mnn_convert(onnx_file, Path(tmp) / "layer.mnn", {})


def check_mnn_file(f: Path) -> None:
    """Refuse a file that cannot be an MNN model (too short, or not a FlatBuffer whose root offset lies inside it),
    before MNN parses it."""
    data = f.read_bytes()[:8]
    size = f.stat().st_size
    root = int.from_bytes(data[:4], "little") if len(data) >= 4 else 0
    if size < FLATBUFFER_MIN_BYTES or not 4 <= root < size:
        raise ValueError(f"{f}: not an MNN model ({size} bytes, FlatBuffer root offset {root})")


class MNNRunner(Runner):
    """An MNN model run by MNN's expression API on the CPU, in FP32 precision."""

    def __init__(self, w: str, device: torch.device, **_):
        try:
            import MNN
        except ImportError as e:
            raise ImportError(f"{w}: MNN models need the 'MNN' package (pip install MNN)") from e
        LOGGER.info(f"Loading {w} for MNN inference...")
        check_mnn_file(Path(w))
        expr = MNN.expr
        self.expr = expr
        try:
            self.module = MNN.nn.load_module_from_file(w, [], [], thread_num=torch.get_num_threads(),
                                                       precision_mode=expr.PrecisionMode.High)
        except Exception as e:  # MNN verifies the FlatBuffer and raises SystemError on a damaged one
            raise ValueError(f"{w}: MNN could not load this model (corrupt or truncated): {e}") from e
        if self.module is None:
            raise ValueError(f"{w}: MNN could not load this model (corrupt or truncated)")
        info = self.module.get_info() or {}
        try:
            self.meta = json.loads(info.get("bizCode") or "{}")
        except json.JSONDecodeError:
            LOGGER.warning(f"WARNING {w}: its bizCode is not the JSON export.py writes; no stride or names read")
            self.meta = {}
        self.warmup()

    def warmup(self) -> None:
        """One run on zeros at the exported shape: MNN prepares its kernels on the first run (seconds), which would
        otherwise land on the first image and in val.py's inference time."""
        shape = self.meta.get("shape")
        if shape:
            self.forward(np.zeros(shape, dtype=np.float32))

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output of the model, as NCHW arrays; a batch-1 export runs a larger batch image by image."""
        x = np.ascontiguousarray(im.cpu().float().numpy())
        return run_fixed_shape(self.forward, x, list(self.meta.get("shape", x.shape)), "MNN")

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for one input array of the exported shape."""
        ys = self.module.forward([self.expr.const(x, list(x.shape), self.expr.NCHW)])
        if not ys:  # MNN logs a shape error and returns nothing instead of raising
            raise RuntimeError(f"MNN returned no output for input shape {x.shape} (see MNN's log above)")
        return [np.array(self.expr.convert(y, self.expr.NCHW).read()).copy() for y in ys]


MNN_FORMAT = register(ExportFormat("MNN", "mnn", ".mnn", "mnn", export=_export, load=MNNRunner,
                                   requirements=("MNN", "onnx"), check_layer=_check_layer, source="onnx"))
