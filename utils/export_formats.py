"""The table of model export formats, shared by export.py and models/backends.py (a leaf module: imports nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class ExportFormat(NamedTuple):
    """One row of the table: display name, --include argument, file suffix, whether this project supports it."""

    name: str
    argument: str
    suffix: str
    supported: bool


# YOLOv5 v7.0's list, in its order; the unsupported rows are kept so their names give a clear answer
FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("PyTorch", "-", ".pt", True),
    ExportFormat("TorchScript", "torchscript", ".torchscript", True),
    ExportFormat("ONNX", "onnx", ".onnx", True),
    ExportFormat("OpenVINO", "openvino", "_openvino_model", True),
    ExportFormat("TensorRT", "engine", ".engine", False),
    ExportFormat("CoreML", "coreml", ".mlmodel", False),
    ExportFormat("TensorFlow SavedModel", "saved_model", "_saved_model", False),
    ExportFormat("TensorFlow GraphDef", "pb", ".pb", False),
    ExportFormat("TensorFlow Lite", "tflite", ".tflite", False),
    ExportFormat("TensorFlow Edge TPU", "edgetpu", "_edgetpu.tflite", False),
    ExportFormat("TensorFlow.js", "tfjs", "_web_model", False),
    ExportFormat("PaddlePaddle", "paddle", "_paddle_model", False),
)

SUPPORTED = tuple(f.argument for f in FORMATS if f.supported and f.argument != "-")


def export_formats() -> list[ExportFormat]:
    """All formats YOLOv5 names, supported or not."""
    return list(FORMATS)


def format_of(argument: str) -> ExportFormat:
    """The row for an --include argument (case-insensitive); KeyError listing the known ones otherwise."""
    for f in FORMATS:
        if f.argument == argument.lower():
            return f
    raise KeyError(f"unknown export format '{argument}'; known formats: {', '.join(f.argument for f in FORMATS[1:])}")


def export_path(weights: str | Path, fmt: ExportFormat) -> Path:
    """Where an export of `weights` is written, named as YOLOv5 names it (yolov5s.onnx, yolov5s_openvino_model/)."""
    w = Path(weights)
    return w.with_suffix(fmt.suffix) if fmt.suffix.startswith(".") else w.parent / f"{w.stem}{fmt.suffix}"


def model_type(path: str | Path) -> dict[str, bool]:
    """Which format a weights path is, by its name: {'pt': ..., 'jit': ..., 'onnx': ..., 'xml': ..., ...}."""
    name = Path(str(path)).name
    keys = ("pt", "jit", "onnx", "xml", "engine", "coreml", "saved_model", "pb", "tflite", "edgetpu", "tfjs", "paddle")
    # the Edge TPU suffix ends in .tflite, so it must win over TF Lite; otherwise the first match decides
    hits = {k: False for k in keys}
    for k, f in zip(keys, FORMATS):
        hits[k] = name.endswith(f.suffix) or (k == "xml" and name.endswith(".xml"))
    if hits["edgetpu"]:
        hits["tflite"] = False
    return hits
