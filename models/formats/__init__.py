"""Export formats: one module per format registers its entry (models/formats/registry.py says what an entry holds).

A new format is a new module imported here (or, from outside the project, any module that calls register()); the
table keeps YOLOv5 v7.0's order whatever the order of the imports.
"""

from models.formats import coreml, mnn, ncnn, onnx, openvino, pytorch, tflite, torchscript, unsupported  # noqa: F401
from models.formats.registry import (  # noqa: F401
    ExportContext,
    ExportFormat,
    NotRunnableHere,
    Runner,
    export_formats,
    exportable,
    format_for,
    format_of,
    model_type,
    register,
    unregister,
)
