"""INT8 that holds its accuracy: plain NNCF quantization when the metric's drop is within the bound, otherwise NNCF's
accuracy-aware quantization, which returns the layers that cost accuracy to float."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from utils.general import LOGGER, colorstr
from utils.quantize import CalibrationImages, quantize_openvino, quantize_openvino_accuracy, quantized_ops
from utils.sigstack import keep_signal_stack


@dataclass
class AccuracyMetric:
    """A metric of exported models on validation data, as NNCF's accuracy control takes it.

    items: the validation data items (e.g. image indices); score(compiled_model, items) -> the metric on those items,
    higher is better; transform(item) -> the model's input array for one item.
    """

    name: str
    items: list
    score: Callable
    transform: Callable


@dataclass
class Int8Result:
    """The quantized model and what it cost: the metric of the float and INT8 models, the layers reverted to float."""

    model: object
    fp32: float
    plain: float  # the plain (all-layers) INT8 model's metric
    final: float  # the returned model's metric
    reverted: list[str]

    @property
    def drop(self) -> float:
        """How much the returned model loses against the float one."""
        return self.fp32 - self.final


def compile_f32(ov_model):
    """ov_model compiled for the CPU in float32 (this CPU's plugin would pick bf16 by itself where it has it)."""
    import openvino as ov

    with keep_signal_stack():  # see utils/sigstack.py
        return ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def quantize_within_drop(float_model: Callable, images: CalibrationImages, metric: AccuracyMetric, max_drop: float,
                         prefix: str = colorstr("OpenVINO INT8:")) -> Int8Result:
    """INT8 copy of float_model() whose metric drops by at most max_drop where NNCF can reach it.

    float_model returns a fresh float ov.Model each call (NNCF and the slice rewrite edit what they get). The plain
    quantization is kept when it is within the bound, so the default model is exactly as fast as before.
    """
    if max_drop < 0:
        raise ValueError(f"--int8-max-drop must be 0 or more, got {max_drop}")
    plain = quantize_openvino(float_model(), images, prefix=prefix)
    fp32 = metric.score(compile_f32(float_model()), metric.items)
    q = metric.score(compile_f32(plain), metric.items)
    LOGGER.info(f"{prefix} {metric.name} on {len(metric.items)} val images: FP32 {fp32:.4f}, INT8 {q:.4f}, "
                f"drop {fp32 - q:.4f} (--int8-max-drop {max_drop})")
    if fp32 - q <= max_drop:
        LOGGER.info(f"{prefix} drop within {max_drop}: keeping the plain quantization, every layer in int8")
        return Int8Result(plain, fp32, q, q, [])
    aware = quantize_openvino_accuracy(float_model(), images, metric.items, metric.score, max_drop,
                                       metric.transform, prefix=prefix)
    reverted = sorted(quantized_ops(plain) - quantized_ops(aware))
    final = metric.score(compile_f32(aware), metric.items)
    LOGGER.info(f"{prefix} {len(reverted)} operations went back to float: {', '.join(reverted) or 'none'}")
    LOGGER.info(f"{prefix} {metric.name} FP32 {fp32:.4f}, INT8 accuracy-aware {final:.4f}: final drop "
                f"{fp32 - final:.4f} (plain INT8 dropped {fp32 - q:.4f})")
    if fp32 - final > max_drop:
        LOGGER.warning(f"WARNING {prefix} the drop {fp32 - final:.4f} is still over --int8-max-drop {max_drop}: NNCF "
                       f"found no more layers whose float version restores {metric.name}")
    return Int8Result(aware, fp32, q, final, reverted)
