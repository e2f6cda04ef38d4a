"""Is a mobile runtime's own INT8 faster than its FP32 here, with mAP50-95 within 0.01? MNN: full INT8 by its
quantization tool (mnnquant, activations calibrated on --data train images; probed in a subprocess, as it may abort)
and weight-only INT8 (the converter's --weightQuantBits 8, run with float compute or, in MNN's low-memory mode, with
dynamic int8 compute), against MNN FP32; ncnn and LiteRT are reported by what this machine has for them.

export.py gets an INT8 export for a runtime only where this measures faster with the accuracy kept (issue 23).

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/mobile_int8.py --weights best.pt --data photo_shapes.yaml --imgsz 320
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/mobile_int8.py` finds the project's packages

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import export  # noqa: E402
import val  # noqa: E402
from benchmarks.timing import loadavg, time_interleaved  # noqa: E402
from models.backends import DetectMultiBackend  # noqa: E402
from utils.general import LOGGER, print_args, set_logging  # noqa: E402
from utils.quantize import CalibrationImages  # noqa: E402


def calibration_folder(folder: Path, data: str, imgsz: int, stride: int, images: int) -> int:
    """Write letterboxed --data train images as PNGs (MNN's tool reads a folder of images); returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    calibration = CalibrationImages(data, imgsz, stride, n=images)
    for i, x in enumerate(calibration):
        # already letterboxed to imgsz: MNN's own resize to width x height leaves it as it is
        cv2.imwrite(str(folder / f"{i:05d}.png"), (x[0].transpose(1, 2, 0)[..., ::-1] * 255).round().astype(np.uint8))
    return len(calibration)


def probe_mnnquant(src: Path, dst: Path, folder: Path, n: int, imgsz: int, method: str) -> str:
    """Run MNN's full-INT8 quantization tool in a child process; its outcome in one line."""
    config = {"format": "RGB", "mean": [0.0, 0.0, 0.0], "normal": [1 / 255] * 3, "width": imgsz, "height": imgsz,
              "path": str(folder) + "/", "used_image_num": n, "feature_quantize_method": method,
              "weight_quantize_method": "MAX_ABS"}
    cfg = folder.parent / "mnnquant.json"
    cfg.write_text(json.dumps(config))
    # _tools directly: MNN.tools.mnnquant's module pip-installs a logging SDK and sends a usage log when imported
    code = f"import _tools; _tools.mnnquant({str(src)!r}, {str(dst)!r}, {str(cfg)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode == 0 and dst.is_file():
        return f"mnnquant ({method}): wrote {dst}"
    tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
    return f"mnnquant ({method}): failed, exit code {done.returncode}: {tail}"


def mnn_models(weights: Path, data: str, imgsz: int, work: Path) -> dict[str, Path]:
    """MNN FP32 (export.py) and weight-only INT8 (the same ONNX export, --weightQuantBits 8) of weights at imgsz."""
    import _tools  # MNN's converter entry, as models/formats/mnn.py calls it

    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / f"model_{imgsz}.pt"
    shutil.copy(weights, ckpt)
    fp32 = Path(export.run(weights=ckpt, imgsz=(imgsz, imgsz), include=["mnn"])[0])
    w8 = work / f"model_{imgsz}_w8.mnn"
    meta = DetectMultiBackend(fp32).runner.meta
    args = ["mnnconvert", "-f", "ONNX", "--modelFile", str(ckpt.with_suffix(".onnx")), "--MNNModel", str(w8),
            "--bizCode", json.dumps(meta), "--weightQuantBits", "8"]
    if not _tools.mnnconvert(args) or not w8.is_file():
        raise RuntimeError(f"MNN's converter could not write {w8}")
    return {"MNN FP32": fp32, "MNN INT8 weights": w8}


def latency(models: dict[str, Path], imgsz: int, threads: int, runs: int, warmup: int) -> dict[str, float]:
    """Median batch-1 ms of MNN FP32, weight-INT8 with float compute, and weight-INT8 in low-memory mode (dynamic int8
    compute), interleaved."""
    import MNN

    expr = MNN.expr
    setups = {"MNN FP32": (models["MNN FP32"], expr.MemoryMode.Normal),
              "MNN INT8 weights": (models["MNN INT8 weights"], expr.MemoryMode.Normal),
              "MNN INT8 weights, low-memory mode": (models["MNN INT8 weights"], expr.MemoryMode.Low)}
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    high = expr.PrecisionMode.High
    modules = {k: MNN.nn.load_module_from_file(str(f), [], [], thread_num=threads, memory_mode=mode,
                                               precision_mode=high) for k, (f, mode) in setups.items()}
    return time_interleaved({k: (lambda m=m: m.forward([expr.const(x, list(x.shape), expr.NCHW)]))
                             for k, m in modules.items()}, runs, warmup)


def availability() -> list[str]:
    """What this machine offers for ncnn and LiteRT INT8 (lines for the report)."""
    import ncnn

    lines = []
    tools = [t for t in ("ncnn2table", "ncnn2int8") if shutil.which(t)]
    lines.append(f"ncnn {ncnn.__version__}: INT8 tools found: {', '.join(tools) or 'none'} (the pip wheel ships "
                 f"neither ncnn2table nor ncnn2int8, and its Python API has no quantizer)")
    litert = importlib.util.find_spec("litert_torch") is not None
    lines.append(f"LiteRT: litert-torch {'installed' if litert else 'not installed in this environment'}")
    return lines


def run(weights: str, data: str, imgsz: int = 320, time_imgsz: int = 640, images: int = 300, method: str = "KL",
        threads: int = 2, runs: int = 20, warmup: int = 3, project: str | Path = ROOT / "runs/mobile_int8") -> dict:
    """mAP50-95 of MNN FP32 and weight-INT8 at imgsz on --data val, latency at time_imgsz, the mnnquant probe."""
    torch.set_num_threads(threads)  # the MNN runner takes torch's thread count
    work = Path(project)
    models = mnn_models(Path(weights), data, imgsz, work)
    maps = {k: float(val.run(data, weights=str(f), imgsz=imgsz, batch_size=1, workers=0, half=False, plots=False,
                             project=str(work / "val"), name=k.replace(" ", "_"), exist_ok=True)[0][3])
            for k, f in models.items()}
    n = calibration_folder(work / "calibration", data, imgsz, DetectMultiBackend(models["MNN FP32"]).stride, images)
    probe = probe_mnnquant(models["MNN FP32"], work / f"model_{imgsz}_int8.mnn", work / "calibration", n, imgsz, method)
    timed = mnn_models(Path(weights), data, time_imgsz, work) if time_imgsz != imgsz else models
    load0 = loadavg()
    ms = latency(timed, time_imgsz, threads, runs, warmup)
    load = (load0 + loadavg()) / 2
    lines = [f"| MNN model | mAP50-95 at {imgsz} | drop | ms at {time_imgsz} | / FP32 |", "|---|---:|---:|---:|---:|"]
    for k in ms:  # val.py runs MNN in its normal memory mode: the low-memory mode's mAP is not measured
        m = f"{maps[k]:.4f} | {maps['MNN FP32'] - maps[k]:+.4f}" if k in maps else "- | -"
        lines.append(f"| {k} | {m} | {ms[k]:.1f} | {ms[k] / ms['MNN FP32']:.3f} |")
    text = "\n".join(lines + [f"({threads} threads, median of {runs}, load average {load:.1f})", probe,
                              *availability()])
    LOGGER.info(f"\n{text}")
    return {"map": maps, "ms": ms, "table": text}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", required=True, help="trained checkpoint")
    add("--data", required=True, help="dataset YAML: train images calibrate, val images score")
    add("--imgsz", type=int, default=320, help="export and validation size")
    add("--time-imgsz", type=int, default=640, help="timing size (exported again when it differs)")
    add("--images", type=int, default=300, help="calibration images for the mnnquant probe")
    add("--method", default="KL", choices=["KL", "ADMM", "EMA"], help="mnnquant's activation calibration method")
    add("--threads", type=int, default=2, help="MNN threads")
    add("--runs", type=int, default=20, help="timed rounds")
    add("--warmup", type=int, default=3, help="untimed rounds first")
    add("--project", default=str(ROOT / "runs/mobile_int8"), help="folder for the exports")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    print_args(vars(opt))
    run(**vars(opt))
