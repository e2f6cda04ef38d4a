"""Ablation table of YOLOv5 variants: size, GFLOPs, PyTorch and ONNX Runtime latency, peak memory and mAP.

For each model: parameters and GFLOPs of the trained and the fused (inference) form, latency of the fused model in
PyTorch and in ONNX Runtime (median of --runs timed passes after --warmup, models interleaved round by round so that
drifts in machine load hit all of them alike), the peak memory each runtime adds to a fresh process, and mAP50 and
mAP50-95 from val.py when --weights and --data are given, and the latency of each model exported to ncnn, MNN and
LiteRT (benchmarks/mobile.py; INT8 columns where the export registry quantizes a format). Writes compare.md (the
table and the machine it ran on), compare.csv and compare.png to runs/compare/exp<N>.

Usage:
    python benchmarks/compare.py --cfg yolov5n.yaml yolov5n-csppc.yaml
    python benchmarks/compare.py --cfg yolov5n.yaml yolov5n-csppc.yaml --weights v5n.pt csppc.pt --data shapes.yaml
    python benchmarks/compare.py --cfg yolov5n.yaml yolov5n-csppc.yaml --device 0 --half --batch-size 1 32
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import platform
import sys
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/compare.py` finds the project's packages

import torch  # noqa: E402

from benchmarks import lowp, mobile  # noqa: E402
from benchmarks.timing import loadavg, ort_session, passive_wait, time_interleaved  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from models.formats.onnx import export_onnx  # noqa: E402
from models.yolo import Detect, DetectionModel  # noqa: E402
from utils.general import LOGGER, colorstr, increment_path, set_logging  # noqa: E402
from utils.torch_utils import get_flops, select_device  # noqa: E402

COLUMNS = ["model", "batch", "params", "params_fused", "gflops", "gflops_fused", "pytorch_ms", "pytorch_ratio",
           "onnxruntime_ms", "onnxruntime_ratio", "pytorch_peak_mb", "onnxruntime_peak_mb", "map50", "map50_95",
           "onnxruntime_diff"]


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
    wait = "passive" if passive_wait() else "spinning"
    return (f"{hw}; torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), {ort}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}; {wait} OpenMP thread "
            f"wait; load average {loadavg():.2f} at the end")


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
    return f, ort_session(f, threads, tuple(providers))


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


@dataclass
class ModelSpec:
    """One model of the table: its YAML and/or checkpoint, its label, and the accuracy measured once for it."""

    cfg: str | None
    weights: str | None
    label: str
    map: tuple[float | None, float | None] = (None, None)  # mAP50, mAP50-95 from val.py
    lowp_map: dict = field(default_factory=dict)  # lowp.COLUMNS' mAP values (--int8)


class Entry(NamedTuple):
    """One model at one batch size, ready to time: its table row (filled in step by step) and what runs it."""

    spec: ModelSpec
    row: dict
    fused: torch.nn.Module
    im: torch.Tensor
    onnx_file: Path | None
    session: Any  # an ONNX Runtime session, or None where ONNX Runtime cannot run here
    trained: torch.nn.Module  # what the mobile runtimes export (benchmarks/mobile.py)


def check_arguments(cfg: list, weights: list, data: str | None, int8: bool, half: bool, dev: torch.device) -> None:
    """Refuse combinations that cannot give the asked-for columns, before anything is built."""
    if not cfg and not weights:
        raise ValueError("compare: give model YAMLs with --cfg, checkpoints with --weights, or both")
    if cfg and weights and len(cfg) != len(weights):
        raise ValueError(f"compare: {len(cfg)} --cfg but {len(weights)} --weights; give one checkpoint per YAML")
    if data and not weights and not int8:
        raise ValueError("compare: --data gives mAP only for trained models; add --weights (one per --cfg)")
    if int8 and not data:
        raise ValueError("compare: --int8 needs --data, whose train images calibrate the INT8 quantization")
    if half and dev.type == "cpu":
        raise ValueError("compare: --half needs a CUDA device (--device 0); FP16 is not timed on CPU")


def model_specs(cfg: list, weights: list) -> list[ModelSpec]:
    """One spec per model, labelled by its YAML's (or checkpoint's) stem."""
    n = max(len(cfg), len(weights))
    specs = [ModelSpec(cfg[i] if cfg else None, str(weights[i]) if weights else None, "") for i in range(n)]
    for s in specs:
        s.label = Path(s.cfg or s.weights).stem
    return specs


def measure_accuracy(specs: list[ModelSpec], data: str | None, imgsz: int, device: str, half: bool, save_dir: Path,
                     int8: bool, int8_images: int) -> None:
    """mAP of each checkpoint from val.py (and of its OpenVINO FP32/INT8/BF16 forms with --int8), once per model:
    accuracy does not depend on the timing batch size."""
    for s in specs:
        if not (data and s.weights):
            continue
        s.map = validate(s.weights, data, imgsz, device, half, save_dir)
        if int8:
            s.lowp_map = lowp.lowp_map(s.weights, s.label, data, imgsz, int8_images, save_dir,
                                       lambda w, h: validate(w, data, imgsz, device, h, save_dir))


def build_entries(specs: list[ModelSpec], bs: int, imgsz: int, dev: torch.device, half: bool, threads: int,
                  save_dir: Path) -> list[Entry]:
    """Each model trained and fused, its input batch, its ONNX export and session, and the size columns."""
    entries = []
    for s in specs:
        trained = load_model(s.cfg, s.weights, dev)
        fused = deepcopy(trained).fuse()
        im = torch.rand(bs, 3, imgsz, imgsz, device=dev)
        if half:
            fused, im = fused.half(), im.half()
        onnx_file, session = onnx_session(fused, im, save_dir / f"{s.label}-b{bs}.pt", threads)
        row = {"model": s.label, "batch": bs,
               "params": sum(p.numel() for p in trained.parameters()), "gflops": get_flops(trained, imgsz),
               "params_fused": sum(p.numel() for p in fused.parameters()), "gflops_fused": get_flops(fused, imgsz),
               "onnxruntime_diff": onnx_difference(fused, im, session)}
        entries.append(Entry(s, row, fused, im, onnx_file, session, trained))
    return entries


@torch.no_grad()
def onnx_difference(fused: torch.nn.Module, im: torch.Tensor, session) -> float | None:
    """Largest |ONNX Runtime - PyTorch| of the decoded predictions: the check that the timed export is the model."""
    if session is None:
        return None
    set_detect_export(fused, True)
    y = fused(im)[0].float().cpu()
    set_detect_export(fused, False)
    y_ort = session.run(None, {session.get_inputs()[0].name: im.cpu().numpy()})[0]
    return float((torch.from_numpy(y_ort).float() - y).abs().max())


def measure_memory(entries: list[Entry], threads: int, bs: int, imgsz: int, dev: torch.device) -> None:
    """Peak memory columns of every model, PyTorch and ONNX Runtime (CPU only)."""
    for e in entries:
        spec = {"cfg": e.spec.cfg, "weights": e.spec.weights, "threads": threads, "batch": bs, "imgsz": imgsz}
        e.row["pytorch_peak_mb"] = peak_memory_mb({**spec, "runtime": "pytorch"}, e.fused, e.im)
        e.row["onnxruntime_peak_mb"] = (peak_memory_mb({**spec, "runtime": "onnxruntime", "onnx": str(e.onnx_file)})
                                        if e.session is not None and dev.type == "cpu" else None)


def time_runtimes(entries: list[Entry], runs: int, warmup: int, cuda: bool, burst: int) -> None:
    """PyTorch and ONNX Runtime latency columns, and the mAP measured before."""
    # one runtime at a time: its idle worker threads keep spinning for a while and would slow the other one
    with torch.no_grad():
        pt = time_interleaved({e.row["model"]: (lambda m=e.fused, x=e.im: m(x)) for e in entries}, runs, warmup,
                              cuda, burst)
    feeds = {e.row["model"]: (e.session, {e.session.get_inputs()[0].name: e.im.cpu().numpy()})
             for e in entries if e.session}
    ort = time_interleaved({k: (lambda s=s, d=d: s.run(None, d)) for k, (s, d) in feeds.items()}, runs, warmup,
                           False, burst)
    for e in entries:
        e.row["pytorch_ms"], e.row["onnxruntime_ms"] = pt[e.row["model"]], ort.get(e.row["model"])
        e.row["map50"], e.row["map50_95"] = e.spec.map


def time_low_precision(entries: list[Entry], data: str, int8_images: int, threads: int, bf16: bool, runs: int,
                       warmup: int, burst: int) -> None:
    """OpenVINO FP32/INT8/BF16 columns interleaved with each other, then PyTorch bf16 on its own (lowp.py)."""
    calls = {}
    for e in entries:
        for k, call in lowp.openvino_calls(e.onnx_file, e.im, data, int8_images, int(e.fused.stride.max()), threads,
                                           bf16).items():
            calls[(e.row["model"], k)] = call
    ov = time_interleaved(calls, runs, warmup, False, burst)
    with torch.no_grad():
        pt16 = time_interleaved({e.row["model"]: lowp.pytorch_bf16_call(e.fused, e.im) for e in entries}, runs,
                                warmup, False, burst) if bf16 else {}
    for e in entries:
        m = e.row["model"]
        e.row.update(openvino_ms=ov[(m, "fp32")], openvino_int8_ms=ov[(m, "int8")],
                     openvino_bf16_ms=ov.get((m, "bf16")), pytorch_bf16_ms=pt16.get(m), **e.spec.lowp_map)


def time_mobile(entries: list[Entry], runtimes: tuple[str, ...], data: str | None, int8: bool, int8_images: int,
                runs: int, warmup: int, burst: int, save_dir: Path) -> dict[str, str]:
    """ncnn, MNN and LiteRT columns (INT8 ones with --int8), models interleaved per runtime; returns why a column is
    empty where one is."""
    rows, notes = mobile.measure([e.trained for e in entries], [e.row["model"] for e in entries], entries[0].im,
                                 save_dir / "exports", runs, warmup, burst, data if int8 else None, int8_images,
                                 runtimes)
    for e, r in zip(entries, rows):
        e.row.update(r)
    mobile.log_unavailable(notes)
    return notes


def add_ratios(entries: list[Entry]) -> None:
    """Latency of every model as a ratio to the first one's, per runtime."""
    base = entries[0].row
    for e in entries:
        e.row["pytorch_ratio"] = e.row["pytorch_ms"] / base["pytorch_ms"]
        e.row["onnxruntime_ratio"] = (e.row["onnxruntime_ms"] / base["onnxruntime_ms"]
                                      if e.row["onnxruntime_ms"] and base["onnxruntime_ms"] else None)


def settings_line(rows: list[dict], cuda: bool, half: bool, imgsz: int, batch_size: tuple, runs: int, warmup: int,
                  burst: int, memory: bool, data: str | None, val_imgsz: int | None, weights: list) -> str:
    """What the figures mean: device, precision, sizes, how latency, memory and mAP were measured."""
    mem = ("" if not memory else "; peak memory is the CUDA allocator peak of PyTorch" if cuda else
           "; peak memory is the resident memory a fresh process gains at its peak while loading and running the model")
    val = f"; mAP from val.py on {data} at {val_imgsz or imgsz} px" if data and weights else ""
    back_to_back = f" (each timed run the last of {burst} back to back)" if burst > 1 else ""
    diffs = ", ".join(f"{r['model']} {r['onnxruntime_diff']:.1e}" for r in rows
                      if r["batch"] == rows[0]["batch"] and r.get("onnxruntime_diff") is not None)
    return (f"{'CUDA' if cuda else 'CPU'} {'FP16' if half else 'FP32'}, {imgsz}x{imgsz}, batch "
            f"{', '.join(map(str, batch_size))}; latency is the median of {runs} runs after {warmup} warm-up runs "
            f"of one forward pass, models interleaved{back_to_back}; ratios are to {rows[0]['model']} in the same "
            f"run{mem}{val}" + (f"; ONNX Runtime max|diff| from PyTorch: {diffs}" if diffs else ""))


def write_report(rows: list[dict], columns: list[str], save_dir: Path, table: str) -> None:
    """compare.md (the table), compare.csv (every column) and compare.png (the bar chart), then the log."""
    (save_dir / "compare.md").write_text(table)
    with open(save_dir / "compare.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    plot_bars(rows, save_dir / "compare.png")
    LOGGER.info(f"\n{table}\nResults saved to {colorstr('bold', str(save_dir))}")


def run(cfg: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), weights: tuple[str, ...] = (),
        data: str | None = None, imgsz: int = 640, val_imgsz: int | None = None, batch_size: tuple[int, ...] = (1,),
        device: str = "cpu",
        half: bool = False, threads: int = 2, runs: int = 30, warmup: int = 5, memory: bool = True,
        project: str | Path = ROOT / "runs/compare", name: str = "exp", exist_ok: bool = False, int8: bool = False,
        int8_images: int = 300, burst: int = 1, runtimes: tuple[str, ...] = mobile.MOBILE) -> list[dict]:
    """Measure every model, log the markdown table and write compare.md, compare.csv and compare.png.

    With int8 (needs data): OpenVINO FP32 and INT8 columns, and BF16 ones where the CPU has bf16 (benchmarks/lowp.py).
    runtimes: the mobile formats (ncnn, mnn, tflite) timed too, INT8 with int8 where the registry quantizes them.
    """
    cfg, weights = list(cfg or ()), list(weights or ())
    dev = select_device(device)
    check_arguments(cfg, weights, data, int8, half, dev)
    torch.set_num_threads(threads)
    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
    save_dir.mkdir(parents=True, exist_ok=True)
    specs = model_specs(cfg, weights)
    columns = COLUMNS + mobile.columns(tuple(runtimes)) + (lowp.COLUMNS if int8 else [])
    bf16 = int8 and dev.type == "cpu" and lowp.cpu_bf16_supported()
    measure_accuracy(specs, data, val_imgsz or imgsz, device, half, save_dir, int8, int8_images)

    rows, notes = [], {}
    for bs in batch_size:
        entries = build_entries(specs, bs, imgsz, dev, half, threads, save_dir)
        if memory:
            measure_memory(entries, threads, bs, imgsz, dev)
        time_runtimes(entries, runs, warmup, dev.type == "cuda", burst)
        if runtimes:
            notes[bs] = time_mobile(entries, tuple(runtimes), data, int8, int8_images, runs, warmup, burst, save_dir)
        if int8:
            time_low_precision(entries, data, int8_images, threads, bf16, runs, warmup, burst)
        add_ratios(entries)
        rows += [{k: e.row.get(k) for k in columns} for e in entries]
    if int8:
        lowp.add_ratios(rows)

    settings = settings_line(rows, dev.type == "cuda", half, imgsz, batch_size, runs, warmup, burst, memory, data,
                             val_imgsz, weights)
    command = "python benchmarks/compare.py " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "compare.py" \
        else "benchmarks.compare.run(...)"
    table = markdown_table(rows, machine_line(dev, threads), settings, command)
    if runtimes:
        table += (f"\n{mobile.mobile_table(rows, notes, tuple(runtimes))}\n\nCPU, {threads} threads, through "
                  f"DetectMultiBackend (its pre- and post-processing included); ratios are to {rows[0]['model']}\n")
    if int8:
        table += (f"\n{lowp.lowp_table(rows, bf16)}\n\nOpenVINO CPU, {threads} threads, one stream; INT8: NNCF "
                  f"post-training quantization on {int8_images} train images of {data}; ratios are to "
                  f"{rows[0]['model']}, INT8 / FP32 per model; {lowp.bf16_note()}\n")
    write_report(rows, columns, save_dir, table)
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
    parser.add_argument("--runtimes", nargs="*", default=list(mobile.MOBILE),
                        help="mobile runtimes to time too (ncnn mnn tflite); none with an empty list")
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
