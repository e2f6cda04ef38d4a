"""CPU inference speed of YOLOv5 variants in PyTorch (fused) and ONNX Runtime, measured side by side.

Each round times one forward pass of every (model, runtime) pair in turn, so drifts in machine load hit all pairs
alike; the median over rounds is reported. Weights are random: speed does not depend on their values.

On a machine shared with other jobs, spinning OpenMP threads fight them for cores (a 2-thread PyTorch forward
pass measured 8x slower than 1-thread); OMP_WAIT_POLICY=PASSIVE makes both runtimes' idle threads sleep instead.

Usage:
    python benchmarks/inference.py                                  # yolov5n and yolov5n-csppc, 640 px, 2 threads
    OMP_WAIT_POLICY=PASSIVE python benchmarks/inference.py          # on a busy machine
    python benchmarks/inference.py --cfg yolov5s.yaml yolov5s-csppc.yaml --imgsz 320 --threads 4 --runs 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/inference.py` finds the project's packages

import torch  # noqa: E402

from export import export_onnx  # noqa: E402
from models.yolo import Detect, DetectionModel  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402
from utils.torch_utils import get_flops, tune_cpu_allocator  # noqa: E402


def passive_wait() -> bool:
    """OMP_WAIT_POLICY=PASSIVE: idle threads sleep rather than spin (fairer on a machine shared with other jobs)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def build(cfg: str, imgsz: int, batch_size: int, workdir: Path, threads: int):
    """A fused PyTorch model and an ONNX Runtime session of the same weights, and the input both take."""
    import onnxruntime

    model = DetectionModel(cfg).eval().fuse()
    gflops = get_flops(model, imgsz)  # of the fused form that both runtimes execute
    for m in model.modules():
        if isinstance(m, Detect):
            m.export = True  # decoded predictions only, as exported
    im = torch.rand(batch_size, 3, imgsz, imgsz)
    with torch.no_grad():
        model(im)  # builds the Detect grids before export traces the model
    f = export_onnx(model, im, workdir / f"{Path(cfg).stem}.pt", opset=17, dynamic=False, simplify=False,
                    metadata={"stride": 32, "names": model.names})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    if passive_wait():  # idle ONNX Runtime workers sleep instead of spinning, as OpenMP's do under this policy
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(f), options, providers=["CPUExecutionProvider"])
    params = sum(p.numel() for p in model.parameters())
    return model, session, im, params, gflops


def run(cfg: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), imgsz: int = 640, batch_size: int = 1,
        threads: int = 2, runs: int = 50, warmup: int = 10) -> list[dict]:
    """Time every model in PyTorch and ONNX Runtime, interleaved; log a table and return its rows."""
    torch.set_num_threads(threads)
    tune_cpu_allocator()  # as detect.py and val.py run on CPU (select_device); YOLOV5_TUNE_MALLOC=0 to compare without
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in cfg:
            model, session, im, params, gflops = build(c, imgsz, batch_size, Path(tmp), threads)
            feed = {"images": im.numpy()}
            with torch.no_grad():
                diff = float((torch.from_numpy(session.run(None, feed)[0]) - model(im)[0]).abs().max())
            pairs.append({"cfg": c, "runtime": "PyTorch", "params": params, "gflops": gflops, "diff": 0.0,
                          "call": (lambda m=model, x=im: m(x))})
            pairs.append({"cfg": c, "runtime": "ONNX Runtime", "params": params, "gflops": gflops, "diff": diff,
                          "call": (lambda s=session, d=feed: s.run(None, d))})
        times = {i: [] for i in range(len(pairs))}
        with torch.inference_mode():
            for r in range(warmup + runs):
                for i, p in enumerate(pairs):
                    t = time.perf_counter()
                    p["call"]()
                    if r >= warmup:
                        times[i].append((time.perf_counter() - t) * 1000 / batch_size)
    LOGGER.info(f"\nCPU inference, {imgsz}x{imgsz}, batch {batch_size}, {threads} threads, median of {runs} runs "
                f"(torch {torch.__version__}, onnxruntime {version('onnxruntime')}, "
                f"{torch.backends.cpu.get_cpu_capability()}, {'passive' if passive_wait() else 'spinning'} "
                f"thread wait, "
                f"load average {os.getloadavg()[0]:.1f})")
    LOGGER.info(f"{'model':<22}{'runtime':<15}{'params':>11}{'GFLOPs':>8}{'ms/img':>9}{'p10-p90 ms':>14}"
                f"{'max|diff|':>11}")
    rows = []
    for i, p in enumerate(pairs):
        t = sorted(times[i])
        med, lo, hi = statistics.median(t), t[int(0.1 * (len(t) - 1))], t[int(0.9 * (len(t) - 1))]
        rows.append({**{k: v for k, v in p.items() if k != "call"}, "ms": med, "p10": lo, "p90": hi})
        LOGGER.info(f"{Path(p['cfg']).stem:<22}{p['runtime']:<15}{p['params']:>11,}{p['gflops']:>8.1f}{med:>9.1f}"
                    f"{f'{lo:.1f}-{hi:.1f}':>14}{p['diff']:>11.1e}")
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU inference speed: PyTorch (fused) vs ONNX Runtime")
    parser.add_argument("--cfg", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"], help="model YAMLs")
    parser.add_argument("--imgsz", type=int, default=640, help="square input size")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both runtimes")
    parser.add_argument("--runs", type=int, default=50, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=10, help="untimed rounds first")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
