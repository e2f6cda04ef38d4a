"""The tracer's warnings, silenced for the exports that trace (TorchScript, ONNX and what converts from ONNX)."""

from __future__ import annotations

import contextlib
import warnings

import torch


@contextlib.contextmanager
def quiet_tracing():
    """Silence only the tracer's own warnings: torch.jit.trace/ONNX export are deprecated in torch>=2.9 but still
    work, and the TracerWarnings flag Python-side shape checks that are constant for a fixed-size export."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(trace|trace_method|script)`? is deprecated",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        yield
