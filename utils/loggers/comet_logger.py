"""Comet (optional, not in requirements.txt): on when comet_ml is installed and configured, as in YOLOv5 v7.0:
an API key (COMET_API_KEY or ~/.comet.config), or COMET_MODE=offline (an archive under <run folder>/comet)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from utils.general import LOGGER, colorstr
from utils.loggers.base import ExperimentLogger, run_names


def comet_offline() -> bool:
    """Whether COMET_MODE asks for an offline experiment."""
    return os.getenv("COMET_MODE", "online").lower() == "offline"


def comet_configured() -> bool:
    """An API key in the environment or in Comet's config file."""
    conf = os.getenv("COMET_CONFIG") or Path.home() / ".comet.config"
    return bool(os.getenv("COMET_API_KEY")) or (Path(conf).is_file() and "api_key" in Path(conf).read_text())


class CometLogger(ExperimentLogger):
    """A Comet experiment: parameters, metrics per epoch, images, best.pt as the model 'best'."""

    name = "Comet"
    package = "comet_ml"
    offline = staticmethod(comet_offline)
    configured = staticmethod(comet_configured)

    def start(self) -> None:
        """An Experiment (offline: OfflineExperiment writing to <run folder>/comet) named after --name."""
        import comet_ml

        names, self.exp = run_names(self.opt), None
        kw = dict(project_name=names["project"].lower(), auto_metric_logging=False, auto_param_logging=False,
                  log_code=False, log_graph=False, auto_output_logging=False, log_env_details=False,
                  log_git_metadata=False, log_git_patch=False, display_summary_level=0)
        if comet_offline():
            self.exp = comet_ml.OfflineExperiment(offline_directory=str(self.save_dir / "comet"), **kw)
        else:
            self.exp = comet_ml.Experiment(**kw)
        self.exp.set_name(names["name"] or self.save_dir.name)
        LOGGER.info(f"{colorstr('Comet: ')}experiment {self.exp.get_key()}{' (offline)' if comet_offline() else ''}")

    def log_params(self, params: dict[str, Any]) -> None:
        """Every hyperparameter and option."""
        self.exp.log_parameters(params)

    def log_metrics(self, metrics: dict[str, float], epoch: int) -> None:
        """The epoch's values at step and epoch epoch."""
        self.exp.log_metrics(metrics, step=epoch, epoch=epoch)

    def log_images(self, files: list[Path], step: int) -> None:
        """Each image under its file name."""
        for f in files:
            self.exp.log_image(str(f), name=f.name, step=step)

    def log_model(self, best: Path, epoch: int) -> None:
        """best.pt as the model 'best'."""
        self.exp.log_model("best", str(best), file_name=best.name)

    def close(self) -> None:
        """End the experiment (offline: writes the archive `comet upload` sends)."""
        if getattr(self, "exp", None) is not None:
            self.exp.end()
            self.exp = None
