"""TensorFlow Lite / LiteRT (<name>.tflite, <name>-fp16.tflite, <name>-int8.tflite): converted from PyTorch by
litert-torch, run by ai-edge-litert.

The input stays NCHW float32, as PyTorch's. Stride and names are stored as YOLOv5 v7.0 stores them, with the task,
input shape and precision beside them: meta.txt in a zip archive appended to the model, which the interpreter ignores.
ai-edge-quantizer, which comes with litert-torch, writes the other precisions from the FP32 model:
- --half: convolution weights stored in float16, dequantized by the graph (v7.0's -fp16.tflite);
- --int8: int8 weights and activations, calibrated on --data train images, with the head left float (models/formats/
  tflite_int8.py); the input and output stay float32.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from models.formats.batching import run_fixed_shape
from models.formats.litert import LiteRTModel
from models.formats.registry import ExportContext, ExportFormat, Runner, register
from utils.general import LOGGER, colorstr

TFLITE_IDENTIFIER = b"TFL3"  # the FlatBuffer file identifier at bytes 4-8 of every .tflite model


def _litert_torch():
    """The litert_torch converter, or an ImportError naming the optional extra that has it."""
    try:
        import litert_torch
    except ImportError as e:
        raise ImportError("TFLite export needs litert-torch (about 890 MB with jax): pip install -r "
                          "requirements-export.txt") from e
    return litert_torch


def standard_layout(model: torch.nn.Module) -> torch.nn.Module:
    """A float copy of model whose every tensor is contiguous NCHW (the fused CPU model stores channels-last weights).

    litert-torch 0.10 caches each constant under the address of `tensor.contiguous()`. For a channels-last weight that
    is a temporary copy, freed at once, so the next weight of the same shape can be allocated at the same address and
    get the first one's cached values: the second of two same-shape 3x3 convolutions in a row (two DualPConv or two
    Bottleneck blocks) then ran with the first one's weights. Contiguous tensors are their own contiguous() and stay
    alive, so their addresses are unique.
    """
    m = copy.deepcopy(model).float().eval()
    for t in itertools.chain(m.parameters(), m.buffers()):
        t.data = t.data.contiguous()
    for module in m.modules():  # tensors kept in plain lists (a head's grids) become constants of the graph too
        for name, v in list(vars(module).items()):
            if isinstance(v, list) and v and all(isinstance(t, torch.Tensor) for t in v):
                setattr(module, name, [t.contiguous() for t in v])
    return m


def fp16_weights(model: bytes) -> bytes:
    """The LiteRT model with its weights cast to float16, each dequantized to float32 in the graph before its op."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer

    qt = quantizer.Quantizer(bytearray(model))
    qt.add_weight_only_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 16,
                              algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    return bytes(qt.quantize(enable_progress_report=False).quantized_model)


def tflite_path(weights: str | Path, half: bool = False, int8: bool = False) -> Path:
    """Where the export of weights goes: best.pt -> best.tflite, best-fp16.tflite with --half and best-int8.tflite
    with --int8 (v7.0's names)."""
    w = Path(weights)
    return w.with_name(f"{w.stem}-int8.tflite") if int8 else w.with_name(f"{w.stem}-fp16.tflite") if half else \
        TFLITE.path(w)


def convert(model: torch.nn.Module, im: torch.Tensor, prefix: str = colorstr("TFLite:")) -> bytes:
    """The FP32 LiteRT model of model on inputs shaped as im, converted by litert-torch."""
    litert_torch = _litert_torch()
    from importlib.metadata import version

    LOGGER.info(f"\n{prefix} starting export with litert-torch {version('litert-torch')}...")
    return litert_torch.convert(standard_layout(model), (im.float().contiguous(),)).model_content()


def write_tflite(f: Path, model: bytes, metadata: dict) -> Path:
    """Write the LiteRT model to f with metadata appended as meta.txt in a zip archive."""
    f.write_bytes(model)
    with zipfile.ZipFile(f, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.txt", json.dumps(metadata))
    return f


def export_tflite(model: torch.nn.Module, im: torch.Tensor, file: Path, metadata: dict, half: bool = False,
                  prefix: str = colorstr("TFLite:")) -> Path:
    """Convert the model with litert-torch to <name>.tflite (FP32) or <name>-fp16.tflite, and append its metadata."""
    data = convert(model, im, prefix)
    return write_tflite(tflite_path(file, half), fp16_weights(data) if half else data,
                        {**metadata, "shape": list(im.shape), "half": bool(half)})


def _export(ctx: ExportContext) -> Path:
    """The registry's call: export_tflite on the prepared model (its task in the metadata), FP16 weights with --half,
    INT8 calibrated on --data with --int8."""
    o, metadata = ctx.options, {**ctx.metadata, "task": ctx.task}
    if not o["int8"]:
        return export_tflite(ctx.model, ctx.im, ctx.file, metadata, o["half"])
    from models.formats.tflite_int8 import quantize_within_drop

    prefix = colorstr("TFLite INT8:")
    images = ctx.calibration_images()
    metric = ctx.int8_metric() if ctx.int8_metric else None  # reads the val split before JAX's threads start
    model, recipe = quantize_within_drop(convert(ctx.model, ctx.im, prefix), ctx.model, images, metric,
                                         o.get("int8_max_drop", 0.01), prefix)
    return write_tflite(tflite_path(ctx.file, int8=True), model,
                        {**metadata, "shape": list(ctx.im.shape), "half": False, "int8": recipe})


def _check_layer(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Convert one layer alone with litert-torch (raises where it cannot)."""
    _litert_torch().convert(standard_layout(layer), args)


def tflite_metadata(f: Path) -> dict:
    """meta.txt from the zip appended to a .tflite export ({} when there is none, with a warning): JSON as this
    project writes it, or the Python dict literal YOLOv5 v7.0 writes (read as a literal, never run)."""
    try:
        with zipfile.ZipFile(f) as z:
            info = z.getinfo("meta.txt")
            if info.file_size > 1 << 20:  # names of a few thousand classes fit in far less
                raise ValueError(f"{f}: meta.txt is {info.file_size} bytes, more than export.py writes")
            text = z.read(info).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError):
        LOGGER.warning(f"WARNING {f}: no meta.txt appended (not exported by export.py); no stride or names read")
        return {}
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        try:
            meta = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            meta = None
    if not isinstance(meta, dict):
        LOGGER.warning(f"WARNING {f}: meta.txt is neither JSON nor a dict literal; no stride or names read")
        return {}
    return meta


class TFLiteRunner(Runner):
    """A .tflite model in LiteRT's interpreter (ai-edge-litert) on the CPU.

    This project's exports take NCHW input and return pixel boxes. A YOLOv5 v7.0 export (converted through TensorFlow)
    takes NHWC input and returns boxes divided by the image size: a 3-channel last axis marks it, and its input is
    transposed and its boxes scaled back to pixels, as v7.0's DetectMultiBackend does.
    """

    def __init__(self, w: str, device: torch.device, **_):
        if importlib.util.find_spec("ai_edge_litert") is None:
            raise ImportError(f"{w}: TFLite models need the 'ai-edge-litert' package (pip install ai-edge-litert)")
        LOGGER.info(f"Loading {w} for TensorFlow Lite (LiteRT) inference...")
        with open(w, "rb") as fh:
            head = fh.read(8)
        if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
            raise ValueError(f"{w}: not a TFLite model (no {TFLITE_IDENTIFIER.decode()} identifier at byte 4)")
        try:
            self.model = LiteRTModel(model_path=w)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{w}: LiteRT could not load this model (corrupt or truncated): {e}") from e
        shape = [int(x) for x in self.model.input["shape"]]
        self.nhwc = len(shape) == 4 and shape[3] == 3 and shape[1] != 3  # v7.0's TensorFlow layout
        self.shape = [shape[0], 3, shape[1], shape[2]] if self.nhwc else shape  # as DetectMultiBackend feeds it
        self.meta = tflite_metadata(Path(w))

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output, image by image when a batch-1 model gets a larger batch."""
        return run_fixed_shape(self.forward, im.cpu().float().numpy(), self.shape, "TFLite")

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for one NCHW input of the exported size; boxes in pixels."""
        if not self.nhwc:
            return self.model(x)
        y = self.model(x.transpose(0, 2, 3, 1))
        if y[0].ndim == 3 and y[0].shape[-1] > 4:  # detections: xywh normalised to the input size
            h, w = x.shape[2:]
            y[0][..., :4] *= np.array([w, h, w, h], dtype=np.float32)
        return y


# replaces unsupported.py's TensorFlow Lite row (in v7.0's place), or keeps that module from adding it
TFLITE = register(ExportFormat("TensorFlow Lite", "tflite", ".tflite", "tflite", export=_export, load=TFLiteRunner,
                               requirements=("litert_torch", "ai_edge_litert"), check_layer=_check_layer,
                               half_on_cpu=True, int8=True))
