"""Benchmark: train yolov5n and yolov5n-csppc on the shapes dataset on CPU and print their figures side by side.

Usage:
    python benchmarks/train_shapes.py --epochs 30                      # both models, 320 px, batch 16
    python benchmarks/train_shapes.py --epochs 2 --cfgs yolov5n-csppc.yaml

Each model is trained with train.py's own loop (train.main); callbacks time every epoch. Reported per model:
training images/s (training passes only), seconds per epoch for training and for validation, the best mAP50 and
mAP50-95 over the epochs (EMA weights), the final best.pt validation, and the epoch and wall time at which mAP50
first reached --target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import train  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402


class EpochTimer:
    """Callbacks recording training time, images, validation time and metrics of every epoch."""

    def __init__(self, target: float):
        self.target = target
        self.t0 = self.t_epoch = self.t_train_end = 0.0
        self.epochs: list[dict] = []
        self.images = 0
        self.final = None

    def register(self, callbacks: Callbacks) -> None:
        callbacks.register_action("on_train_start", "bench", self.on_train_start)
        callbacks.register_action("on_train_epoch_start", "bench", self.on_train_epoch_start)
        callbacks.register_action("on_train_batch_end", "bench", self.on_train_batch_end)
        callbacks.register_action("on_train_epoch_end", "bench", self.on_train_epoch_end)
        callbacks.register_action("on_fit_epoch_end", "bench", self.on_fit_epoch_end)
        callbacks.register_action("on_train_end", "bench", self.on_train_end)

    def on_train_start(self):
        self.t0 = time.time()

    def on_train_epoch_start(self):
        self.t_epoch, self.images = time.time(), 0

    def on_train_batch_end(self, model, ni, imgs, targets, paths, vals):
        self.images += imgs.shape[0]

    def on_train_epoch_end(self, epoch):
        self.t_train_end = time.time()

    def on_fit_epoch_end(self, vals, epoch, best_fitness, fi):
        now = time.time()
        self.epochs.append({"epoch": epoch, "images": self.images, "train_s": self.t_train_end - self.t_epoch,
                            "val_s": now - self.t_train_end, "wall_s": now - self.t0,
                            "mAP50": float(vals[5]), "mAP50-95": float(vals[6])})

    def on_train_end(self, last, best, epoch, results):
        self.final = {"mAP50": float(results[2]), "mAP50-95": float(results[3])}

    def summary(self) -> dict:
        train_s = sum(e["train_s"] for e in self.epochs)
        reached = next((e for e in self.epochs if e["mAP50"] >= self.target), None)
        best = max(self.epochs, key=lambda e: e["mAP50-95"]) if self.epochs else {}
        n = max(len(self.epochs), 1)
        return {
            "epochs": len(self.epochs),
            "train_img_s": sum(e["images"] for e in self.epochs) / max(train_s, 1e-9),
            "train_s_per_epoch": train_s / n,
            "val_s_per_epoch": sum(e["val_s"] for e in self.epochs) / n,
            "best_mAP50": max((e["mAP50"] for e in self.epochs), default=0.0),
            "best_mAP50-95": best.get("mAP50-95", 0.0),
            "final_mAP50": (self.final or {}).get("mAP50", 0.0),
            "final_mAP50-95": (self.final or {}).get("mAP50-95", 0.0),
            "target_epoch": reached["epoch"] if reached else None,
            "target_wall_min": reached["wall_s"] / 60 if reached else None,
            "wall_min": self.epochs[-1]["wall_s"] / 60 if self.epochs else 0.0,
            "per_epoch": self.epochs,
        }


def run(cfgs: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), data: str = "shapes.yaml", epochs: int = 30,
        imgsz: int = 320, batch_size: int = 16, workers: int = 2, threads: int = 2, target: float = 0.9,
        project: str = str(ROOT / "runs/benchmark"), seed: int = 0) -> dict:
    """Train each cfg for the same epochs; return and print {cfg: summary}."""
    torch.set_num_threads(threads)
    out = {}
    for cfg in cfgs:
        timer = EpochTimer(target)
        callbacks = Callbacks()
        timer.register(callbacks)
        opt = train.parse_opt(known=True, argv=[])
        settings = {"cfg": cfg, "data": data, "epochs": epochs, "imgsz": imgsz, "batch_size": batch_size,
                    "workers": workers, "device": "cpu", "project": project, "name": Path(cfg).stem, "noplots": True,
                    "seed": seed, "patience": 0}  # patience 0: a benchmark runs every epoch
        for k, v in settings.items():
            setattr(opt, k, v)
        train.main(opt, callbacks)
        out[cfg] = timer.summary()
        out[cfg]["run_dir"] = str(opt.save_dir)
    print_table(out, target)
    Path(project).mkdir(parents=True, exist_ok=True)
    with open(Path(project) / "train_shapes.json", "w") as f:
        json.dump(out, f, indent=2)
    return out


def print_table(out: dict, target: float) -> None:
    rows = [("model", "epochs", "train img/s", "train s/ep", "val s/ep", "best mAP50", "best mAP50-95",
             "best.pt mAP50", "best.pt mAP50-95", f"mAP50>={target} at", "wall min")]
    for cfg, s in out.items():
        reached = f"ep {s['target_epoch']} ({s['target_wall_min']:.1f} min)" if s["target_epoch"] is not None else "-"
        rows.append((Path(cfg).stem, str(s["epochs"]), f"{s['train_img_s']:.1f}", f"{s['train_s_per_epoch']:.1f}",
                     f"{s['val_s_per_epoch']:.1f}", f"{s['best_mAP50']:.3f}", f"{s['best_mAP50-95']:.3f}",
                     f"{s['final_mAP50']:.3f}", f"{s['final_mAP50-95']:.3f}", reached, f"{s['wall_min']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        LOGGER.info("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train yolov5n and yolov5n-csppc on shapes and compare")
    parser.add_argument("--cfgs", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"], help="model YAMLs")
    parser.add_argument("--data", default="shapes.yaml", help="dataset YAML")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per model")
    parser.add_argument("--imgsz", type=int, default=320, help="image size")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument("--workers", type=int, default=2, help="dataloader workers")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--target", type=float, default=0.9, help="mAP50 whose first epoch is reported")
    parser.add_argument("--project", default=str(ROOT / "runs/benchmark"), help="run folders go here")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    run(**{**vars(opt), "cfgs": tuple(opt.cfgs)})
