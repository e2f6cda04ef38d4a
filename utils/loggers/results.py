"""results.csv and the run folder's training plots, through callbacks; evolve.csv for hyperparameter evolution."""

from __future__ import annotations

import os
from pathlib import Path

from utils.general import LOGGER, colorstr

RESULTS_KEYS = (
    "train/box_loss", "train/obj_loss", "train/cls_loss",  # train loss
    "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",  # metrics
    "val/box_loss", "val/obj_loss", "val/cls_loss",  # val loss
    "x/lr0", "x/lr1", "x/lr2",  # learning rates of the bias, weight and norm-weight groups
)


def read_results_epochs(file: str | Path) -> list[int]:
    """Epoch numbers of the data rows of a results.csv, in file order."""
    with open(file) as f:
        rows = f.read().splitlines()[1:]
    return [int(float(r.split(",")[0])) for r in rows if r.strip()]


def write_results_row(file: str | Path, epoch: int, vals: list[float], keys: tuple[str, ...] = RESULTS_KEYS) -> None:
    """Append one epoch to results.csv (YOLOv5 layout), first dropping rows of this or later epochs.

    A run killed after logging an epoch but before saving its checkpoint repeats that epoch on --resume; dropping
    the stale rows keeps exactly one row per epoch.
    """
    file = Path(file)
    n = len(keys) + 1
    header = ("%23s," * n % ("epoch", *keys)).rstrip(",") + "\n"
    row = ("%23.5g," * n % (epoch, *vals)).rstrip(",") + "\n"
    if file.exists():
        with open(file) as f:
            lines = f.read().splitlines(keepends=True)
        kept = [ln for ln in lines[1:] if ln.strip() and int(float(ln.split(",")[0])) < epoch]
        if len(kept) != len(lines) - 1:
            tmp = file.with_suffix(f".tmp{os.getpid()}")
            with open(tmp, "w") as f:
                f.writelines([lines[0] if lines else header, *kept])
            os.replace(tmp, file)
    else:
        with open(file, "w") as f:
            f.write(header)
    with open(file, "a") as f:
        f.write(row)


class Loggers:
    """Results CSV, train-batch mosaics, labels and results plots; each method is a hook (trackers: base.py)."""

    def __init__(self, save_dir: Path, opt=None, hyp: dict | None = None, include: tuple[str, ...] = ("csv",)):
        self.save_dir = Path(save_dir)
        self.opt = opt
        self.plots = not getattr(opt, "noplots", False)
        self.keys = RESULTS_KEYS
        self.panels: tuple[str, ...] | None = None  # results.png panels, from the task (None: chosen by columns)
        # (imgs, targets, paths, file, *extra) -> None: the Trainer sets its task's; standalone, v7.0's default
        self.plot_train_batch = self.plot_batch
        self.csv = "csv" in include

    def register(self, callbacks) -> None:
        """Register every hook method of this logger on a Callbacks object."""
        for hook in ("on_pretrain_routine_end", "on_train_batch_end", "on_fit_epoch_end", "on_train_end"):
            callbacks.register_action(hook, name=f"loggers.{hook}", callback=getattr(self, hook))

    def on_pretrain_routine_end(self, labels, names) -> None:
        """Plot the training labels to labels.jpg."""
        if self.plots:
            from utils.plots import plot_labels  # matplotlib is imported only when a plot is drawn

            plot_labels(labels, names, self.save_dir)

    def on_train_batch_end(self, model, ni: int, imgs, targets, paths, vals, *extra) -> None:
        """Save the first three training batches as train_batch0..2.jpg, drawn by the task's plot_train_batch."""
        if self.plots and ni < 3 and self.plot_train_batch is not None:
            self.plot_train_batch(imgs, targets, paths, self.save_dir / f"train_batch{ni}.jpg", *extra)

    def plot_batch(self, imgs, targets, paths, file: Path, masks=None) -> None:
        """v7.0's batch images for a Loggers used without a task: boxes, and masks when the batch has them."""
        if masks is None:
            from utils.plots import plot_images  # matplotlib is imported only when a plot is drawn

            plot_images(imgs, targets, paths, file)
        else:  # masks per target, or one overlap map per image
            from utils.segment.plots import plot_images_and_masks

            plot_images_and_masks(imgs, targets, masks, paths, file, overlap=not getattr(self.opt, "no_overlap", False))

    def on_fit_epoch_end(self, vals: list[float], epoch: int, best_fitness: float, fi: float) -> None:
        """One results.csv row per epoch."""
        if self.csv:
            write_results_row(self.save_dir / "results.csv", epoch, [float(v) for v in vals], self.keys)

    def on_train_end(self, last, best, epoch: int, results) -> None:
        """Plot results.png and list the run's outputs."""
        if self.plots and (self.save_dir / "results.csv").exists():
            from utils.plots import plot_results

            plot_results(file=self.save_dir / "results.csv", panels=self.panels)
        LOGGER.info(f"Results saved to {colorstr('bold', self.save_dir)}")


def print_mutation(keys: tuple[str, ...], results, hyp: dict, save_dir: Path) -> None:
    """Append one evolution generation (results, then hyperparameters) to evolve.csv; write the best to
    hyp_evolve.yaml."""
    import numpy as np
    import yaml

    from utils.metrics import fitness

    save_dir = Path(save_dir)
    evolve_csv, evolve_yaml = save_dir / "evolve.csv", save_dir / "hyp_evolve.yaml"
    keys = tuple(x.strip() for x in (*keys, *hyp.keys()))
    vals = (*(float(r) for r in results), *(float(v) for v in hyp.values()))
    n = len(keys)
    header = "" if evolve_csv.exists() else ("%20s," * n % keys).rstrip(",") + "\n"
    with open(evolve_csv, "a") as f:
        f.write(header + ("%20.5g," * n % vals).rstrip(",") + "\n")

    data = np.loadtxt(evolve_csv, ndmin=2, delimiter=",", skiprows=1)
    i = int(np.argmax(fitness(data)))
    nr = len(results)
    with open(evolve_yaml, "w") as f:
        f.write(f"# YOLOv5 Hyperparameter Evolution Results\n# Best generation: {i}\n"
                f"# Last generation: {len(data) - 1}\n"
                "# " + ", ".join(f"{x:>20s}" for x in keys[:nr]) + "\n"
                "# " + ", ".join(f"{x:>20.5g}" for x in data[i, :nr]) + "\n\n")
        yaml.safe_dump({k: float(v) for k, v in zip(keys[nr:], data[i, nr:])}, f, sort_keys=False)
    LOGGER.info(f"{colorstr('evolve: ')}generation {len(data) - 1}: fitness {fitness(data[-1:])[0]:.5f}, "
                f"best generation {i} written to {evolve_yaml}")
