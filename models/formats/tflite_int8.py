"""LiteRT INT8 (<name>-int8.tflite): the FP32 conversion quantized by ai-edge-quantizer, which comes with litert-torch.

Two of its recipes, measured by benchmarks/tflite_int8.py on trained shapes checkpoints (README, "INT8 for ncnn, MNN
and LiteRT"):
- static (static_wi8_ai8): int8 weights and activations, the activation ranges calibrated on --data train images.
  The head stays float: its one output holds pixel boxes (0 to imgsz) beside 0-1 scores, which one int8 scale cannot
  both resolve. About half of FP32's latency.
- dynamic-range (dynamic_wi8_afp32): int8 weights, activations quantized at run time from each one's own range, so
  nothing depends on calibration. About two thirds of FP32's latency, and the closer to FP32's accuracy.
export.py --int8 writes the static model; for detection it scores it and FP32 on --data's val images with val.py's
mAP50-95, and falls back to dynamic-range when static loses more than --int8-max-drop (as the OpenVINO export returns
layers to float). The model's input and output stay float32 either way, as DetectMultiBackend feeds and reads them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import torch

from models.formats.litert import LiteRTModel
from utils.general import LOGGER, colorstr

# ai-edge-quantizer's recipe functions (ai_edge_quantizer.recipe)
STATIC, DYNAMIC = "static_wi8_ai8", "dynamic_wi8_afp32"


def head_scope(model: torch.nn.Module) -> str:
    """The op scope litert-torch gives the model's last layer, its head ('models.fused.DetectFused_24'), with the
    output's name, which scopes the head's last op; '_output' alone for a model without a layer list."""
    layers = getattr(model, "model", None)
    if not isinstance(layers, torch.nn.Sequential):
        return "_output"
    head = layers[-1]
    return f"{type(head).__module__}.{type(head).__name__}_{len(layers) - 1}|_output".replace(".", r"\.")


def int8_recipe(name: str, float_scope: str | None = None) -> list[dict]:
    """ai-edge-quantizer's recipe `name` with the model's input and output left float32 and the ops whose scope
    matches the regex float_scope not quantized.

    The recipes' ALL_SUPPORTED covers the INPUT and OUTPUT ops: static_wi8_ai8 alone makes an int8-input model, which
    DetectMultiBackend (and a user's float pipeline) cannot feed. A later entry wins over an earlier one for the ops it
    matches, so these put the quantize and dequantize ops inside the graph instead.
    """
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(getattr(recipe, name)())
    float_ops = [(".*", qtyping.TFLOperationName.INPUT), (".*", qtyping.TFLOperationName.OUTPUT)]
    if float_scope:
        float_ops.append((float_scope, qtyping.TFLOperationName.ALL_SUPPORTED))
    for scope, op in float_ops:
        manager.add_quantization_config(scope, op, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return manager.get_quantization_recipe()


def quantize(model: bytes, recipe: list[dict], images: Iterable[np.ndarray] | None = None) -> bytes:
    """The LiteRT model quantized by recipe; a recipe that quantizes activations statically calibrates on images
    (float32 1x3xHxW arrays, as val.py feeds exports)."""
    from ai_edge_quantizer import quantizer

    qt = quantizer.Quantizer(bytearray(model))
    qt.load_quantization_recipe(recipe)
    stats = None
    if qt.need_calibration:
        if images is None:
            raise ValueError("static INT8 needs calibration images (--data train images)")
        stats = qt.calibrate({"serving_default": [{"args_0": x} for x in images]}, num_threads=torch.get_num_threads())
    return bytes(qt.quantize(stats, enable_progress_report=False).quantized_model)


def quantize_within_drop(fp32: bytes, model: torch.nn.Module, images: Collection[np.ndarray], metric=None,
                         max_drop: float = 0.01, prefix: str = colorstr("TFLite INT8:")) -> tuple[bytes, str]:
    """The static INT8 model of fp32 (the LiteRT conversion of model) calibrated on images, with the head float, and
    its recipe's name. With metric (a utils.int8_accuracy.AccuracyMetric) the drop from FP32 is measured and, above
    max_drop, the dynamic-range model replaces it where that loses less."""
    LOGGER.info(f"{prefix} static INT8 ({STATIC}, head float), calibrated on {len(images)} images...")
    chosen, recipe = quantize(fp32, int8_recipe(STATIC, head_scope(model)), images), STATIC
    if metric is None:
        return chosen, recipe
    score = {k: metric.score(LiteRTModel(model_content=v), metric.items) for k, v in (("FP32", fp32), (STATIC, chosen))}
    LOGGER.info(f"{prefix} {metric.name} on {len(metric.items)} val images: FP32 {score['FP32']:.4f}, INT8 "
                f"{score[STATIC]:.4f}, drop {score['FP32'] - score[STATIC]:.4f} (--int8-max-drop {max_drop})")
    if score["FP32"] - score[STATIC] > max_drop:
        dynamic = quantize(fp32, int8_recipe(DYNAMIC))
        score[DYNAMIC] = metric.score(LiteRTModel(model_content=dynamic), metric.items)
        LOGGER.info(f"{prefix} dynamic-range INT8 ({DYNAMIC}): {metric.name} {score[DYNAMIC]:.4f}, drop "
                    f"{score['FP32'] - score[DYNAMIC]:.4f}")
        if score[DYNAMIC] > score[STATIC]:
            chosen, recipe = dynamic, DYNAMIC
        drop = score["FP32"] - score[recipe]
        if drop > max_drop:
            LOGGER.warning(f"WARNING {prefix} the drop {drop:.4f} is over --int8-max-drop {max_drop} with both "
                           f"recipes; keeping {recipe}")
    LOGGER.info(f"{prefix} keeping {recipe}")
    return chosen, recipe
