"""Where does CSPPC's lightness pay? Latency of yolov5n-csppc and yolov5n in each runtime, side by side in one run.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/runtimes.py --imgsz 640 --threads 2
    python benchmarks/runtimes.py --weights a.pt b.pt --formats onnx ncnn mnn   # trained checkpoints instead

Both models are exported to every format asked for (by the export registry, as export.py does), loaded by
DetectMultiBackend and timed interleaved (every round runs each model once per format), so drifts in the machine's
load hit both alike. Without --weights, random-weight checkpoints (nc=6) are built: latency does not depend on the
weights' values in FP32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.mobile import MODELS, exported, random_checkpoint, time_files  # noqa: E402
from benchmarks.timing import loadavg, passive_wait  # noqa: E402
from models.formats import format_of  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402


def run(weights: tuple[str, ...] = (), formats: tuple[str, ...] = ("pt", "onnx", "openvino", "ncnn", "mnn", "tflite"),
        imgsz: int = 640, threads: int = 2, runs: int = 30, warmup: int = 5, folder: str | None = None) -> list[dict]:
    """One row per format: each model's median ms and the CSPPC/yolov5n ratio; returns the rows."""
    torch.set_num_threads(threads)  # the runners (ncnn, MNN, LiteRT) take the same thread count
    tmp = Path(folder or tempfile.mkdtemp(prefix="runtimes-"))
    tmp.mkdir(parents=True, exist_ok=True)
    files = [Path(w) for w in weights] or [random_checkpoint(cfg, tmp) for cfg in MODELS]
    rows = []
    for fmt in formats:
        name = "PyTorch" if fmt == "pt" else format_of(fmt).name
        exports = [exported(w, fmt, imgsz) for w in files]
        if None in exports:
            rows.append({"runtime": name, "ms": None, "load": loadavg()})
            continue
        ms = time_files(exports, torch.rand(1, 3, imgsz, imgsz), runs, warmup)
        rows.append({"runtime": name, "ms": ms, "load": loadavg()})
    report(rows, files, imgsz, threads)
    return rows


def report(rows: list[dict], files: list[Path], imgsz: int, threads: int) -> None:
    """The table: ms per model, the ratio of the second to the first, and the load when each row was timed."""
    a, b = files[0].stem, files[1].stem
    lines = [f"{'Runtime':<16} {a + ' ms':>16} {b + ' ms':>22} {'ratio':>7} {'load':>6}"]
    for r in rows:
        if r["ms"] is None:
            lines.append(f"{r['runtime']:<16} {'export failed (see above)':>46} {r['load']:6.1f}")
        else:
            x, y = r["ms"]
            lines.append(f"{r['runtime']:<16} {x:16.1f} {y:22.1f} {y / x:7.2f} {r['load']:6.1f}")
    LOGGER.info(f"\nLatency at {imgsz} px, batch 1, {threads} threads, OMP_WAIT_POLICY=PASSIVE: {passive_wait()}\n"
                + "\n".join(lines))


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", nargs="*", default=(), help="two checkpoints: the baseline, then CSPPC (default: random ones)")
    add("--formats", nargs="+", default=["pt", "onnx", "openvino", "ncnn", "mnn", "tflite"], help="runtimes to time")
    add("--imgsz", type=int, default=640, help="square input size")
    add("--threads", type=int, default=2, help="threads of every runtime")
    add("--runs", type=int, default=30, help="timed rounds")
    add("--warmup", type=int, default=5, help="untimed rounds first")
    add("--folder", default=None, help="where the checkpoints and exports go (default: a temporary folder)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
