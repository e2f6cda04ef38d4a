"""A LiteRT model in ai-edge-litert's interpreter, called as a function: what TFLiteRunner runs, and what
export.py --int8 scores quantized models in memory with."""

from __future__ import annotations

import numpy as np
import torch


class LiteRTModel:
    """A LiteRT model (a file or its bytes) in ai-edge-litert's interpreter, called on one float32 input of the
    exported shape; returns every output. export.py --int8 scores models in memory with it."""

    def __init__(self, model_path: str | None = None, model_content: bytes | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=model_path, model_content=model_content,
                                       num_threads=torch.get_num_threads())
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for x."""
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]).copy() for o in self.outputs]
