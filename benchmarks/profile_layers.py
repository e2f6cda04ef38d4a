"""Where do CSPPC's saved FLOPs become latency? Per-layer profiles of yolov5n and yolov5n-csppc in each runtime,
summed by block type, side by side with each block type's GFLOPs.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/profile_layers.py --imgsz 640 --threads 2
    python benchmarks/profile_layers.py --weights a.pt b.pt --runtimes pytorch ncnn   # trained checkpoints instead

Each runtime's own profiler times every op (benchmarks/layer_profile.py says how, per runtime); the ops are tied to
the YOLOv5 layer they come from and summed by block type. "between ops" is what the profiled pass spent outside the
timed ops (the runtime's scheduling and the profiler's own cost), so the rows of a column add up to its profiled
pass. The models' profiled passes are interleaved, as their latency without the profiler in the last row is (the same
session settings, profiler off; benchmarks/runtimes.py times them through DetectMultiBackend instead).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks import layer_profile as lp  # noqa: E402
from benchmarks.mobile import MODELS, exported, random_checkpoint  # noqa: E402
from benchmarks.timing import loadavg, passive_wait, time_interleaved  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402

RUNTIMES = {"pytorch": "PyTorch (forward hooks per module)", "onnxruntime": "ONNX Runtime (enable_profiling, per node)",
            "openvino": "OpenVINO FP32 (PERF_COUNT, per layer)", "ncnn": "ncnn (one extract per layer)",
            "mnn": "MNN (runSessionWithCallBackInfo, per op)"}
SOURCE = {"onnxruntime": "onnx", "openvino": "onnx", "ncnn": "ncnn", "mnn": "mnn"}  # the export each reads
CSP, INNER, SPLIT = "C3/CSPPC 1x1 convs", "C3/CSPPC inner blocks (Bottleneck / PConv)", "C3/CSPPC split/concat"
CATEGORIES = ["Conv", CSP, INNER, SPLIT, "SPPF", "Upsample + Concat", "Detect", "layout reorders", "other ops"]
MOVEMENT = {"Concat", "Slice", "Split", "Crop", "Raster", "Gather"}  # ops that only move channels
INNER_PATH = re.compile(r"m($|[./])")  # a CSP block's inner blocks: C3's m (Bottlenecks), CSPPC's m.k (PConvs)


def category(block: str | None, path: str, kind: str) -> str:
    """The block-type row an op is counted in."""
    if "Reorder" in kind:
        return "layout reorders"
    if block in ("C3", "CSPPC"):
        return SPLIT if kind in MOVEMENT else INNER if INNER_PATH.match(path) else CSP
    if block in ("Upsample", "Concat"):
        return "Upsample + Concat"
    return block if block in CATEGORIES else "other ops"


def by_category(profile: lp.Profile, blocks: list[str]) -> dict[str, float]:
    """Milliseconds per row, 'between ops' (the pass less its ops) and 'profiled pass' (the whole)."""
    out = dict.fromkeys(CATEGORIES, 0.0)
    for op in profile.ops:
        block = blocks[op.layer] if op.layer is not None and op.layer < len(blocks) else None
        out[category(block, op.path, op.kind)] += op.ms
    out["between ops"] = profile.whole - sum(out.values())
    out["profiled pass"] = profile.whole
    return out


def gflops_by_category(convs: list[tuple[int, str, float]], blocks: list[str]) -> dict[str, float]:
    """The convolutions' GFLOPs per row."""
    out = dict.fromkeys(CATEGORIES, 0.0)
    for i, path, g in convs:
        out[category(blocks[i], path, "Conv")] += g
    return out


def profiler(runtime: str, model: torch.nn.Module, im: torch.Tensor, source: Path | None, threads: int,
             convs: list[tuple[int, str, float]]) -> lp.Profiler:
    """The runtime's profiler of one model; source is the export it reads (ONNX for ONNX Runtime and OpenVINO)."""
    x = im.numpy()
    if runtime == "pytorch":
        return lp.PyTorchProfiler(model, im)
    if runtime == "ncnn":
        param = next(source.glob("*.param"))
        return lp.NcnnProfiler(param, x, threads, lp.ncnn_layer_of(param, x, layer_outputs(model, im), threads), convs)
    return {"onnxruntime": lp.OnnxRuntimeProfiler, "openvino": lp.OpenVINOProfiler, "mnn": lp.MNNProfiler}[runtime](
        source, x, threads)


def profile_runtime(runtime: str, files: list[Path], imgsz: int, threads: int, runs: int, warmup: int) -> list[dict]:
    """Both models in one runtime, interleaved: each one's rows, GFLOPs per row and latency without profiler; []
    when an export fails."""
    sources = [None if runtime == "pytorch" else exported(f, SOURCE[runtime], imgsz) for f in files]
    if runtime != "pytorch" and None in sources:
        LOGGER.warning(f"WARNING {RUNTIMES[runtime]}: export failed (see above), not profiled")
        return []
    im = torch.rand(1, 3, imgsz, imgsz)
    models = [attempt_load(str(f), device=torch.device("cpu"), inplace=True, fuse=True).eval() for f in files]
    convs = [lp.conv_calls(m, im) for m in models]
    profilers = [profiler(runtime, m, im, s, threads, c) for m, s, c in zip(models, sources, convs)]
    profiles = lp.profile_interleaved(profilers, runs, warmup)
    latency = time_interleaved(dict(enumerate(p.plain for p in profilers)), runs, warmup)
    out = []
    for j, (m, profile, c) in enumerate(zip(models, profiles, convs)):
        blocks = lp.block_types(m)
        out.append({"rows": by_category(profile, blocks), "gflops": gflops_by_category(c, blocks),
                    "latency": latency[j]})
    return out


@torch.no_grad()
def layer_outputs(model: torch.nn.Module, im: torch.Tensor) -> list[torch.Tensor]:
    """The output of every layer before the head, in order (ncnn's layers are matched to them)."""
    outs, hooks = [], [m.register_forward_hook(lambda _, __, y: outs.append(y)) for m in model.model[:-1]]
    try:
        model(im)
    finally:
        for h in hooks:
            h.remove()
    return outs


def run(weights: tuple[str, ...] = (), runtimes: tuple[str, ...] = tuple(RUNTIMES), imgsz: int = 640,
        threads: int = 2, runs: int = 10, warmup: int = 3, folder: str | None = None) -> dict:
    """Profile both models in every runtime, log one table per runtime; returns {runtime: [model results]}."""
    torch.set_num_threads(threads)
    tmp = Path(folder or tempfile.mkdtemp(prefix="profile-layers-"))
    tmp.mkdir(parents=True, exist_ok=True)
    files = [Path(w) for w in weights] or [random_checkpoint(cfg, tmp) for cfg in MODELS]
    results = {}
    for runtime in runtimes:
        models = profile_runtime(runtime, files, imgsz, threads, runs, warmup)
        if models:
            results[runtime] = models
            LOGGER.info(table(runtime, models, [f.stem for f in files], loadavg()))
    LOGGER.info(f"{imgsz} px, batch 1, {threads} threads; ms: mean of the faster half of {runs} profiled passes "
                f"after {warmup} (latency: median of {runs}), models interleaved; OMP_WAIT_POLICY=PASSIVE: "
                f"{passive_wait()}")
    return results


def table(runtime: str, models: list[dict], labels: list[str], load: float) -> str:
    """One runtime's rows: GFLOPs and ms of each model, the difference, and the latency without profiler."""
    a, b = models
    lines = [f"\n{RUNTIMES[runtime]}, load {load:.1f}",
             f"{'Block':<44} {'GFLOPs':>7} {'GFLOPs':>7} {labels[0] + ' ms':>12} {labels[1] + ' ms':>18} "
             f"{'diff ms':>8}"]
    for k in [*CATEGORIES, "between ops", "profiled pass"]:
        ga, gb = a["gflops"].get(k), b["gflops"].get(k)
        g = f"{ga:7.2f} {gb:7.2f}" if ga is not None and (ga or gb) else f"{'':7} {'':7}"
        x, y = a["rows"][k], b["rows"][k]
        lines.append(f"{k:<44} {g} {x:12.2f} {y:18.2f} {y - x:8.2f}")
    x, y = a["latency"], b["latency"]
    lines.append(f"{'latency without profiler (ratio ' + f'{y / x:.2f})':<60} {x:12.2f} {y:18.2f} {y - x:8.2f}")
    lines.append(f"profiled ratio {b['rows']['profiled pass'] / a['rows']['profiled pass']:.2f}; "
                 f"floor {floor(a['rows'], b['rows']):.2f} (the profiled ratio if the second model's inner blocks "
                 f"and split/concat took no time)")
    return "\n".join(lines)


def floor(a: dict[str, float], b: dict[str, float]) -> float:
    """The profiled ratio b / a were b's CSP inner blocks and channel moves free: what no inner block can beat."""
    return (b["profiled pass"] - b[INNER] - b[SPLIT]) / a["profiled pass"]


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", nargs="*", default=(), help="two checkpoints: the baseline, then CSPPC (default: random ones)")
    add("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES), help="runtimes to profile")
    add("--imgsz", type=int, default=640, help="square input size")
    add("--threads", type=int, default=2, help="threads of every runtime")
    add("--runs", type=int, default=10, help="profiled passes (the mean of the faster half is shown)")
    add("--warmup", type=int, default=3, help="passes run first, not counted")
    add("--folder", default=None, help="where the checkpoints and exports go (default: a temporary folder)")
    opt = parser.parse_args(argv)
    if opt.weights and len(opt.weights) != 2:
        parser.error("--weights takes two checkpoints: the baseline, then CSPPC")
    return opt


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
