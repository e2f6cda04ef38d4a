"""The training loop, once for every task: epochs of batches, validation, early stopping, checkpoints, the report.

A TrainTask (engine/tasks/<task>.py) supplies what differs: its set-up (data, model, optimizer, loaders, in the
order its logs come), how a batch reaches the model and the loss, its progress line, its validation and fitness,
its results.csv row and its closing hints. The Trainer owns the rest and offers the set-up steps every task shares
(run folder, loggers, seeds, schedule, EMA, resume, DDP) as methods a task's setup() calls.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from engine.steps import broadcast_stop, build_scheduler, grad_scaler, optimizer_step, prepare_run_dir, save_checkpoints
from models.experimental import attempt_load, strip_optimizer
from utils.callbacks import Callbacks
from utils.general import LOGGER, RANK, TQDM_BAR_FORMAT, colorstr
from utils.loggers import Loggers, experiment_loggers
from utils.torch_utils import ModelEMA, init_seeds, smart_DDP, smart_optimizer, smart_resume


class TrainTask:
    """What a task brings to the Trainer; each method receives the Trainer and reads or sets its state.

    Required: setup, preprocess, loss, progress, validate, validate_best, fitness, log_values, parse_opt.
    """

    name = ""
    loss_names: tuple[str, ...] = ()  # the loss items, in the order loss() returns them
    result_keys: tuple[str, ...] = ()  # results.csv columns after 'epoch'
    panels: tuple[str, ...] | None = None  # results.png panels (None: the detection layout)
    scripts = ("val.py", "detect.py")  # what to run next, for the closing hints
    hint_source = "data/images"  # the --source of the Predict hint
    hints_before_end = False  # v7.0's classify/train.py prints the hints before the loggers' closing line
    ema_attrs: tuple[str, ...] | None = None  # model attributes copied to the EMA each epoch (None: none)
    arg_prefix = "train"  # the name on the options line the run starts with
    inactive: dict = {}  # v7.0 options accepted but unused, {dest: (flag, default, feature)}

    def parse_opt(self, known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
        """The task's command-line options."""
        raise NotImplementedError

    def prepare_options(self, opt: argparse.Namespace) -> argparse.Namespace:
        """Check and complete the options before the device is chosen (resume, run folder); returns them."""
        return opt

    def setup(self, t: Trainer) -> None:
        """Build data, model, optimizer, loaders and the loss on t."""
        raise NotImplementedError

    def start_message(self, t: Trainer) -> str:
        """The line logged before the first epoch."""
        return f"Starting training for {t.epochs} epochs..."

    def epoch_start(self, t: Trainer, epoch: int) -> None:
        """Work before an epoch's batches (image weights); nothing by default."""

    def epoch_header(self, t: Trainer) -> str | None:
        """The header logged above each epoch's progress bar; None for none."""
        return None

    def new_mloss(self, t: Trainer) -> torch.Tensor:
        """The running mean of the loss items, zeroed."""
        return torch.zeros(len(self.loss_names), device=t.device)

    def preprocess(self, t: Trainer, batch: Any, ni: int, epoch: int) -> dict:
        """A loader batch as {'img', 'targets', 'paths', 'extra'} on the device (warmup and resizing included)."""
        raise NotImplementedError

    def loss(self, t: Trainer, pred: Any, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss to back-propagate, the detached loss items for the running mean)."""
        raise NotImplementedError

    def progress(self, t: Trainer, epoch: int, mem: str, batch: dict) -> str:
        """The progress bar's description."""
        raise NotImplementedError

    def plot_train_batch(self, opt: argparse.Namespace) -> Callable | None:
        """(imgs, targets, paths, file, *extra) -> None that draws a training batch; None: no batch images."""
        return None

    def validate(self, t: Trainer) -> tuple:
        """Validate t.ema.ema after an epoch; the results whose fitness the epoch gets."""
        raise NotImplementedError

    def validate_best(self, t: Trainer, best: Path) -> tuple:
        """Validate the stripped best.pt at the end."""
        raise NotImplementedError

    def fitness(self, results: tuple) -> float:
        """The figure best.pt is chosen by."""
        raise NotImplementedError

    def epoch_report(self, t: Trainer, epoch: int) -> None:
        """Log after an epoch's validation; nothing by default."""

    def log_values(self, t: Trainer) -> list[float]:
        """The results.csv row after 'epoch' (in result_keys' order)."""
        raise NotImplementedError

    def initial_results(self) -> tuple:
        """What results hold before the first validation."""
        return (0,) * (len(self.result_keys) - 2 * len(self.loss_names) - 3 + len(self.loss_names))

    def done_message(self, t: Trainer, epoch: int, hours: float) -> str:
        """The line logged when the epochs are over."""
        return f"\n{epoch - t.start_epoch + 1} epochs completed in {hours:.3f} hours."


class Trainer:
    """Train one model for one task; calling it runs the epochs and returns the final validation results."""

    def __init__(self, task: TrainTask, opt: argparse.Namespace, device: torch.device,
                 callbacks: Callbacks | None = None):
        self.task, self.opt, self.device = task, opt, device
        self.callbacks = callbacks or Callbacks()
        self.save_dir = Path(opt.save_dir)
        self.w = self.save_dir / "weights"
        self.last, self.best = self.w / "last.pt", self.w / "best.pt"
        self.epochs, self.batch_size = opt.epochs, opt.batch_size
        self.best_fitness, self.start_epoch = 0.0, 0
        self.accumulate, self.last_opt_step, self.stopper, self.ema = 1, -1, None, None
        self.results = task.initial_results()

    # Set-up steps a task's setup() calls -----------------------------------------------------------------------------

    def start_run(self, hyp: dict | None, evolve: bool = False) -> None:
        """Rank 0 makes the run folder and records hyp.yaml (when given) and opt.yaml."""
        prepare_run_dir(self.save_dir, self.opt, hyp, evolve)

    def add_loggers(self, hyp: dict | None = None, plots: bool = True) -> None:
        """results.csv, batch images and results.png through callbacks, laid out by the task; then every experiment
        tracker that is on, under the task's keys (rank 0; none while evolving, whose generations share a folder)."""
        if RANK not in {-1, 0}:
            return
        loggers = Loggers(self.save_dir, self.opt, hyp)
        loggers.keys, loggers.plots, loggers.panels = self.task.result_keys, plots, self.task.panels
        loggers.plot_train_batch = self.task.plot_train_batch(self.opt)
        loggers.register(self.callbacks)
        if not getattr(self.opt, "evolve", None):
            for tracker in experiment_loggers(self.save_dir, self.opt, hyp, self.task.result_keys):
                tracker.register(self.callbacks)

    def seed(self) -> None:
        """Seed every generator from --seed (each rank its own)."""
        init_seeds(self.opt.seed + 1 + RANK, deterministic=True)

    def build_optimizer(self, name: str, lr0: float, momentum: float, decay: float, lrf: float) -> None:
        """The optimizer, its LR schedule (linear or --cos-lr down to lrf) and the EMA (rank 0)."""
        self.optimizer = smart_optimizer(self.model, name, lr0, momentum, decay)
        self.scheduler, self.lf = build_scheduler(self.optimizer, self.epochs, lrf, getattr(self.opt, "cos_lr", False))
        self.ema = ModelEMA(self.model) if RANK in {-1, 0} else None

    def resume(self, ckpt: dict, weights: str) -> None:
        """Continue from a checkpoint: optimizer, EMA, best fitness and the next epoch."""
        self.best_fitness, self.start_epoch, self.epochs = smart_resume(ckpt, self.optimizer, self.ema, weights,
                                                                        self.epochs, True)

    def wrap_ddp(self) -> None:
        """Wrap the model for DDP under torchrun (also broadcasts rank 0's parameters and buffers)."""
        if RANK != -1:
            self.model = smart_DDP(self.model)

    # The loop --------------------------------------------------------------------------------------------------------

    def __call__(self) -> tuple:
        """Set up, train every epoch, then strip and validate the best weights; returns the final results."""
        self.callbacks.run("on_pretrain_routine_start")
        self.task.setup(self)
        self.nb = len(self.train_loader)
        self.scheduler.last_epoch = self.start_epoch - 1
        self.scaler = grad_scaler(self.amp)
        self.t0 = time.time()
        self.callbacks.run("on_train_start")
        LOGGER.info(self.task.start_message(self))
        epoch = self.start_epoch
        for epoch in range(self.start_epoch, self.epochs):
            if not self.train_epoch(epoch):
                return self.results  # a callback asked to stop
            if broadcast_stop(self.end_epoch(epoch)):  # every rank learns whether rank 0 stopped early
                break
        self.finish(epoch)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return self.results

    def train_epoch(self, epoch: int) -> bool:
        """One pass over the training data; False when a callback set stop_training."""
        task, model, opt = self.task, self.model, self.optimizer
        self.callbacks.run("on_train_epoch_start")
        model.train()
        task.epoch_start(self, epoch)
        self.mloss = task.new_mloss(self)
        if RANK != -1:
            self.train_loader.sampler.set_epoch(epoch)
        header = task.epoch_header(self)
        if header:
            LOGGER.info(header)
        pbar = enumerate(self.train_loader)
        if RANK in {-1, 0}:
            pbar = tqdm(pbar, total=self.nb, bar_format=TQDM_BAR_FORMAT)
        opt.zero_grad()
        for i, batch in pbar:
            self.callbacks.run("on_train_batch_start")
            ni = i + self.nb * epoch  # batches since the start of training
            batch = task.preprocess(self, batch, ni, epoch)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
                loss, loss_items = task.loss(self, model(batch["img"]), batch)
            self.scaler.scale(loss).backward()
            if ni - self.last_opt_step >= self.accumulate:
                optimizer_step(model, opt, self.scaler, self.ema)
                self.last_opt_step = ni
            if RANK in {-1, 0}:
                self.mloss = (self.mloss * i + loss_items) / (i + 1)
                mem = f"{torch.cuda.memory_reserved() / 1e9 if torch.cuda.is_available() else 0:.3g}G"
                pbar.set_description(task.progress(self, epoch, mem, batch))
                self.callbacks.run("on_train_batch_end", model, ni, batch["img"], batch["targets"], batch["paths"],
                                   list(self.mloss), *batch["extra"])
                if self.callbacks.stop_training:
                    return False
        self.lr = [x["lr"] for x in opt.param_groups]  # for the loggers
        self.scheduler.step()
        return True

    def end_epoch(self, epoch: int) -> bool:
        """Rank 0: validate, log the row, keep the best fitness, save checkpoints; whether to stop early."""
        if RANK not in {-1, 0}:
            return False
        task, o = self.task, self.opt
        self.callbacks.run("on_train_epoch_end", epoch=epoch)
        if task.ema_attrs is not None:
            self.ema.update_attr(self.model, include=list(task.ema_attrs))
        final_epoch = epoch + 1 == self.epochs or (self.stopper is not None and self.stopper.possible_stop)
        if not getattr(o, "noval", False) or final_epoch:
            self.results = task.validate(self)
        fi = task.fitness(self.results)
        stop = self.stopper(epoch=epoch, fitness=fi) if self.stopper is not None else False
        self.best_fitness = max(self.best_fitness, fi)
        task.epoch_report(self, epoch)
        self.callbacks.run("on_fit_epoch_end", task.log_values(self), epoch, self.best_fitness, fi)
        if not o.nosave or (final_epoch and not getattr(o, "evolve", None)):
            save_checkpoints(self.w, epoch, self.best_fitness, fi, self.model, self.ema, self.optimizer, o,
                             getattr(o, "save_period", -1))
            self.callbacks.run("on_model_save", self.last, epoch, final_epoch, self.best_fitness, fi)
        return stop

    def finish(self, epoch: int) -> None:
        """Rank 0: strip the optimizer from last.pt and best.pt, validate best.pt, print what to run next."""
        if RANK not in {-1, 0}:
            return
        LOGGER.info(self.task.done_message(self, epoch, (time.time() - self.t0) / 3600))
        for f in self.last, self.best:
            if f.exists():
                strip_optimizer(f)
        if self.best.exists():
            LOGGER.info(f"\nValidating {self.best}...")
            self.results = self.task.validate_best(self, self.best)
        if self.task.hints_before_end:
            self.log_hints()
        self.callbacks.run("on_train_end", self.last, self.best, epoch, self.results)
        if not self.task.hints_before_end:
            self.log_hints()

    def log_hints(self) -> None:
        """The commands that validate, predict with and export best.pt."""
        if self.best.exists():
            val, predict = self.task.scripts
            b, imgsz = self.best, self.imgsz
            LOGGER.info(f"\nBest weights: {b}\n"
                        f"Validate:  python {val} --weights {b} --data {self.opt.data} --img {imgsz}\n"
                        f"Predict:   python {predict} --weights {b} --source {self.task.hint_source} --img {imgsz}\n"
                        f"Export:    python export.py --weights {b} --include onnx --img {imgsz}")

    def load_best(self, best: Path) -> torch.nn.Module:
        """best.pt loaded for the closing validation."""
        return attempt_load(best, self.device)


def log_options(task: TrainTask, opt: argparse.Namespace) -> None:
    """The options line a run starts with, named as v7.0 names it ('train: ...', 'classify/train: ...')."""
    LOGGER.info(colorstr(f"{task.arg_prefix}: ") + ", ".join(f"{k}={v}" for k, v in vars(opt).items()))

