"""CUDA end to end in one prepared run: AMP training of every task, FP16 val/detect/export, DDP, CSPPC's GPU latency.

Each step runs the project's own command lines in subprocesses (so a crash in one is that step's failure, and DDP
runs under torchrun as users run it), checks what it produced, and records the figures. Everything lands in
<out>/cuda_check.json and <out>/cuda_check.log; the exit status is 1 when any check failed.

On a GPU machine (sizes for well under 9 minutes on one H100):
    python benchmarks/cuda_check.py --device 0 --out runs/cuda_check
On the CPU the same steps run on tiny sizes, which is how the test checks the script's logic:
    python benchmarks/cuda_check.py --device cpu --out /tmp/cuda_check

The GPU machine has torch, torchvision, onnx, onnxruntime, OpenCV, pandas, matplotlib, scipy and tensorboard; what
the steps import beyond those comes along as wheels: thop, pycocotools, PyYAML, tqdm, psutil (and Pillow if absent).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/cuda_check.py` finds the project's packages

import torch  # noqa: E402
import yaml  # noqa: E402

from utils.general import LOGGER  # noqa: E402

ALL_ROW = re.compile(r"^\s*all\s+\d+\s+\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", re.M)  # val's summary row


@dataclass
class Sizes:
    """How big each step is: the GPU run's sizes, or tiny ones that exercise the same logic on a CPU."""

    imgsz: int = 320
    epochs: int = 2
    batch: int = 32
    train_images: int = 400
    val_images: int = 100
    cls_images: int = 60  # per class
    latency_imgsz: int = 640
    latency_batches: tuple[int, ...] = (1, 32)
    latency_runs: int = 50
    train_batch: int = 64  # training images/s is measured at this batch
    workers: int = 4

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(imgsz=64, epochs=1, batch=4, train_images=8, val_images=4, cls_images=4, latency_imgsz=64,
                   latency_batches=(1, 2), latency_runs=2, train_batch=2, workers=0)


@dataclass
class Report:
    """What the run found: the environment, one entry per check, and the figures measured."""

    environment: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)  # name -> {"ok": bool, "detail": str}
    figures: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # step -> wall time

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks[name] = {"ok": bool(ok), "detail": detail}
        return bool(ok)

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.checks.items() if not v["ok"]]


class Runner:
    """Runs the project's command lines, appending their output to one log file."""

    def __init__(self, out: Path, log: Path):
        self.out, self.log = out, log

    def __call__(self, *args: str, timeout: float = 600, module: bool = False) -> tuple[int, str]:
        cmd = [sys.executable, *(["-m"] if module else []), *map(str, args)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.time()
        try:
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
            rc, text = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as e:
            rc, text = -9, f"{(e.stdout or b'').decode(errors='replace')}\nTIMEOUT after {timeout:g} s"
        with open(self.log, "a") as f:
            f.write(f"\n$ {' '.join(cmd)}\n{text}\n[exit {rc}, {time.time() - t0:.1f} s]\n")
        return rc, text


def environment(device: str) -> dict:
    """torch, CUDA, cuDNN and the GPU's name (or the CPU's, when run on the CPU)."""
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if device != "cpu" and torch.cuda.is_available():
        i = int(device.split(",")[0])
        props = torch.cuda.get_device_properties(i)
        env |= {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
                "capability": f"{props.major}.{props.minor}", "gpus": torch.cuda.device_count()}
    else:
        env["gpu"] = None
    return env


def make_datasets(root: Path, s: Sizes) -> dict[str, str]:
    """The shapes detection, segmentation and classification sets at the run's sizes, as data YAML paths."""
    from utils.classify_data import generate_shapes_cls
    from utils.shapes import NAMES, generate_shapes_dataset

    names = dict(enumerate(NAMES))
    out = {}
    for task, segments in (("detect", False), ("segment", True)):
        d = generate_shapes_dataset(root / f"shapes-{task}", train=s.train_images, val=s.val_images, imgsz=s.imgsz,
                                    seed=0, segments=segments)
        f = root / f"shapes-{task}.yaml"
        f.write_text(yaml.safe_dump({"path": str(d), "train": "images/train", "val": "images/val", "names": names}))
        out[task] = str(f)
    out["classify"] = str(generate_shapes_cls(root / "shapes-cls", train=s.cls_images, val=max(s.cls_images // 3, 2),
                                              imgsz=64, seed=0))
    return out


def finite_losses(results_csv: Path) -> tuple[bool, str]:
    """Whether every loss column of a results.csv holds finite numbers in every epoch."""
    if not results_csv.exists():
        return False, f"{results_csv} missing"
    rows = list(csv.DictReader(results_csv.open()))
    losses = [k for k in (rows[0] if rows else {}) if "loss" in k]
    bad = [(i, k.strip()) for i, r in enumerate(rows) for k in losses if not math.isfinite(float(r[k]))]
    return bool(rows and losses and not bad), f"{len(rows)} epochs, loss columns {len(losses)}, non-finite {bad[:3]}"


def train_step(r: Report, run: Runner, name: str, script: str, args: list[str], run_dir: Path, cuda: bool,
               timeout: float) -> Path | None:
    """Train one model through its script; check exit, AMP, finite losses, checkpoints and validation."""
    rc, text = run(script, *args, "--project", run_dir.parent, "--name", run_dir.name, "--exist-ok", timeout=timeout)
    ok = r.check(f"train {name}: exit 0", rc == 0, text.strip().splitlines()[-1] if text.strip() else "")
    if cuda:
        r.check(f"train {name}: AMP check passed", "AMP: checks passed" in text)
    best = run_dir / "weights" / "best.pt"
    r.check(f"train {name}: checkpoints written", best.exists() and (run_dir / "weights" / "last.pt").exists())
    if (run_dir / "results.csv").exists():
        r.check(f"train {name}: losses finite", *finite_losses(run_dir / "results.csv"))
    else:  # the classification trainer logs its epochs and saves no results.csv of v7.0's layout
        r.check(f"train {name}: losses finite", "nan" not in text.lower() and ok, "read from the log")
    r.check(f"train {name}: validation ran" + (" (FP16 with AMP)" if cuda else ""),
            bool(ALL_ROW.search(text)) or "top1_acc" in text or "top1" in text)
    return best if best.exists() else None


def val_map(run: Runner, weights: Path, data: str, s: Sizes, device: str, half: bool) -> tuple[float, float] | None:
    """(mAP50, mAP50-95) that val.py prints for weights, or None when it failed."""
    rc, text = run("val.py", "--weights", weights, "--data", data, "--imgsz", s.imgsz, "--device", device,
                   "--batch-size", s.batch, "--workers", s.workers, *(["--half"] if half else []),
                   "--project", weights.parents[2] / "val", "--exist-ok")
    m = ALL_ROW.findall(text)
    return (float(m[-1][2]), float(m[-1][3])) if rc == 0 and m else None


def half_inference(r: Report, run: Runner, best: Path, data: str, s: Sizes, device: str) -> None:
    """val.py and detect.py with --half on the trained detector: mAP within 0.005 of FP32, the same boxes written."""
    fp32, fp16 = val_map(run, best, data, s, device, False), val_map(run, best, data, s, device, True)
    r.figures["val_map50_95"] = {"fp32": fp32 and fp32[1], "fp16": fp16 and fp16[1]}
    r.check("val --half: mAP50-95 within 0.005 of FP32", bool(fp32 and fp16 and abs(fp32[1] - fp16[1]) <= 0.005),
            f"FP32 {fp32}, FP16 {fp16}")
    source = Path(yaml.safe_load(Path(data).read_text())["path"]) / "images" / "val"
    counts = {}
    for half in (False, True):
        name = "half" if half else "fp32"
        rc, _ = run("detect.py", "--weights", best, "--source", source, "--imgsz", s.imgsz, "--device", device,
                    "--save-txt", "--nosave", *(["--half"] if half else []), "--project", best.parents[2] / "detect",
                    "--name", name, "--exist-ok")
        labels = best.parents[2] / "detect" / name / "labels"
        counts[name] = sum(len(f.read_text().splitlines()) for f in labels.glob("*.txt")) if rc == 0 else None
    r.figures["detect_boxes"] = counts
    ok = counts["fp32"] is not None and counts["half"] is not None
    r.check("detect --half: runs, box count within 2% of FP32",
            ok and abs(counts["half"] - counts["fp32"]) <= max(1, 0.02 * counts["fp32"]), str(counts))


def export_half(r: Report, run: Runner, best: Path, data: str, s: Sizes, device: str) -> None:
    """export.py --half to TorchScript and ONNX on the device; export's own output check, then val.py on each."""
    half = ["--half"] if device != "cpu" else []  # FP16 export is CUDA-only, as in v7.0
    rc, text = run("export.py", "--weights", best, "--include", "torchscript", "onnx", "--imgsz", s.imgsz,
                   "--device", device, *half)
    r.check("export --half torchscript onnx: exit 0", rc == 0, text.strip().splitlines()[-1] if text else "")
    pt = val_map(run, best, data, s, device, bool(half))
    for suffix in (".torchscript", ".onnx"):
        f = best.with_suffix(suffix)
        got = val_map(run, f, data, s, device, bool(half)) if f.exists() else None
        r.figures[f"export{suffix}_map50_95"] = got and got[1]
        r.check(f"export {suffix}: runs in val.py, mAP50-95 within 0.01 of the .pt", bool(
            got and pt and abs(got[1] - pt[1]) <= 0.01), f".pt {pt}, {suffix} {got}")


def ddp(r: Report, run: Runner, data: str, s: Sizes, device: str, out: Path) -> None:
    """One epoch under torchrun --nproc_per_node 1 (NCCL on a GPU, gloo on the CPU), plain and with --sync-bn."""
    for sync in (False, True):
        name = "ddp-syncbn" if sync else "ddp"
        rc, text = run("torch.distributed.run", "--nproc_per_node", 1, "train.py", "--cfg", "yolov5n-csppc.yaml",
                       "--data", data, "--imgsz", s.imgsz, "--epochs", 1, "--batch-size", s.batch, "--device", device,
                       "--workers", s.workers, "--weights", "", *(["--sync-bn"] if sync else []),
                       "--project", out / "runs", "--name", name, "--exist-ok", module=True, timeout=300)
        weights = out / "runs" / name / "weights" / "last.pt"
        r.check(f"torchrun DDP{' --sync-bn' if sync else ''}: exit 0 and a checkpoint", rc == 0 and weights.exists(),
                text.strip().splitlines()[-1] if text.strip() else "")


def train_images_per_second(cfg: str, s: Sizes, device: torch.device, iters: int) -> float:
    """Training images/s of one model at s.train_batch: forward, loss, backward and step, AMP on CUDA."""
    from models.yolo import DetectionModel
    from utils.loss import ComputeLoss

    model = DetectionModel(cfg, nc=6).to(device).train()
    model.hyp = yaml.safe_load((ROOT / "data/hyps/hyp.scratch-low.yaml").read_text())
    loss_fn, cuda = ComputeLoss(model), device.type == "cuda"
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    g = torch.Generator().manual_seed(0)
    ims = torch.rand(s.train_batch, 3, s.imgsz, s.imgsz, generator=g).to(device)
    targets = torch.cat([torch.arange(s.train_batch).repeat_interleave(4)[:, None].float(),
                         torch.randint(0, 6, (s.train_batch * 4, 1), generator=g).float(),
                         torch.rand(s.train_batch * 4, 2, generator=g) * 0.6 + 0.2,
                         torch.rand(s.train_batch * 4, 2, generator=g) * 0.2 + 0.05], 1).to(device)

    def step():
        with torch.autocast(device.type, enabled=cuda):
            loss, _ = loss_fn(model(ims), targets)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return s.train_batch * iters / (time.perf_counter() - t0)


def latency(r: Report, run: Runner, s: Sizes, device: str, out: Path) -> None:
    """compare.py's CUDA columns, then fused FP16 latency in eager, channels_last and torch.compile forms."""
    from benchmarks.compare import time_interleaved
    from models.yolo import DetectionModel

    cuda = device != "cpu"
    rc, text = run("benchmarks/compare.py", "--cfg", "yolov5n.yaml", "yolov5n-csppc.yaml", "--imgsz",
                   s.latency_imgsz, "--batch-size", *s.latency_batches, "--device", device,
                   *(["--half"] if cuda else []), "--runs", s.latency_runs, "--warmup", 2, "--no-memory",
                   "--project", out / "runs" / "compare", "--exist-ok", timeout=600)
    r.check("compare.py CUDA columns: exit 0", rc == 0, text.strip().splitlines()[-1] if text.strip() else "")
    dev = torch.device(f"cuda:{device}" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    for b in s.latency_batches:
        x = torch.rand(b, 3, s.latency_imgsz, s.latency_imgsz, device=dev, dtype=dtype)
        calls, forms = {}, ("eager", "channels_last", "compile")
        for cfg in ("yolov5n.yaml", "yolov5n-csppc.yaml"):
            m = DetectionModel(cfg, nc=80).fuse().eval().to(dev, dtype)
            calls[f"{cfg} eager"] = _no_grad(m, x)
            mc = DetectionModel(cfg, nc=80).fuse().eval().to(dev, dtype).to(memory_format=torch.channels_last)
            calls[f"{cfg} channels_last"] = _no_grad(mc, x.contiguous(memory_format=torch.channels_last))
            if not cuda:  # inductor on the CPU compiles C++ for minutes: the tiny logic run leaves it out
                continue
            try:  # compiling can fail on some set-ups: then that column is left out, with the error recorded
                compiled = torch.compile(mc)
                _no_grad(compiled, x.contiguous(memory_format=torch.channels_last))()
                calls[f"{cfg} compile"] = _no_grad(compiled, x.contiguous(memory_format=torch.channels_last))
            except Exception as e:
                r.figures.setdefault("compile_errors", []).append(f"{cfg}: {type(e).__name__}: {e}"[:300])
        ms = time_interleaved(calls, s.latency_runs, 3, cuda)
        for form in forms:
            a, b_ = ms.get(f"yolov5n.yaml {form}"), ms.get(f"yolov5n-csppc.yaml {form}")
            if a and b_:
                r.figures[f"latency_ms b{b} {form}"] = {"yolov5n": round(a, 3), "yolov5n-csppc": round(b_, 3),
                                                        "csppc/yolov5n": round(b_ / a, 3),
                                                        "throughput csppc/yolov5n": round(a / b_, 3)}
    r.check("latency: eager and channels_last measured for both models",
            all(f"latency_ms b{b} {f}" in r.figures for b in s.latency_batches for f in ("eager", "channels_last")))
    ips = {cfg: round(train_images_per_second(cfg, s, dev, iters=20 if cuda else 2), 1)
           for cfg in ("yolov5n.yaml", "yolov5n-csppc.yaml")}
    r.figures[f"train_images_per_s b{s.train_batch}"] = ips | {"csppc/yolov5n": round(
        ips["yolov5n-csppc.yaml"] / ips["yolov5n.yaml"], 3)}


def _no_grad(model, x):
    def call():
        with torch.no_grad():
            return model(x)

    return call


def run(device: str = "0", out: str = "runs/cuda_check", tiny: bool | None = None) -> Report:
    """Run every step; write <out>/cuda_check.json and <out>/cuda_check.log; returns the report."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "cuda_check.log"
    log.write_text("")
    s = Sizes.tiny() if (tiny if tiny is not None else device == "cpu") else Sizes()
    cuda, r, run_ = device != "cpu", Report(), Runner(out, log)
    r.environment = environment(device) | {"device": device, "sizes": asdict(s)}
    t = time.time()
    data = make_datasets(out / "datasets", s)
    common = ["--imgsz", s.imgsz, "--epochs", s.epochs, "--batch-size", s.batch, "--device", device, "--workers",
              s.workers]
    steps = {
        "train": lambda: [
            train_step(r, run_, cfg, "train.py", ["--cfg", cfg, "--data", data["detect"], "--weights", "", *common],
                       out / "runs" / Path(cfg).stem, cuda, 600) for cfg in ("yolov5n.yaml", "yolov5n-csppc.yaml")] + [
            train_step(r, run_, "yolov5n-seg-csppc.yaml", "segment/train.py",
                       ["--cfg", "yolov5n-seg-csppc.yaml", "--data", data["segment"], "--weights", "", *common],
                       out / "runs" / "yolov5n-seg-csppc", cuda, 600),
            train_step(r, run_, "yolov5n-csppc-cls", "classify/train.py",
                       ["--model", "yolov5n-csppc.yaml", "--data", data["classify"], "--imgsz", 64, "--epochs",
                        s.epochs, "--batch-size", s.batch, "--device", device, "--workers", s.workers],
                       out / "runs" / "yolov5n-csppc-cls", cuda, 600)],
    }
    results = {}
    for name, step in steps.items():
        t0 = time.time()
        results[name] = step()
        r.seconds[name] = round(time.time() - t0, 1)
    best = results["train"][1] or results["train"][0]  # the CSPPC detector, or yolov5n's if that one failed
    later = {"half_inference": lambda: half_inference(r, run_, best, data["detect"], s, device),
             "export": lambda: export_half(r, run_, best, data["detect"], s, device),
             "ddp": lambda: ddp(r, run_, data["detect"], s, device, out),
             "latency": lambda: latency(r, run_, s, device, out)}
    for name, step in later.items():
        t0 = time.time()
        if best is None and name in ("half_inference", "export"):
            r.check(f"{name}: a trained detector to start from", False, "both detection trainings failed")
            continue
        try:
            step()
        except Exception as e:  # one broken step is reported; the others still run
            r.check(f"{name}: ran", False, f"{type(e).__name__}: {e}")
        r.seconds[name] = round(time.time() - t0, 1)
    r.seconds["total"] = round(time.time() - t, 1)
    (out / "cuda_check.json").write_text(json.dumps(asdict(r), indent=2, default=str))
    summary = [f"{'PASS' if v['ok'] else 'FAIL'}  {k}  {v['detail']}" for k, v in r.checks.items()]
    with open(log, "a") as f:
        f.write("\n" + "\n".join(summary) + "\n")
    LOGGER.info("\n".join(summary))
    LOGGER.info(json.dumps(r.figures, indent=1, default=str))
    LOGGER.info(f"{len(r.checks) - len(r.failed)}/{len(r.checks)} checks passed in {r.seconds['total']:.0f} s; "
          f"report {out / 'cuda_check.json'}, log {log}")
    return r


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CUDA end-to-end check: train, FP16 inference, export, DDP, latency")
    parser.add_argument("--device", default="0", help="cuda device, or cpu for the tiny logic run")
    parser.add_argument("--out", default=str(ROOT / "runs/cuda_check"), help="folder for the JSON, the log and runs")
    parser.add_argument("--tiny", action="store_true", default=None, help="tiny sizes (default on the CPU)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    report = run(**vars(parse_opt()))
    sys.exit(1 if report.failed else 0)
