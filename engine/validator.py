"""The validation loop every task shares, and the --task speed / study drivers of the box tasks' val scripts.

Validator holds what every task repeats: the Profile-timed pre-process / inference / post-process loop, the loss
accumulated in training, the callbacks, the table, the speed line and the closing 'Results saved to' line. A task's
subclass (engine/tasks/<task>_val.py) fills in the hooks that differ: set-up (model, data, dataloader), the batch
steps, its metrics, its printed table and plots, and what it returns. Detection and segmentation return
((metrics..., losses...), per-class maps, ms per image); classification (top1, top5, loss).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from utils.callbacks import Callbacks
from utils.general import LOGGER, Profile, colorstr, increment_path
from utils.plots import plot_val_study
from utils.torch_utils import smart_inference_mode

STUDY_SIZES = tuple(range(256, 1536 + 128, 128))  # --task study image sizes, as YOLOv5
TIME_COLUMNS = ("preprocess_ms", "inference_ms", "nms_ms")


def set_precision(model: torch.nn.Module, half: bool) -> None:
    """Convert weights to FP16 or FP32 as ordinary tensors, even inside inference mode: the Trainer keeps using them."""
    with torch.inference_mode(False) if hasattr(torch, "inference_mode") else contextlib.nullcontext():
        model.half() if half else model.float()


class Validator:
    """The validation loop; subclasses supply the methods under 'task hooks'.

    Called by the Trainer with the live model and loader (args 'model' and 'dataloader'), or standalone with weights,
    which backend (DetectMultiBackend, passed in by the script) loads.
    """

    post_stage = "NMS"  # the third timed stage, as the Speed line names it

    def __init__(self, args: dict):
        self.args = argparse.Namespace(**args)
        self.callbacks = getattr(self.args, "callbacks", None) or Callbacks()

    @smart_inference_mode()
    def __call__(self, backend: Callable | None = None):
        """Validate; returns what the task's results() makes of the metrics, losses and timings."""
        self.setup(backend)
        self.init_metrics()
        dt = Profile(device=self.device), Profile(device=self.device), Profile(device=self.device)
        self.callbacks.run("on_val_start")
        for batch_i, batch in enumerate(self.progress()):
            self.batch_i = batch_i  # the hooks that plot the first batches read it
            self.callbacks.run("on_val_batch_start")
            with dt[0]:
                batch = self.preprocess(batch)
            with dt[1]:
                preds, train_out = self.forward(batch)
            if self.computes_loss:
                self.add_loss(train_out, batch)
            with dt[2]:
                preds = self.postprocess(preds, batch)
            self.update_metrics(preds, batch)
            if getattr(self.args, "plots", False) and batch_i < 3:
                self.plot_batch(batch, preds)
            self.callbacks.run("on_val_batch_end", *self.batch_end_args(batch, preds))

        self.compute_metrics()
        self.print_results()
        t = tuple(x.t / max(self.seen, 1) * 1e3 for x in dt)  # ms per image
        if self.shows_speed():
            LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms {self.post_stage} "
                        f"per image at shape {self.speed_shape()}")
        self.finalize()
        set_precision(self.model, False)  # back to FP32 for training
        if not self.training:
            LOGGER.info(f"Results saved to {colorstr('bold', self.save_dir)}{self.saved_note()}")
        return self.results(t)

    @property
    def computes_loss(self) -> bool:
        """Whether the Trainer passed a loss to score the validation batches with."""
        return getattr(self.args, "compute_loss", None) is not None

    def shows_speed(self) -> bool:
        """Standalone runs log the time per image of each stage."""
        return not self.training

    def saved_note(self) -> str:
        """What the 'Results saved to' line adds (the label files written)."""
        return ""

    def batch_end_args(self, batch, preds) -> tuple:
        """The arguments of the on_val_batch_end callback."""
        return self.batch_i, batch, preds

    def finalize(self) -> None:
        """Work after the table: plots, JSON; nothing by default."""

    # task hooks
    def setup(self, backend: Callable | None) -> None:
        """Set training, model, device, save_dir, data and dataloader: the live ones in training, else from weights."""
        raise NotImplementedError

    def progress(self) -> Iterable:
        """The dataloader, wrapped in a progress bar."""
        raise NotImplementedError

    def init_metrics(self) -> None:
        """Reset seen, the task's statistics and the loss before the loop."""
        raise NotImplementedError

    def preprocess(self, batch):
        """A dataloader batch on the device, in the model's precision."""
        raise NotImplementedError

    def forward(self, batch) -> tuple:
        """(predictions for postprocess, the training-format output for the loss or None)."""
        raise NotImplementedError

    def add_loss(self, train_out, batch) -> None:
        """Add one batch's loss items to the running sum."""
        raise NotImplementedError

    def postprocess(self, preds, batch):
        """Per-image results from the predictions (the third timed stage)."""
        raise NotImplementedError

    def update_metrics(self, preds, batch) -> None:
        """Count the batch's images and score its results against its labels."""
        raise NotImplementedError

    def plot_batch(self, batch, preds) -> None:
        """Save plots of one of the first batches; nothing by default."""

    def compute_metrics(self) -> None:
        """Turn the collected statistics into the task's metrics."""
        raise NotImplementedError

    def print_results(self) -> None:
        """Log the table of metrics."""
        raise NotImplementedError

    def speed_shape(self) -> tuple[int, ...]:
        """The input shape the Speed line names."""
        raise NotImplementedError

    def results(self, t: tuple[float, float, float]):
        """What the run returns."""
        raise NotImplementedError


def study(run: Callable, opt: argparse.Namespace, columns: tuple[str, ...], sizes: tuple[int, ...] = STUDY_SIZES
          ) -> Path:
    """--task study: run every weight at each image size; writes study_<data>_<weights>.csv and study.png."""
    save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
    weights = opt.weights if isinstance(opt.weights, list) else [opt.weights]
    own = ("weights", "imgsz", "project", "name", "exist_ok", "task")
    kwargs = {k: v for k, v in vars(opt).items() if k not in own}
    f = save_dir
    for w in weights:
        f = save_dir / f"study_{Path(opt.data).stem}_{Path(w).stem}.csv"
        rows = []
        for size in sizes:
            LOGGER.info(f"\nRunning {f} --imgsz {size}...")
            r, _, t = run(weights=w, imgsz=size, project=save_dir, name="runs", exist_ok=True, task="val",
                          **{**kwargs, "plots": False})
            rows.append([size, *r, *t])
        np.savetxt(f, np.array(rows), fmt="%10.4g", delimiter=",", header=",".join(("imgsz", *columns)), comments="")
        plot_val_study(f)
        LOGGER.info(f"Study results saved to {f} and {f.with_suffix('.png')}")
    return f


def run_task(opt: argparse.Namespace, run: Callable, study: Callable[[argparse.Namespace], Path]):
    """Dispatch a val CLI on --task: a validation run, a speed run per weight, or study(opt)."""
    if opt.task in ("train", "val", "test"):
        if opt.conf_thres > 0.001:
            LOGGER.info(f"WARNING confidence threshold {opt.conf_thres} > 0.001 produces invalid results")
        if opt.save_hybrid:
            LOGGER.info("WARNING --save-hybrid will return high mAP from hybrid labels, not from predictions alone")
        return run(**vars(opt))
    if opt.task not in ("speed", "study"):
        raise ValueError(f"--task {opt.task} is not one of train, val, test, speed, study")
    weights = opt.weights if isinstance(opt.weights, list) else [opt.weights]
    opt.half = torch.cuda.is_available() and opt.device != "cpu"  # FP16 for fastest results
    if opt.task == "speed":
        opt.conf_thres, opt.iou_thres, opt.save_json = 0.25, 0.45, False
        return [run(**{**vars(opt), "weights": w}, plots=False) for w in weights]
    return study(opt)
