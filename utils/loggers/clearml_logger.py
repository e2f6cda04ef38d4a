"""ClearML (optional, not in requirements.txt): on when clearml is installed and configured, as in YOLOv5 v7.0:
credentials (`clearml-init`'s clearml.conf or CLEARML_API_ACCESS_KEY), or offline with CLEARML_OFFLINE_MODE=1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from utils.general import LOGGER, colorstr
from utils.loggers.base import ExperimentLogger, run_names


def clearml_offline() -> bool:
    """Whether CLEARML_OFFLINE_MODE asks for offline sessions (no server: written under ClearML's cache folder)."""
    return os.getenv("CLEARML_OFFLINE_MODE", "").lower() in ("1", "true", "yes", "on")


def clearml_configured() -> bool:
    """Credentials in the environment or a clearml.conf where ClearML looks for one."""
    conf = os.getenv("CLEARML_CONFIG_FILE") or Path.home() / "clearml.conf"
    return bool(os.getenv("CLEARML_API_ACCESS_KEY")) or Path(conf).is_file()


class ClearMLLogger(ExperimentLogger):
    """A ClearML task: hyperparameters and options, scalars per epoch, debug images, best.pt as an artifact."""

    name = "ClearML"
    package = "clearml"
    offline = staticmethod(clearml_offline)
    configured = staticmethod(clearml_configured)

    def start(self) -> None:
        """Task.init without framework hooks (this logger reports what the run folder gets, nothing more)."""
        from clearml import Task

        if clearml_offline():
            Task.set_offline(True)
        # ClearML's development.report_use_subprocess: reporting from a process forked off the training process,
        # whose other trackers' and loaders' threads can leave locks held in the child; a hang then stops training
        # at close. Threads in this process instead.
        if hasattr(Task, "_report_subprocess_enabled"):
            Task._report_subprocess_enabled = False
        names = run_names(self.opt)
        self.task = None
        self.task = Task.init(project_name=names["project"], task_name=names["name"] or self.save_dir.name,
                              tags=["YOLOv5"], reuse_last_task_id=False, auto_connect_frameworks=False,
                              auto_connect_arg_parser=False, auto_resource_monitoring=False)
        self.log = self.task.get_logger()
        LOGGER.info(f"{colorstr('ClearML: ')}task {self.task.id}{' (offline)' if clearml_offline() else ''}")

    def log_params(self, params: dict[str, Any]) -> None:
        """'Hyperparameters' and 'Args' sections, as v7.0 names them."""
        for group, section in (("hyp", "Hyperparameters"), ("opt", "Args")):
            d = {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(f"{group}/")}
            self.task.connect(d, name=section)

    def log_metrics(self, metrics: dict[str, float], epoch: int) -> None:
        """Each 'title/series' key as one scalar series."""
        for k, v in metrics.items():
            title, _, series = k.partition("/")
            self.log.report_scalar(title, series or title, v, iteration=epoch)

    def log_images(self, files: list[Path], step: int) -> None:
        """Debug samples, one series per file."""
        for f in files:
            self.log.report_image(title="Images", series=f.stem, iteration=step, local_path=str(f))

    def log_model(self, best: Path, epoch: int) -> None:
        """best.pt as the task's artifact 'best.pt'."""
        self.task.upload_artifact(name=best.name, artifact_object=str(best), wait_on_upload=True)

    def close(self) -> None:
        """Close the task (offline: packs the session)."""
        if getattr(self, "task", None) is not None:
            self.task.close()
            self.task = None
