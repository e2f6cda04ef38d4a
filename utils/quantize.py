"""INT8 post-training quantization of exported models with NNCF, calibrated on real images of a dataset."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import numpy as np
from tqdm import tqdm

from utils.dataloaders import create_dataloader
from utils.general import LOGGER, TQDM_BAR_FORMAT, check_dataset, colorstr
from utils.sigstack import keep_signal_stack

# node types that end the walk back from the outputs: everything between them and the outputs is the Detect decode
_LAYER_TYPES = ("Convolution", "GroupConvolution", "MatMul", "Parameter")


class CalibrationImages:
    """Images of one dataset split, letterboxed as val.py feeds exported models, as float32 BCHW arrays in [0, 1].

    Iterating loads the images lazily (a progress bar shows the calibration pass); the same images come in the same
    order every time, spread evenly over the split.
    """

    def __init__(self, data: str | dict, imgsz: int, stride: int = 32, n: int = 300, split: str = "train"):
        if n < 1:
            raise ValueError(f"calibration needs at least 1 image, got {n}")
        self.dataset = self.load(data, imgsz, stride, split)
        total = len(self.dataset)
        if n > total:
            LOGGER.warning(f"WARNING {data}: {split} split has {total} images, fewer than the {n} asked for "
                           f"calibration; using all {total}")
        self.indices = np.linspace(0, total - 1, min(n, total)).round().astype(int).tolist()

    @staticmethod
    def load(data: str | dict, imgsz: int, stride: int, split: str):
        """The dataset to calibrate on: val.py's loader for exported models (square letterbox, no padding margin)."""
        path = check_dataset(data).get(split)
        if not path:
            raise ValueError(f"{data}: no '{split}' split to calibrate INT8 quantization on")
        return create_dataloader(path, imgsz, 1, stride, pad=0.0, rect=False, workers=0,
                                 prefix=colorstr("calibration: "))[1]

    def array(self, i: int) -> np.ndarray:
        """Image i of the dataset as the exported model takes it: float32 1x3xHxW in [0, 1]."""
        im = self.dataset[i][0].numpy()  # CHW RGB uint8, as val.py reads it
        return im[None].astype(np.float32) / 255.0

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in tqdm(self.indices, desc="INT8 calibration", bar_format=TQDM_BAR_FORMAT):
            yield self.array(i)


def decode_node_names(ov_model) -> list[str]:
    """Friendly names of the nodes between the last layers with weights and the outputs (the Detect decode)."""
    return _walk_to_layers(ov_model)[0]


def _walk_to_layers(ov_model) -> tuple[list[str], list[str]]:
    """Walk back from the outputs to the first layers with weights: (nodes passed on the way, the layers reached)."""
    names, layers, seen = [], [], set()
    stack = [r.input_value(0).get_node() for r in ov_model.get_results()]
    while stack:
        node = stack.pop()
        name = node.get_friendly_name()
        if name in seen:
            continue
        seen.add(name)
        kind, bias = node.get_type_name(), _is_bias_add(node)
        if kind in _LAYER_TYPES or bias:
            if kind != "Parameter":
                layers.append(name)
            if bias:  # the bias belongs to its convolution: name that one too
                stack.extend(node.input_value(i).get_node() for i in range(node.get_input_size())
                             if node.input_value(i).get_node().get_type_name() in _LAYER_TYPES)
            continue
        if kind != "Constant":
            names.append(name)
        stack.extend(node.input_value(i).get_node() for i in range(node.get_input_size()))
    return names, layers


def slices_to_strided(ov_model) -> int:
    """Rewrite constant Slice nodes as the equal StridedSlice, in place; returns how many were rewritten.

    NNCF moves quantizers up through StridedSlice but not through Slice, so a CSPPC block's channel slice would get its
    own quantizer after a float Slice, and the convolution before it could not emit int8 for both of its readers.
    """
    import openvino.opset13 as ops

    n = 0
    for node in ov_model.get_ordered_ops():
        if node.get_type_name() != "Slice" or node.get_input_partial_shape(0).rank.is_dynamic:
            continue
        args = [node.input_value(i).get_node() for i in range(1, node.get_input_size())]
        if len(args) < 4 or any(a.get_type_name() != "Constant" for a in args):
            continue
        start, stop, step, axes = (a.get_data().astype(np.int64).ravel() for a in args[:4])
        rank = node.get_input_partial_shape(0).rank.get_length()
        begin, end, strides = np.zeros(rank, np.int64), np.zeros(rank, np.int64), np.ones(rank, np.int64)
        mask = [1] * rank  # 1: this axis is taken whole
        for a, b, e, st in zip(axes, start, stop, step):
            a = int(a) % rank
            begin[a], end[a], strides[a], mask[a] = b, e, st, 0
        new = ops.strided_slice(node.input_value(0), ops.constant(begin), ops.constant(end), ops.constant(strides),
                                begin_mask=mask, end_mask=mask)
        new.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(new.output(0))
        n += 1
    if n:
        ov_model.validate_nodes_and_infer_types()
    return n


def _is_bias_add(node) -> bool:
    """True for the Add that applies a convolution's bias: it belongs to the layer, which is quantized."""
    inputs = [node.input_value(i).get_node().get_type_name() for i in range(node.get_input_size())]
    return node.get_type_name() == "Add" and any(t in _LAYER_TYPES for t in inputs)


def _nncf():
    """The nncf module, or an ImportError saying how to install it."""
    try:
        import nncf
    except ImportError as e:
        raise ImportError("INT8 export needs the 'nncf' package: pip install nncf") from e
    return nncf


def quantization_settings(ov_model, keep_decode_float: bool = True, preset: str = "performance",
                          prefix: str = colorstr("OpenVINO:")) -> dict:
    """NNCF's arguments for this project's CPU quantization of ov_model (which gets its Slices made StridedSlices).

    keep_decode_float leaves the output convolutions and the decode after them in float: they are a small share of
    the time, and the boxes and scores come straight out of them. preset 'performance' quantizes activations
    symmetrically (signed int8, no zero point), 'mixed' gives them a zero point; the README's INT8 section has the
    figures behind both choices.
    """
    nncf = _nncf()
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    if preset not in presets:
        raise ValueError(f"INT8 preset '{preset}' is not one of {', '.join(presets)}")
    rewritten = slices_to_strided(ov_model)
    if rewritten:
        LOGGER.info(f"{prefix} {rewritten} channel slices rewritten as StridedSlice so they pass int8 through")
    ignored = None
    if keep_decode_float:
        names, layers = _walk_to_layers(ov_model)
        ignored = nncf.IgnoredScope(names=names + layers, validate=False) if names or layers else None
        LOGGER.info(f"{prefix} keeping the output convolutions and {len(names)} decode nodes after them in float")
    return dict(preset=presets[preset], target_device=nncf.TargetDevice.CPU, ignored_scope=ignored)


@contextmanager
def quiet_nncf():
    """NNCF logs one INFO line per node it leaves in float: keep its warnings only, inside this block."""
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        nncf_logger.setLevel(level)


def quantize_openvino(ov_model, images: CalibrationImages, keep_decode_float: bool = True, preset: str = "performance",
                      prefix: str = colorstr("OpenVINO:")):
    """An INT8 copy of an OpenVINO model from NNCF post-training quantization for the CPU on the given images.

    keep_decode_float and preset: see quantization_settings.
    """
    nncf = _nncf()
    settings = quantization_settings(ov_model, keep_decode_float, preset, prefix)
    LOGGER.info(f"{prefix} quantizing with nncf {nncf.__version__} ({preset} preset) on {len(images)} calibration "
                f"images...")
    with quiet_nncf(), keep_signal_stack():  # NNCF compiles models on the CPU plugin: see utils/sigstack.py
        return nncf.quantize(ov_model, nncf.Dataset(images), subset_size=len(images), **settings)


def quantize_openvino_accuracy(ov_model, images: CalibrationImages, items: list, validate: Callable, max_drop: float,
                               transform: Callable | None = None, prefix: str = colorstr("OpenVINO:")):
    """NNCF's accuracy-aware INT8 copy of ov_model: layers whose quantization costs `validate`'s metric go back to
    float until the absolute drop is at most max_drop (or no layer is left to revert).

    validate(compiled_model, items) -> float scores a compiled model on some of `items` (the validation data);
    transform turns one item into the model's input array.
    """
    nncf = _nncf()
    settings = quantization_settings(ov_model, prefix=prefix)
    LOGGER.info(f"{prefix} accuracy-aware quantization with nncf {nncf.__version__} on {len(images)} calibration and "
                f"{len(items)} validation images (max drop {max_drop})...")
    with quiet_nncf(), keep_signal_stack():
        return nncf.quantize_with_accuracy_control(
            ov_model, nncf.Dataset(images), nncf.Dataset(items, transform), lambda m, data: (validate(m, data), None),
            max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(images), **settings)


def quantized_ops(ov_model) -> set[str]:
    """Friendly names of the operations that read a FakeQuantize output: those that run in int8."""
    return {op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() != "FakeQuantize" and
            any(op.input_value(i).get_node().get_type_name() == "FakeQuantize" for i in range(op.get_input_size()))}
