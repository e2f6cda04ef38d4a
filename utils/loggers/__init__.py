"""Training loggers plugged in through callbacks: results.csv and the run folder's plots (always), and the
experiment trackers that are on (TensorBoard, Weights & Biases, MLflow, ClearML, Comet), each a callback set."""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.loggers.base import ExperimentLogger
from utils.loggers.clearml_logger import ClearMLLogger
from utils.loggers.comet_logger import CometLogger
from utils.loggers.mlflow_logger import MLflowLogger
from utils.loggers.results import RESULTS_KEYS, Loggers, print_mutation, read_results_epochs, write_results_row
from utils.loggers.tb_logger import TensorBoardLogger
from utils.loggers.wandb_logger import WandbLogger

# every tracker the Trainer asks, in this order; a new one is a class added here, not an edit of the Trainer
EXPERIMENT_LOGGERS: list[type[ExperimentLogger]] = [TensorBoardLogger, WandbLogger, MLflowLogger, ClearMLLogger,
                                                    CometLogger]

__all__ = ("EXPERIMENT_LOGGERS", "RESULTS_KEYS", "ExperimentLogger", "Loggers", "experiment_loggers", "print_mutation",
           "read_results_epochs", "write_results_row")


def experiment_loggers(save_dir: Path, opt: argparse.Namespace, hyp: dict | None,
                       keys: tuple[str, ...]) -> list[ExperimentLogger]:
    """The trackers that are on for this run, each started (one that cannot start warns once and is left out)."""
    started = (cls.create(save_dir, opt, hyp, keys) for cls in EXPERIMENT_LOGGERS)
    return [lg for lg in started if lg is not None]
