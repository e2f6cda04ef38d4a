"""The base of every experiment logger: when it is on, hook wrapping that turns a failing logger off, and what it
collects from a run (metrics under results.csv's keys, hyperparameters and options, run-folder images, best.pt)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from utils.general import LOGGER

# run-folder images, by when they exist: after the first epoch (labels, first batches), after the final validation
EPOCH_IMAGES = ("labels*.jpg", "train_batch*.jpg")
END_IMAGES = ("results.png", "confusion_matrix.png", "*_curve.png", "val_batch*.jpg")


def run_names(opt) -> dict:
    """v7.0's W&B project, run name and entity from --project, --name and --entity."""
    project = Path(str(opt.project))
    return dict(project="YOLOv5" if project.name == "train" and project.parent.name == "runs" else project.stem,
                name=None if opt.name == "exp" else opt.name, entity=getattr(opt, "entity", None))


class ExperimentLogger:
    """One experiment tracker as a set of callbacks; subclasses implement start, log_* and close.

    on() decides from the environment whether the tracker runs at all (installed and configured); after that, any
    exception in any hook logs ONE warning naming the tracker and the reason and switches it off for the rest of the
    run, so a tracker never stops training or changes what the run folder gets.
    """

    name = ""  # shown in messages: 'Weights & Biases'
    package = ""  # the module its on() needs importable (found without importing it)
    hooks = ("on_train_start", "on_train_epoch_end", "on_fit_epoch_end", "on_train_end")

    def __init__(self, save_dir: Path, opt: argparse.Namespace, hyp: dict | None, keys: tuple[str, ...]):
        self.save_dir, self.opt, self.hyp, self.keys = Path(save_dir), opt, hyp, tuple(keys)
        self.active = True
        self.logged: set[str] = set()  # run-folder images already sent
        self.epoch = -1

    # when it is on -----------------------------------------------------------------------------------------------

    @classmethod
    def installed(cls) -> bool:
        """Whether the tracker's package can be imported (checked without importing it)."""
        try:
            return importlib.util.find_spec(cls.package) is not None
        except (ImportError, ValueError):
            return False

    @staticmethod
    def offline() -> bool:
        """Whether the environment asks for the tracker's offline mode (which needs no configuration)."""
        return False

    @staticmethod
    def configured() -> bool:
        """Whether the tracker has what it needs to reach its server (credentials, a tracking URI)."""
        return True

    @classmethod
    def on(cls, opt: argparse.Namespace) -> bool:
        """Whether this tracker runs for opt: installed, and offline or configured."""
        return cls.installed() and (cls.offline() or cls.configured())

    @classmethod
    def create(cls, save_dir: Path, opt: argparse.Namespace, hyp: dict | None, keys: tuple[str, ...]):
        """A started logger, or None when it is off or could not start (one warning then)."""
        if not cls.on(opt):
            return None
        logger = cls(save_dir, opt, hyp, keys)
        logger.guard(logger.start_run)()
        return logger if logger.active else None

    # failure handling --------------------------------------------------------------------------------------------

    def fail(self, e: BaseException) -> None:
        """Warn once, naming the tracker and the reason, and switch the tracker off (closing it if it can)."""
        self.active = False
        reason = " ".join(str(e).split())  # one line, however long the tracker's message
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        LOGGER.warning(f"WARNING {self.name} logging failed and is off for the rest of this run: "
                       f"{type(e).__name__}: {reason}")
        try:
            self.close()
        except Exception:  # the tracker is already broken: its close may fail the same way, and that adds nothing
            pass

    def guard(self, fn):
        """fn, run only while the tracker is on; an exception in it switches the tracker off instead of raising."""
        def guarded(*args, **kwargs):
            if self.active:
                try:
                    fn(*args, **kwargs)
                except Exception as e:
                    self.fail(e)
        guarded.__name__ = getattr(fn, "__name__", "hook")
        return guarded

    def register(self, callbacks) -> None:
        """Register every hook of this tracker, each guarded, on a Callbacks object."""
        for hook in self.hooks:
            callbacks.register_action(hook, name=f"{self.name}.{hook}", callback=self.guard(getattr(self, hook)))

    # hooks ---------------------------------------------------------------------------------------------------------

    def start_run(self) -> None:
        """Open the tracker's run, then log the hyperparameters and options once."""
        self.start()
        self.log_params(self.params())

    def on_train_start(self) -> None:
        """Nothing by default (the data set is ready here; W&B uploads it)."""

    def on_train_epoch_end(self, epoch: int) -> None:
        """Remember the epoch (validation images belong to it); send the label plots and first batches once."""
        self.epoch = epoch
        self.send_images(EPOCH_IMAGES, epoch)

    def on_fit_epoch_end(self, vals: list[float], epoch: int, best_fitness: float, fi: float) -> None:
        """The epoch's results.csv row, under results.csv's keys."""
        self.log_metrics(dict(zip(self.keys, (float(v) for v in vals))), epoch)

    def on_train_end(self, last: Path, best: Path, epoch: int, results) -> None:
        """The closing plots and validation images, best.pt as an artifact, then close the run."""
        self.send_images(END_IMAGES, epoch)
        if Path(best).is_file():
            self.log_model(Path(best), epoch)
        self.close()
        self.active = False

    # helpers -------------------------------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The hyperparameters and options as one flat dict of plain values ('hyp/lr0', 'opt/epochs')."""
        out = {f"hyp/{k}": plain(v) for k, v in (self.hyp or {}).items()}
        out.update({f"opt/{k}": plain(v) for k, v in vars(self.opt).items() if k != "hyp"})
        return out

    def send_images(self, patterns: tuple[str, ...], step: int) -> None:
        """Log the run-folder images matching patterns that were not logged before."""
        files = [f for p in patterns for f in sorted(self.save_dir.glob(p)) if f.name not in self.logged]
        if files:
            self.log_images(files, step)
            self.logged.update(f.name for f in files)

    # what a tracker implements -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the run."""
        raise NotImplementedError

    def log_params(self, params: dict[str, Any]) -> None:
        """Record the hyperparameters and options."""
        raise NotImplementedError

    def log_metrics(self, metrics: dict[str, float], epoch: int) -> None:
        """Record one epoch's metrics."""
        raise NotImplementedError

    def log_images(self, files: list[Path], step: int) -> None:
        """Record image files."""
        raise NotImplementedError

    def log_model(self, best: Path, epoch: int) -> None:
        """Record best.pt as an artifact; nothing where the tracker has no artifacts."""

    def close(self) -> None:
        """Finish the run and flush what is pending."""


def plain(v: Any) -> Any:
    """A value trackers accept as a parameter: numbers, strings, bools and None as they are, the rest as text."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
