"""YOLOv5 v7.0's formats this project does not build, each with what it would need: their names still get a clear
"not supported" answer from export.py and DetectMultiBackend. A module that builds one registers it again under the
same argument, and the row keeps its place."""

from __future__ import annotations

from models.formats.registry import ExportFormat, format_of, register

# (name, --include argument, suffix, DetectMultiBackend flag, what it needs), in v7.0's order
V7_ONLY = (
    ("TensorRT", "engine", ".engine", "engine", "an NVIDIA GPU with CUDA and the tensorrt package"),
    ("TensorFlow SavedModel", "saved_model", "_saved_model", "saved_model", "TensorFlow"),
    ("TensorFlow GraphDef", "pb", ".pb", "pb", "TensorFlow"),
    ("TensorFlow Lite", "tflite", ".tflite", "tflite", "TensorFlow Lite"),
    ("TensorFlow Edge TPU", "edgetpu", "_edgetpu.tflite", "edgetpu", "the Edge TPU compiler and an Edge TPU"),
    ("TensorFlow.js", "tfjs", "_web_model", "tfjs", "TensorFlow and tensorflowjs"),
    ("PaddlePaddle", "paddle", "_paddle_model", "paddle", "PaddlePaddle and x2paddle"),
)

for name, argument, suffix, key, needs in V7_ONLY:
    try:
        format_of(argument)  # a module that builds this format registered it already (import order is free)
    except KeyError:
        register(ExportFormat(name, argument, suffix, key, needs=needs))
