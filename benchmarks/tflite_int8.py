"""Is LiteRT's own INT8 faster than its FP32 here, with mAP50-95 within 0.01? (issue 23, the LiteRT part)

Each checkpoint is exported to FP32 .tflite by the Exporter (as export.py --include tflite), then quantized by
ai-edge-quantizer, which comes with litert-torch: weight-only INT8 (weight_only_wi8_afp32: int8 weights dequantized
to float before each op), dynamic-range INT8 (dynamic_wi8_afp32: int8 weights, activations quantized at run time) and
full static INT8 (static_wi8_ai8: activations too, calibrated on --data train images, never on random data), each
applied to the whole model; and what export.py --include tflite --int8 writes (static with the head left float, or
dynamic-range where static loses more than --int8-max-drop on --data's val images).
mAP50-95 by val.py at --imgsz; latency of the same variants exported at --time-imgsz, batch 1, interleaved.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/tflite_int8.py --weights csppc.pt v5n.pt --data shapes.yaml --imgsz 160
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/tflite_int8.py` finds the project's packages

import torch  # noqa: E402

import val  # noqa: E402
from benchmarks.mobile import exported, time_files  # noqa: E402
from benchmarks.timing import loadavg  # noqa: E402
from models.formats.tflite_int8 import DYNAMIC, STATIC, int8_recipe, quantize  # noqa: E402
from utils.general import LOGGER, print_args, set_logging  # noqa: E402
from utils.quantize import CalibrationImages  # noqa: E402

# label: ai-edge-quantizer's recipe function in ai_edge_quantizer.recipe, applied to the whole model
RECIPES = {"INT8 weight-only": "weight_only_wi8_afp32", "INT8 dynamic": DYNAMIC, "INT8 static": STATIC}
EXPORT = "export.py --int8"  # the row of what export.py writes: static with the head float, or dynamic (see there)


def quantized(fp32: Path, label: str, data: str, imgsz: int, images: int) -> Path:
    """fp32 quantized whole by the recipe of label (input and output kept float32, static calibrated on --data train
    images), written beside it with the FP32 export's appended meta.txt."""
    name = RECIPES[label]
    calibration = CalibrationImages(data, imgsz, 32, n=images) if name == STATIC else None
    out = fp32.with_name(f"{fp32.stem}-{name}.tflite")
    out.write_bytes(quantize(fp32.read_bytes(), int8_recipe(name), calibration))
    with zipfile.ZipFile(fp32) as src, zipfile.ZipFile(out, "a") as dst:  # stride and names for DetectMultiBackend
        dst.writestr("meta.txt", src.read("meta.txt"))
    return out


def variants(weights: Path, data: str, imgsz: int, images: int, work: Path) -> dict[str, Path]:
    """FP32 and every INT8 recipe of weights at imgsz (a copy of the checkpoint per size, so that none overwrites)."""
    ckpt = work / f"{weights.stem}_{imgsz}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, ckpt)
    fp32 = exported(ckpt, "tflite", imgsz)
    int8 = exported(ckpt, "tflite", imgsz, data=data, int8=True, int8_images=images)
    if fp32 is None or int8 is None:
        raise RuntimeError(f"{weights}: LiteRT export failed (see the log above)")
    return {"FP32": fp32, **{k: quantized(fp32, k, data, imgsz, images) for k in RECIPES}, EXPORT: int8}


def run(weights: list[str], data: str, imgsz: int = 160, time_imgsz: int = 640, images: int = 100,
        threads: int = 2, runs: int = 20, warmup: int = 3, project: str | Path = ROOT / "runs/tflite_int8") -> dict:
    """mAP50-95 at imgsz and median latency at time_imgsz of LiteRT FP32 and INT8, per checkpoint; one table."""
    torch.set_num_threads(threads)  # the LiteRT runner takes torch's thread count
    work, lines, out = Path(project), [], {}
    for w in map(Path, weights):
        scored = variants(w, data, imgsz, images, work)
        maps = {k: float(val.run(data, weights=str(f), imgsz=imgsz, batch_size=1, workers=0, half=False, plots=False,
                                 project=str(work / "val"), name=f.stem, exist_ok=True)[0][3])
                for k, f in scored.items()}
        timed = variants(w, data, time_imgsz, images, work) if time_imgsz != imgsz else scored
        load0 = loadavg()
        ms = dict(zip(timed, time_files(list(timed.values()), torch.rand(1, 3, time_imgsz, time_imgsz), runs, warmup)))
        load = (load0 + loadavg()) / 2
        out[str(w)] = {"map": maps, "ms": ms, "load": load}
        lines += [f"| {w.name} LiteRT {k} | {maps[k]:.4f} | {maps[k] - maps['FP32']:+.4f} | {ms[k]:.1f} | "
                  f"{ms[k] / ms['FP32']:.3f} | {load:.1f} |" for k in scored]
    head = [f"| Model | mAP50-95 at {imgsz} | vs FP32 | ms at {time_imgsz} | / FP32 | load |",
            "|---|---:|---:|---:|---:|---:|"]
    text = "\n".join(head + lines + [f"({threads} threads, batch 1, median of {runs} interleaved; calibration: "
                                     f"{images} {data} train images)"])
    LOGGER.info(f"\n{text}")
    return {**out, "table": text}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", nargs="+", required=True, help="trained checkpoints")
    add("--data", required=True, help="dataset YAML: train images calibrate, val images score")
    add("--imgsz", type=int, default=160, help="export and validation size")
    add("--time-imgsz", type=int, default=640, help="timing size (exported again when it differs)")
    add("--images", type=int, default=100, help="calibration images for the static recipe")
    add("--threads", type=int, default=2, help="LiteRT threads")
    add("--runs", type=int, default=20, help="timed rounds")
    add("--warmup", type=int, default=3, help="untimed rounds first")
    add("--project", default=str(ROOT / "runs/tflite_int8"), help="folder for the exports")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    print_args(vars(opt))
    run(**vars(opt))
