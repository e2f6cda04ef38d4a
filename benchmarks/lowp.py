"""Low-precision columns of benchmarks/compare.py: OpenVINO FP32 / INT8 / BF16 and PyTorch BF16 latency and mAP.

INT8 is NNCF post-training quantization calibrated on --data train images (utils/quantize.py, as export.py --int8
does); BF16 columns are measured only where the CPU computes bf16 natively (utils.torch_utils.cpu_bf16_supported).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from utils.general import LOGGER
from utils.quantize import CalibrationImages, quantize_openvino
from utils.sigstack import keep_signal_stack
from utils.torch_utils import cpu_bf16_supported

COLUMNS = ["openvino_ms", "openvino_ratio", "openvino_int8_ms", "openvino_int8_ratio", "int8_vs_fp32",
           "openvino_bf16_ms", "pytorch_bf16_ms", "map50_95_openvino", "map50_95_int8", "map50_95_bf16_openvino",
           "map50_95_bf16_pytorch"]


def compile_openvino(ov_model, threads: int, precision: str = "f32"):
    """A CPU-compiled OpenVINO model for batch-1 latency: one stream, `threads` threads, the given float precision."""
    import openvino as ov

    # no core pinning: on a machine shared with other jobs a pinned thread waits for its busy core (measured 10-30%
    # slower here under load); every precision is compiled alike, so the ratios compare the same setting
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": precision, "ENABLE_CPU_PINNING": False}
    with keep_signal_stack():  # see utils/sigstack.py
        return ov.Core().compile_model(ov_model, "CPU", config)


def openvino_calls(onnx_file: Path, im: torch.Tensor, data: str, images: int, stride: int, threads: int,
                   bf16: bool) -> dict[str, callable]:
    """Timed calls of one model in OpenVINO: 'fp32', 'int8' (quantized on `images` train images) and 'bf16'."""
    import openvino as ov

    x = im.cpu().numpy()
    calibration = CalibrationImages(data, im.shape[-1], stride, n=images)
    models = {"fp32": compile_openvino(ov.convert_model(str(onnx_file)), threads),
              "int8": compile_openvino(quantize_openvino(ov.convert_model(str(onnx_file)), calibration), threads)}
    if bf16:
        models["bf16"] = compile_openvino(ov.convert_model(str(onnx_file)), threads, "bf16")
    requests = {k: m.create_infer_request() for k, m in models.items()}
    return {k: (lambda r=r: r.infer({0: x})) for k, r in requests.items()}


def pytorch_bf16_call(model: torch.nn.Module, im: torch.Tensor) -> callable:
    """A timed call of the fused PyTorch model under CPU bf16 autocast, as DetectMultiBackend runs --half on CPU."""

    def call():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(im)

    return call


def lowp_map(weights: str, label: str, data: str, imgsz: int, images: int, save_dir: Path, validate: callable) -> dict:
    """mAP50-95 of one checkpoint exported to OpenVINO FP32 and INT8 at imgsz, validated by val.py (and in bf16)."""
    import export

    work = save_dir / "exports"
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / f"{label}.pt"
    shutil.copy(weights, ckpt)  # exports land next to the weights: keep them out of the training run's folder
    fp32 = export.run(weights=ckpt, imgsz=(imgsz, imgsz), include=["openvino"])[0]
    int8 = export.run(weights=ckpt, imgsz=(imgsz, imgsz), include=["openvino"], int8=True, data=data,
                      int8_images=images)[0]
    out = {"map50_95_openvino": validate(fp32, False)[1], "map50_95_int8": validate(int8, False)[1]}
    if cpu_bf16_supported():
        out["map50_95_bf16_openvino"] = validate(fp32, True)[1]
        out["map50_95_bf16_pytorch"] = validate(str(ckpt), True)[1]
    return out


def lowp_table(rows: list[dict], bf16: bool) -> str:
    """The low-precision columns as a markdown table (one row per model and batch)."""
    head = ["Model", "Batch", "OV FP32 ms", "ratio", "OV INT8 ms", "ratio", "INT8 / FP32"]
    keys = [("openvino_ms", ".1f"), ("openvino_ratio", ".3f"), ("openvino_int8_ms", ".1f"),
            ("openvino_int8_ratio", ".3f"), ("int8_vs_fp32", ".3f")]
    if bf16:
        head += ["OV BF16 ms", "PyTorch BF16 ms"]
        keys += [("openvino_bf16_ms", ".1f"), ("pytorch_bf16_ms", ".1f")]
    if any(r.get("map50_95_int8") is not None for r in rows):
        head += ["mAP50-95 OV FP32", "OV INT8"] + (["OV BF16", "PyTorch BF16"] if bf16 else [])
        keys += [("map50_95_openvino", ".3f"), ("map50_95_int8", ".3f")]
        keys += [("map50_95_bf16_openvino", ".3f"), ("map50_95_bf16_pytorch", ".3f")] if bf16 else []
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        cells = [r["model"], str(r["batch"])] + ["-" if r.get(k) is None else format(r[k], f) for k, f in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_ratios(rows: list[dict]) -> None:
    """CSPPC/yolov5n style ratios to the first row of the same batch, and INT8 over FP32 per model."""
    for r in rows:
        base = next(b for b in rows if b["batch"] == r["batch"])
        for k in ("openvino", "openvino_int8"):
            r[f"{k}_ratio"] = r[f"{k}_ms"] / base[f"{k}_ms"] if r.get(f"{k}_ms") and base.get(f"{k}_ms") else None
        r["int8_vs_fp32"] = r["openvino_int8_ms"] / r["openvino_ms"] if r.get("openvino_int8_ms") else None


def bf16_note() -> str:
    """One line saying whether BF16 was measured on this CPU."""
    if cpu_bf16_supported():
        return "BF16 measured: the CPU has native bf16 (avx512_bf16/amx_bf16)"
    LOGGER.info("BF16 columns skipped: this CPU has no native bf16 (avx512_bf16/amx_bf16)")
    return "BF16 not measured: this CPU has no native bf16 (avx512_bf16/amx_bf16)"
