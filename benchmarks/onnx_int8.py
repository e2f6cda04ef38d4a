"""Benchmark: ONNX Runtime static INT8 quantization (QDQ) against FP32 ONNX Runtime, latency and output difference.

The model's ONNX export is quantized with onnxruntime.quantization.quantize_static (QDQ, per-channel int8 weights,
uint8 activations, the Detect decode after the last convolutions left in float), calibrated on --data train images
letterboxed as val.py does; both sessions are timed interleaved on the same real image.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/onnx_int8.py --cfg yolov5n.yaml yolov5n-csppc.yaml --data shapes.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.compare import load_model, onnx_session, time_interleaved  # noqa: E402
from export import check_image  # noqa: E402
from utils.general import LOGGER, increment_path, set_logging  # noqa: E402
from utils.quantize import CalibrationImages  # noqa: E402


def decode_nodes(onnx_file: Path) -> list[str]:
    """Names of the ONNX nodes between the last Conv nodes and the graph outputs (the Detect decode)."""
    import onnx

    graph = onnx.load(str(onnx_file)).graph
    producer = {o: n for n in graph.node for o in n.output}
    names, stack = set(), [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.op_type == "Conv" or node.name in names:
            continue
        names.add(node.name)
        stack.extend(node.input)
    return sorted(names)


class _Reader:
    """onnxruntime CalibrationDataReader over CalibrationImages."""

    def __init__(self, images: CalibrationImages, input_name: str):
        self.it, self.name = iter(images), input_name

    def get_next(self) -> dict | None:
        x = next(self.it, None)
        return None if x is None else {self.name: x}


def quantize_onnx(onnx_file: Path, images: CalibrationImages, keep_decode_float: bool = True) -> Path:
    """A QDQ INT8 copy of onnx_file (per-channel int8 weights, uint8 activations), written beside it."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = onnx_file.with_name(onnx_file.stem + "_pre.onnx")
    quant_pre_process(str(onnx_file), str(pre))
    out = onnx_file.with_name(onnx_file.stem + "_int8.onnx")
    quantize_static(str(pre), str(out), _Reader(images, "images"), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=decode_nodes(pre) if keep_decode_float else [])
    return out


def run(cfg: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), weights: tuple[str, ...] = (),
        data: str = "shapes.yaml", imgsz: int = 640, threads: int = 2, runs: int = 30, warmup: int = 5,
        images: int = 300, project: str | Path = ROOT / "runs/onnx_int8", name: str = "exp") -> list[dict]:
    """Quantize each model and print FP32 vs INT8 ONNX Runtime latency and max output difference."""
    import onnxruntime

    torch.set_num_threads(threads)
    save_dir = increment_path(Path(project) / name, mkdir=True)
    cfg, weights = list(cfg or ()), list(weights or ())
    n = max(len(cfg), len(weights))
    im = check_image((1, 3, imgsz, imgsz))[0]
    calls, rows = {}, []
    for i in range(n):
        c, w = cfg[i] if cfg else None, weights[i] if weights else None
        label = Path(c or w).stem
        model = load_model(c, w, torch.device("cpu")).fuse()
        f, fp32 = onnx_session(model, im, save_dir / f"{label}.pt", threads)
        q = quantize_onnx(f, CalibrationImages(data, imgsz, int(model.stride.max()), n=images))
        options = fp32.get_session_options()
        int8 = onnxruntime.InferenceSession(str(q), options, providers=["CPUExecutionProvider"])
        feed = {"images": im.numpy()}
        y32, y8 = fp32.run(None, feed)[0], int8.run(None, feed)[0]
        sure = y32[0, :, 4] > 0.25
        rows.append({"model": label, "box_err_px": float(np.abs(y8[0, sure, :4] - y32[0, sure, :4]).max(initial=0)),
                     "conf_err": float(np.abs(y8[0, :, 4:] - y32[0, :, 4:]).max())})
        calls[(label, "fp32")] = lambda s=fp32, d=feed: s.run(None, d)
        calls[(label, "int8")] = lambda s=int8, d=feed: s.run(None, d)
    t = time_interleaved(calls, runs, warmup, False)
    LOGGER.info(f"ONNX Runtime {onnxruntime.__version__}, {imgsz}x{imgsz}, batch 1, {threads} threads, "
                f"median of {runs} interleaved runs")
    LOGGER.info("| Model | ORT FP32 ms | ORT INT8 QDQ ms | INT8 / FP32 | max box diff px (conf>0.25) | max conf diff |")
    LOGGER.info("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        r["fp32_ms"], r["int8_ms"] = t[(r["model"], "fp32")], t[(r["model"], "int8")]
        LOGGER.info(f"| {r['model']} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | {r['int8_ms'] / r['fp32_ms']:.3f} | "
                    f"{r['box_err_px']:.2f} | {r['conf_err']:.3f} |")
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description="ONNX Runtime INT8 (QDQ) vs FP32 latency")
    parser.add_argument("--cfg", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"], help="model YAMLs")
    parser.add_argument("--weights", nargs="+", default=[], help="trained checkpoints, one per --cfg")
    parser.add_argument("--data", default="shapes.yaml", help="dataset YAML whose train images calibrate")
    parser.add_argument("--imgsz", type=int, default=640, help="square input size")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--images", type=int, default=300, help="calibration images")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
