"""Ablation table of YOLOv5 variants: size, GFLOPs, PyTorch and ONNX Runtime latency, peak memory and mAP.

For each model: parameters and GFLOPs of the trained and the fused (inference) form, latency of the fused model in
PyTorch and in ONNX Runtime (median of --runs timed passes after --warmup, models interleaved round by round so that
drifts in machine load hit all of them alike), the peak memory each runtime adds to a fresh process, and mAP50 and
mAP50-95 from val.py when --weights and --data are given. Writes compare.md (the table and the machine it ran on),
compare.csv and compare.png to runs/compare/exp<N>.

Usage:
    python benchmarks/compare.py --cfg yolov5n.yaml yolov5n-csppc.yaml
    python benchmarks/compare.py --cfg yolov5n.yaml yolov5n-csppc.yaml --weights v5n.pt csppc.pt --data shapes.yaml
    python benchmarks/compare.py --cfg yolov5n.yaml yolov5n-csppc.yaml --device 0 --half --batch-size 1 32
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import platform
import statistics
import sys
import time
from copy import deepcopy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/compare.py` finds the project's packages

import torch  # noqa: E402

from benchmarks import lowp  # noqa: E402
from export import export_onnx  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.yolo import Detect, DetectionModel  # noqa: E402
from utils.general import LOGGER, colorstr, increment_path, set_logging  # noqa: E402
from utils.torch_utils import get_flops, select_device  # noqa: E402

COLUMNS = ["model", "batch", "params", "params_fused", "gflops", "gflops_fused", "pytorch_ms", "pytorch_ratio",
           "onnxruntime_ms", "onnxruntime_ratio", "pytorch_peak_mb", "onnxruntime_peak_mb", "map50", "map50_95"]


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: torch.device, threads: int) -> str:
    """One line naming the hardware and software the figures were measured on."""
    try:
        import onnxruntime

        ort = f"onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort = "onnxruntime not installed"
    hw = f"{cpu_name()} ({multiprocessing.cpu_count()} logical cores), {threads} threads"
    if device.type == "cuda":
        hw = f"{torch.cuda.get_device_name(device)}, host {hw}"
    load = f"; load average {os.getloadavg()[0]:.2f} at the end" if hasattr(os, "getloadavg") else ""
    return (f"{hw}; torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), {ort}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}{load}")


def load_model(cfg: str | None, weights: str | None, device: torch.device) -> DetectionModel:
    """The trained form: from a checkpoint (unfused) when weights are given, else freshly built from cfg."""
    if weights:
        model = attempt_load(weights, device=device, fuse=False)
        if cfg and getattr(model, "yaml_file", Path(cfg).name) != Path(cfg).name:
            LOGGER.warning(f"WARNING {weights}: built from {model.yaml_file}, not {Path(cfg).name} as --cfg says")
        return model.eval()
    return DetectionModel(cfg).to(device).eval()


def set_detect_export(model: torch.nn.Module, export: bool) -> None:
    """Detect returns only the decoded tensor while exporting, as export.py sets it."""
    for m in model.modules():
        if isinstance(m, Detect):
            m.export = export


def onnx_session(model: torch.nn.Module, im: torch.Tensor, file: Path, threads: int):
    """Export the fused model with export.py's export_onnx and open it in ONNX Runtime; None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        LOGGER.warning("WARNING onnxruntime is not installed: ONNX Runtime columns are left empty")
        return None, None
    set_detect_export(model, True)
    with torch.no_grad():
        model(im)  # builds the Detect grids so that tracing records them as constants
    f = export_onnx(model, im, file, opset=17, dynamic=False, simplify=False,
                    metadata={"stride": int(model.stride.max()), "names": model.names})
    set_detect_export(model, False)
    providers = ["CPUExecutionProvider"]
    if im.device.type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            LOGGER.warning("WARNING onnxruntime has no CUDA provider (pip install onnxruntime-gpu): ONNX Runtime "
                           "columns are left empty for --device cuda")
            return f, None
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # every session owns a thread pool, and idle workers that spin (the default) take the cores from the session
    # timed next: interleaved, each model measured ~2.5x slower on 2 cores. So no session spins, alike for all.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return f, onnxruntime.InferenceSession(str(f), options, providers=providers)


def _resident_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB; the peak can be reset on Linux (see _peak_rss_mb)."""
    status = Path("/proc/self/status")
    if status.is_file():
        kb = {k: float(v.split()[0]) for k, v in (line.split(":", 1) for line in status.read_text().splitlines())
              if k in ("VmRSS", "VmHWM")}
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024
    import resource  # POSIX without /proc (macOS): only the lifetime peak is known, in bytes

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return peak, peak


def _peak_rss_mb(spec: dict) -> float:
    """In a fresh process: the resident memory one model adds at its peak while it loads and runs (MB)."""
    torch.set_num_threads(spec["threads"])
    shape = (spec["batch"], 3, spec["imgsz"], spec["imgsz"])
    try:  # Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current RSS, dropping import transients
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before, _ = _resident_mb()
    if spec["runtime"] == "onnxruntime":
        import numpy as np
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = spec["threads"], 1
        session = onnxruntime.InferenceSession(spec["onnx"], options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.zeros(shape, dtype=np.float32)}
        for _ in range(3):
            session.run(None, feed)
    else:
        model = load_model(spec["cfg"], spec["weights"], torch.device("cpu")).fuse()
        with torch.no_grad():
            for _ in range(3):
                model(torch.zeros(shape))
    return _resident_mb()[1] - before


def peak_memory_mb(spec: dict, model: torch.nn.Module | None = None, im: torch.Tensor | None = None) -> float:
    """Peak memory of one runtime and model: CUDA allocator peak on GPU, else RSS growth in a fresh CPU process."""
    if model is not None and im is not None and im.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(im.device)
        with torch.no_grad():
            model(im)
        return torch.cuda.max_memory_allocated(im.device) / 2**20
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh interpreter: nothing loaded before
        return pool.apply(_peak_rss_mb, (spec,))


def time_interleaved(calls: dict[str, callable], runs: int, warmup: int, cuda: bool,
                     burst: int = 1) -> dict[str, float]:
    """Median milliseconds of each call; every round calls each one in turn, burst times back to back.

    Only the last call of a burst is timed: with burst > 1 it finds the caches holding its own model, as a deployed
    model run frame after frame does, rather than the model timed just before it.
    """
    times = {k: [] for k in calls}
    for r in range(warmup + runs):
        for k, call in calls.items():
            for _ in range(burst):
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                call()
                if cuda:
                    torch.cuda.synchronize()
            if r >= warmup:
                times[k].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def validate(weights: str, data: str, imgsz: int, device: str, half: bool, save_dir: Path) -> tuple[float, float]:
    """mAP50 and mAP50-95 of one checkpoint from val.py."""
    import val  # a script module, imported only when mAP is asked for

    results, _, _ = val.run(data=data, weights=weights, imgsz=imgsz, batch_size=16, device=device, half=half,
                            project=save_dir, name=f"val-{Path(weights).stem}", exist_ok=True, plots=False)
    return float(results[2]), float(results[3])


def markdown_table(rows: list[dict], machine: str, settings: str, command: str) -> str:
    """The results as a markdown table, with the machine, the settings and the command under it."""
    head = ["Model", "Batch", "Params (trained / fused)", "GFLOPs (trained / fused)", "PyTorch ms", "ratio",
            "ORT ms", "ratio", "Peak MB PyTorch / ORT", "mAP50", "mAP50-95"]

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["model"], str(r["batch"]), f"{r['params'] / 1e6:.3f}M / {r['params_fused'] / 1e6:.3f}M",
            f"{r['gflops']:.2f} / {r['gflops_fused']:.2f}", f(r["pytorch_ms"], ".1f"), f(r["pytorch_ratio"], ".3f"),
            f(r["onnxruntime_ms"], ".1f"), f(r["onnxruntime_ratio"], ".3f"),
            f"{f(r['pytorch_peak_mb'], '.0f')} / {f(r['onnxruntime_peak_mb'], '.0f')}",
            f(r["map50"], ".3f"), f(r["map50_95"], ".3f")]) + " |")
    return "\n".join(lines) + f"\n\n{settings}\n\nMachine: {machine}\n\nCommand: `{command}`\n"


def plot_bars(rows: list[dict], file: Path) -> None:
    """Bar chart: GFLOPs, latency per runtime and peak memory of each model (and mAP50-95 when measured)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = [("GFLOPs", ["gflops", "gflops_fused"], ["trained", "fused"]),
              ("latency (ms)", ["pytorch_ms", "onnxruntime_ms"], ["PyTorch", "ONNX Runtime"]),
              ("peak memory (MB)", ["pytorch_peak_mb", "onnxruntime_peak_mb"], ["PyTorch", "ONNX Runtime"]),
              ("mAP", ["map50", "map50_95"], ["mAP50", "mAP50-95"])]
    panels = [p for p in panels if any(r[k] is not None for r in rows for k in p[1])]  # only what was measured
    labels = [f"{r['model']}\nbatch {r['batch']}" for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), tight_layout=True, squeeze=False)
    for ax, (title, keys, names) in zip(axes[0], panels):
        width = 0.8 / len(keys)
        for j, (k, name) in enumerate(zip(keys, names)):
            x = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(rows))]
            bars = ax.bar(x, [r[k] or 0.0 for r in rows], width, label=name)
            ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(rows)), labels, fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.savefig(file, dpi=150)
    plt.close(fig)


def run(cfg: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), weights: tuple[str, ...] = (),
        data: str | None = None, imgsz: int = 640, val_imgsz: int | None = None, batch_size: tuple[int, ...] = (1,),
        device: str = "cpu",
        half: bool = False, threads: int = 2, runs: int = 30, warmup: int = 5, memory: bool = True,
        project: str | Path = ROOT / "runs/compare", name: str = "exp", exist_ok: bool = False, int8: bool = False,
        int8_images: int = 300, burst: int = 1) -> list[dict]:
    """Measure every model, log the markdown table and write compare.md, compare.csv and compare.png.

    With int8 (needs data): OpenVINO FP32 and INT8 columns, and BF16 ones where the CPU has bf16 (benchmarks/lowp.py).
    """
    cfg, weights = list(cfg or ()), list(weights or ())
    if not cfg and not weights:
        raise ValueError("compare: give model YAMLs with --cfg, checkpoints with --weights, or both")
    if cfg and weights and len(cfg) != len(weights):
        raise ValueError(f"compare: {len(cfg)} --cfg but {len(weights)} --weights; give one checkpoint per YAML")
    if data and not weights and not int8:
        raise ValueError("compare: --data gives mAP only for trained models; add --weights (one per --cfg)")
    if int8 and not data:
        raise ValueError("compare: --int8 needs --data, whose train images calibrate the INT8 quantization")
    dev = select_device(device)
    if half and dev.type == "cpu":
        raise ValueError("compare: --half needs a CUDA device (--device 0); FP16 is not timed on CPU")
    torch.set_num_threads(threads)
    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
    save_dir.mkdir(parents=True, exist_ok=True)
    n = max(len(cfg), len(weights))
    specs = [{"cfg": cfg[i] if cfg else None, "weights": str(weights[i]) if weights else None} for i in range(n)]
    for s in specs:
        s["label"] = Path(s["cfg"] or s["weights"]).stem

    columns = COLUMNS + (lowp.COLUMNS if int8 else [])
    bf16 = int8 and dev.type == "cpu" and lowp.cpu_bf16_supported()
    for s in specs:  # accuracy does not depend on the timing batch size: validate each checkpoint once
        mapped = data and s["weights"]
        s["map"] = validate(s["weights"], data, val_imgsz or imgsz, device, half, save_dir) if mapped else (None, None)
        s["lowp_map"] = {}
        if int8 and mapped:
            s["lowp_map"] = lowp.lowp_map(s["weights"], s["label"], data, val_imgsz or imgsz, int8_images, save_dir,
                                          lambda w, h: validate(w, data, val_imgsz or imgsz, device, h, save_dir))

    rows = []
    for bs in batch_size:
        entries = []
        for s in specs:
            trained = load_model(s["cfg"], s["weights"], dev)
            fused = deepcopy(trained).fuse()
            im = torch.rand(bs, 3, imgsz, imgsz, device=dev)
            if half:
                fused, im = fused.half(), im.half()
            onnx_file, session = onnx_session(fused, im, save_dir / f"{s['label']}-b{bs}.pt", threads)
            row = {"model": s["label"], "batch": bs,
                   "params": sum(p.numel() for p in trained.parameters()), "gflops": get_flops(trained, imgsz),
                   "params_fused": sum(p.numel() for p in fused.parameters()), "gflops_fused": get_flops(fused, imgsz)}
            entries.append((s, row, fused, im, onnx_file, session))
        if memory:
            for s, row, fused, im, onnx_file, session in entries:
                spec = {**s, "threads": threads, "batch": bs, "imgsz": imgsz}
                row["pytorch_peak_mb"] = peak_memory_mb({**spec, "runtime": "pytorch"}, fused, im)
                row["onnxruntime_peak_mb"] = (peak_memory_mb({**spec, "runtime": "onnxruntime", "onnx": str(onnx_file)})
                                              if session is not None and dev.type == "cpu" else None)
        # one runtime at a time: its idle worker threads keep spinning for a while and would slow the other one
        with torch.no_grad():
            pt = time_interleaved({e[1]["model"]: (lambda m=e[2], x=e[3]: m(x)) for e in entries}, runs, warmup,
                                  dev.type == "cuda", burst)
        feeds = {e[1]["model"]: (e[5], {e[5].get_inputs()[0].name: e[3].cpu().numpy()}) for e in entries if e[5]}
        ort = time_interleaved({k: (lambda s=s, d=d: s.run(None, d)) for k, (s, d) in feeds.items()}, runs, warmup,
                               False, burst)
        for s, row, *_ in entries:
            row["pytorch_ms"], row["onnxruntime_ms"] = pt[row["model"]], ort.get(row["model"])
            row["map50"], row["map50_95"] = s["map"]
        if int8:  # OpenVINO precisions interleaved with each other, then PyTorch bf16 on its own
            calls = {}
            for _, row, fused, im, onnx_file, _ in entries:
                for k, call in lowp.openvino_calls(onnx_file, im, data, int8_images, int(fused.stride.max()), threads,
                                                   bf16).items():
                    calls[(row["model"], k)] = call
            ov = time_interleaved(calls, runs, warmup, False, burst)
            with torch.no_grad():
                pt16 = time_interleaved({e[1]["model"]: lowp.pytorch_bf16_call(e[2], e[3]) for e in entries}, runs,
                                        warmup, False, burst) if bf16 else {}
            for s, row, *_ in entries:
                m = row["model"]
                row.update(openvino_ms=ov[(m, "fp32")], openvino_int8_ms=ov[(m, "int8")],
                           openvino_bf16_ms=ov.get((m, "bf16")), pytorch_bf16_ms=pt16.get(m), **s["lowp_map"])
        base = entries[0][1]
        for _, row, *_ in entries:
            row["pytorch_ratio"] = row["pytorch_ms"] / base["pytorch_ms"]
            row["onnxruntime_ratio"] = (row["onnxruntime_ms"] / base["onnxruntime_ms"]
                                        if row["onnxruntime_ms"] and base["onnxruntime_ms"] else None)
            rows.append({k: row.get(k) for k in columns})
    if int8:
        lowp.add_ratios(rows)

    machine = machine_line(dev, threads)
    cuda = dev.type == "cuda"
    mem = ("" if not memory else "; peak memory is the CUDA allocator peak of PyTorch" if cuda else
           "; peak memory is the resident memory a fresh process gains at its peak while loading and running the model")
    val = f"; mAP from val.py on {data} at {val_imgsz or imgsz} px" if data and weights else ""
    back_to_back = f" (each timed run the last of {burst} back to back)" if burst > 1 else ""
    settings = (f"{'CUDA' if cuda else 'CPU'} {'FP16' if half else 'FP32'}, {imgsz}x{imgsz}, batch "
                f"{', '.join(map(str, batch_size))}; latency is the median of {runs} runs after {warmup} warm-up runs "
                f"of one forward pass, models interleaved{back_to_back}; ratios are to {rows[0]['model']} in the same "
                f"run{mem}{val}")
    command = "python benchmarks/compare.py " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "compare.py" \
        else "benchmarks.compare.run(...)"
    table = markdown_table(rows, machine, settings, command)
    if int8:
        table += (f"\n{lowp.lowp_table(rows, bf16)}\n\nOpenVINO CPU, {threads} threads, one stream; INT8: NNCF "
                  f"post-training quantization on {int8_images} train images of {data}; ratios are to "
                  f"{rows[0]['model']}, INT8 / FP32 per model; {lowp.bf16_note()}\n")
    (save_dir / "compare.md").write_text(table)
    with open(save_dir / "compare.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    plot_bars(rows, save_dir / "compare.png")
    LOGGER.info(f"\n{table}\nResults saved to {colorstr('bold', str(save_dir))}")
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description="Ablation table: params, GFLOPs, latency, memory and mAP per model")
    parser.add_argument("--cfg", nargs="+", default=[], help="model YAMLs (labels when --weights are given too)")
    parser.add_argument("--weights", nargs="+", default=[], help="trained checkpoints, one per --cfg (for mAP)")
    parser.add_argument("--data", type=str, default=None, help="dataset.yaml: adds mAP50 and mAP50-95 from val.py")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=640, help="square input size")
    parser.add_argument("--val-imgsz", type=int, default=None, help="image size for mAP (default: --imgsz)")
    parser.add_argument("--batch-size", nargs="+", type=int, default=[1], help="batch size(s), e.g. 1 32")
    parser.add_argument("--device", default="cpu", help="cpu, or a cuda device such as 0")
    parser.add_argument("--half", action="store_true", help="FP16 (CUDA only)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of PyTorch and ONNX Runtime")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model and runtime")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--burst", type=int, default=1,
                        help="calls of a model back to back per round; only the last is timed (warm caches)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak memory columns")
    parser.add_argument("--project", default=ROOT / "runs/compare", help="folder that holds the run folders")
    parser.add_argument("--name", default="exp", help="run folder name under --project")
    parser.add_argument("--exist-ok", action="store_true", help="reuse an existing project/name")
    parser.add_argument("--int8", action="store_true",
                        help="add OpenVINO FP32/INT8 (and BF16 where the CPU has it) columns; needs --data")
    parser.add_argument("--int8-images", type=int, default=300, help="--data train images to calibrate INT8 on")
    opt = parser.parse_args(argv)
    if not opt.cfg and not opt.weights:
        parser.error("give --cfg model YAMLs, --weights checkpoints, or both")
    if opt.int8 and not opt.data:
        parser.error("--int8 needs --data: its train images calibrate the INT8 quantization")
    if opt.runs < 1 or opt.warmup < 0 or opt.threads < 1 or opt.burst < 1 or min(opt.batch_size) < 1:
        parser.error("--runs, --threads, --burst and --batch-size must be >= 1 and --warmup >= 0")
    return opt


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
