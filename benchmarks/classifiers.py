"""Classifier benchmark on one recipe: params, GFLOPs, top-1/top-5, training throughput and CPU latency per model.

Each --model is trained from scratch with classify/train.py (same data, epochs, size, batch, seed), its best.pt is
validated (top-1/top-5), and training throughput is timed twice: over the epochs' training loops (data loading
included; models one after the other) and as single training steps on a fixed batch, timed interleaved. The fused
models' CPU latencies are timed interleaved too (median), so that load drifts hit every model alike. Writes
classifiers.md (table, machine, command) to runs/bench-cls/exp<N>.

Usage:
    python benchmarks/classifiers.py --model yolov5n.yaml yolov5n-csppc.yaml --data shapes-cls --imgsz 64 --epochs 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))  # so that `import train` finds the root script, not a same-named module here

import torch  # noqa: E402

from benchmarks.compare import machine_line  # noqa: E402
from benchmarks.timing import EpochTimer, time_interleaved  # noqa: E402
from classify import train as cls_train  # noqa: E402
from models.experimental import attempt_load  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.classify_data import check_cls_dataset  # noqa: E402
from utils.general import LOGGER, colorstr, increment_path, set_logging  # noqa: E402
from utils.torch_utils import get_flops  # noqa: E402


def train_one(model: str, data: str, imgsz: int, epochs: int, batch_size: int, seed: int, workers: int,
              project: Path) -> dict:
    """Train model from scratch on data; its params, GFLOPs, top-1, top-5, train img/s and best.pt."""
    opt = cls_train.parse_opt(known=True, argv=[])
    opt.model, opt.data, opt.imgsz, opt.epochs, opt.batch_size, opt.seed, opt.workers = (
        model, data, imgsz, epochs, batch_size, seed, workers)
    opt.project, opt.name, opt.pretrained = str(project), Path(model).stem, False
    callbacks = Callbacks()
    timer = EpochTimer(callbacks)
    top1, top5, _ = cls_train.main(opt, callbacks)
    n_train = len(list((check_cls_dataset(data)["train"]).rglob("*.jpg")))
    best = Path(opt.save_dir) / "weights" / "best.pt"
    m = attempt_load(best, fuse=False)
    return {"model": Path(model).stem, "params": sum(p.numel() for p in m.parameters()),
            "gflops_224": get_flops(m, 224), f"gflops_{imgsz}": get_flops(m, imgsz), "top1": top1, "top5": top5,
            "train_img_s": n_train * timer.epochs / max(timer.seconds, 1e-9), "weights": str(best)}


def train_step(weights: str, batch_size: int, imgsz: int):
    """One SGD step (forward, cross-entropy, backward, update) of a copy of the model on a fixed random batch."""
    model = attempt_load(weights, fuse=False).float().train()
    for p in model.parameters():
        p.requires_grad = True
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.rand(batch_size, 3, imgsz, imgsz), torch.randint(0, model.nc, (batch_size,))

    def step():
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def run(model: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), data: str = "shapes-cls", imgsz: int = 64,
        epochs: int = 10, batch_size: int = 32, seed: int = 0, workers: int = 0, runs: int = 100, warmup: int = 10,
        threads: int = 1, project: str | Path = ROOT / "runs/bench-cls", name: str = "exp") -> list[dict]:
    """Train, validate and time each model; log and write classifiers.md; returns the rows."""
    save_dir = increment_path(Path(project) / name)
    save_dir.mkdir(parents=True, exist_ok=True)
    rows = [train_one(m, data, imgsz, epochs, batch_size, seed, workers, save_dir) for m in model]

    torch.set_num_threads(threads)
    steps = time_interleaved({r["model"]: train_step(r["weights"], batch_size, imgsz) for r in rows},
                             max(runs // 5, 5), 2, cuda=False)
    im = torch.rand(1, 3, imgsz, imgsz)
    fused = {r["model"]: attempt_load(r["weights"], fuse=True).eval() for r in rows}
    with torch.inference_mode():
        ms = time_interleaved({k: (lambda m=m: m(im)) for k, m in fused.items()}, runs, warmup, cuda=False)
    base = ms[rows[0]["model"]]
    for r in rows:
        r["cpu_ms"], r["cpu_ratio"] = ms[r["model"]], ms[r["model"]] / base
        r["step_img_s"] = batch_size / steps[r["model"]] * 1000

    header = (f"| model | params | GFLOPs@224 | GFLOPs@{imgsz} | top-1 | top-5 | train img/s (epochs) "
              f"| train img/s (steps) | CPU ms (bs1, {imgsz} px) | CPU ratio |\n"
              f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['model']} | {r['params']:,} | {r['gflops_224']:.2f} | {r[f'gflops_{imgsz}']:.3f} | "
             f"{r['top1']:.3f} | {r['top5']:.3f} | {r['train_img_s']:.0f} | {r['step_img_s']:.0f} | "
             f"{r['cpu_ms']:.2f} | {r['cpu_ratio']:.2f} |" for r in rows]
    cmd = (f"python benchmarks/classifiers.py --model {' '.join(model)} --data {data} --imgsz {imgsz} "
           f"--epochs {epochs} --batch-size {batch_size} --seed {seed} --threads {threads}")
    text = "\n".join([header, *lines, "", f"Machine: {machine_line(torch.device('cpu'), threads)}", f"Command: {cmd}"])
    (save_dir / "classifiers.md").write_text(text + "\n")
    LOGGER.info(f"\n{text}\nResults saved to {colorstr('bold', save_dir)}")
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Options of the classifier benchmark."""
    parser = argparse.ArgumentParser(description="Benchmark YOLOv5 classifiers trained from scratch on one recipe")
    add = parser.add_argument
    add("--model", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"], help="models to train (first: baseline)")
    add("--data", default="shapes-cls", help="classification dataset: ImageFolder root, name or YAML")
    add("--imgsz", type=int, default=64, help="train, val and latency image size")
    add("--epochs", type=int, default=10, help="epochs per model")
    add("--batch-size", type=int, default=32, help="training batch size")
    add("--seed", type=int, default=0, help="training seed (the same for every model)")
    add("--workers", type=int, default=0, help="dataloader workers")
    add("--runs", type=int, default=100, help="timed latency passes per model")
    add("--warmup", type=int, default=10, help="untimed passes before the timed ones")
    add("--threads", type=int, default=1, help="torch CPU threads for the latency passes")
    add("--project", default=str(ROOT / "runs/bench-cls"), help="folder that holds the benchmark folders")
    add("--name", default="exp", help="benchmark folder name, numbered when taken")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
