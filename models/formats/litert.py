"""A LiteRT model in ai-edge-litert's interpreter, called as a function: what TFLiteRunner runs, and what
export.py --int8 scores quantized models in memory with."""

from __future__ import annotations

import numpy as np
import torch


class LiteRTModel:
    """A LiteRT model (a file or its bytes) in ai-edge-litert's interpreter, called on one float32 input of the
    exported shape; returns every output as float32. export.py --int8 scores models in memory with it.

    A model with integer input or outputs (YOLOv5 v7.0's -int8.tflite: uint8 in and out) gets its input quantized and
    its outputs dequantized with the scale and zero point the model stores.
    """

    def __init__(self, model_path: str | None = None, model_content: bytes | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=model_path, model_content=model_content,
                                       num_threads=torch.get_num_threads())
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for x."""
        x = quantize(np.ascontiguousarray(x, dtype=np.float32), self.input)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return [dequantize(self.interpreter.get_tensor(o["index"]), o) for o in self.outputs]


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """x as the tensor of detail takes it: unchanged for a float tensor, else x / scale + zero point, rounded and
    clipped to the integer type."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """A float32 copy of an output: (y - zero point) * scale for an integer tensor."""
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32, copy=True)
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale
