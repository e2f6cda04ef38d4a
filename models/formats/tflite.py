"""TensorFlow Lite / LiteRT (<name>.tflite, <name>-fp16.tflite): converted from PyTorch by litert-torch, run by
ai-edge-litert.

The input stays NCHW float32, as PyTorch's. Stride and names are stored as YOLOv5 v7.0 stores them: meta.txt in a
zip archive appended to the model, which the interpreter ignores. With --half the convolution weights are stored in
float16 and dequantized by the graph (v7.0's -fp16.tflite), by ai-edge-quantizer, which comes with litert-torch.
"""

from __future__ import annotations

import copy
import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from models.formats.batching import run_fixed_shape
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


def tflite_path(weights: str | Path, half: bool = False) -> Path:
    """Where the export of weights goes: best.pt -> best.tflite, with --half best-fp16.tflite (v7.0's name)."""
    w = Path(weights)
    return w.with_name(f"{w.stem}-fp16.tflite") if half else TFLITE.path(w)


def export_tflite(model: torch.nn.Module, im: torch.Tensor, file: Path, metadata: dict, half: bool = False,
                  prefix: str = colorstr("TFLite:")) -> Path:
    """Convert the model with litert-torch to <name>.tflite (FP32) or <name>-fp16.tflite, and append its metadata."""
    litert_torch = _litert_torch()
    from importlib.metadata import version

    LOGGER.info(f"\n{prefix} starting export with litert-torch {version('litert-torch')}...")
    f = tflite_path(file, half)
    data = litert_torch.convert(standard_layout(model), (im.float().contiguous(),)).model_content()
    f.write_bytes(fp16_weights(data) if half else data)
    with zipfile.ZipFile(f, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.txt", json.dumps({**metadata, "shape": list(im.shape), "half": bool(half)}))
    return f


def _export(ctx: ExportContext) -> Path:
    """The registry's call: export_tflite on the prepared model, FP16 weights with --half."""
    return export_tflite(ctx.model, ctx.im, ctx.file, ctx.metadata, ctx.options["half"])


def _check_layer(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Convert one layer alone with litert-torch (raises where it cannot)."""
    _litert_torch().convert(standard_layout(layer), args)


def tflite_metadata(f: Path) -> dict:
    """meta.txt from the zip appended to a .tflite export ({} when there is none, with a warning)."""
    try:
        with zipfile.ZipFile(f) as z:
            info = z.getinfo("meta.txt")
            if info.file_size > 1 << 20:  # names of a few thousand classes fit in far less
                raise ValueError(f"{f}: meta.txt is {info.file_size} bytes, more than export.py writes")
            return json.loads(z.read(info))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        LOGGER.warning(f"WARNING {f}: no meta.txt appended (not exported by export.py); no stride or names read")
        return {}


class TFLiteRunner(Runner):
    """A .tflite model in LiteRT's interpreter (ai-edge-litert) on the CPU."""

    def __init__(self, w: str, device: torch.device, **_):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError(f"{w}: TFLite models need the 'ai-edge-litert' package (pip install "
                              f"ai-edge-litert)") from e
        LOGGER.info(f"Loading {w} for TensorFlow Lite (LiteRT) inference...")
        with open(w, "rb") as fh:
            head = fh.read(8)
        if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
            raise ValueError(f"{w}: not a TFLite model (no {TFLITE_IDENTIFIER.decode()} identifier at byte 4)")
        try:
            self.interpreter = Interpreter(model_path=w, num_threads=torch.get_num_threads())
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{w}: LiteRT could not load this model (corrupt or truncated): {e}") from e
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self.meta = tflite_metadata(Path(w))

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output, image by image when a batch-1 model gets a larger batch."""
        return run_fixed_shape(self.forward, im.cpu().float().numpy(), list(self.input["shape"]), "TFLite")

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for one input of the exported shape."""
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]).copy() for o in self.outputs]


# replaces unsupported.py's TensorFlow Lite row (in v7.0's place), or keeps that module from adding it
TFLITE = register(ExportFormat("TensorFlow Lite", "tflite", ".tflite", "tflite", export=_export, load=TFLiteRunner,
                               requirements=("litert_torch", "ai_edge_litert"), check_layer=_check_layer,
                               half_on_cpu=True))
