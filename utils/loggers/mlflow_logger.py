"""MLflow: on when mlflow is installed and MLFLOW_TRACKING_URI is set (a local file: or sqlite: store works
offline); experiment from --project, run name from --name, and --resume continuing the same MLflow run."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from utils.general import LOGGER, colorstr
from utils.loggers.base import ExperimentLogger, run_names

PROBE_TIMEOUT = 5.0  # seconds to reach an http(s) tracking server before the logger gives up (never hangs training)
MAX_PARAM_LEN = 6000  # MLflow's limit on a parameter value
ID_FILE = "mlflow_run_id.txt"  # in the run folder: the MLflow run that --resume continues


def check_reachable(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise ConnectionError when an http(s) tracking server does not accept a connection within timeout."""
    u = urlparse(uri)
    if u.scheme not in ("http", "https"):
        return
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"tracking server {u.hostname}:{port} did not answer ({e})") from e


class MLflowLogger(ExperimentLogger):
    """One MLflow run: params, metrics per epoch, images under images/ and best.pt under weights/."""

    name = "MLflow"
    package = "mlflow"

    @staticmethod
    def configured() -> bool:
        """MLFLOW_TRACKING_URI is set (a server, or a local file: or sqlite: store)."""
        return bool(os.getenv("MLFLOW_TRACKING_URI"))

    def start(self) -> None:
        """A run in the experiment named after --project (created when missing); --resume continues the run this
        folder recorded, where the tracking store still has it."""
        from mlflow.tracking import MlflowClient

        uri = os.environ["MLFLOW_TRACKING_URI"]
        check_reachable(uri)
        self.client, self.run_id, self.resumed = MlflowClient(tracking_uri=uri), None, False
        names, id_file = run_names(self.opt), self.save_dir / ID_FILE
        previous = id_file.read_text().strip() if self.opt.resume and id_file.is_file() else ""
        if previous and self.stored(previous):
            self.run_id, self.resumed = previous, True
            self.client.update_run(previous, status="RUNNING")
        else:
            exp = self.client.get_experiment_by_name(names["project"])
            exp_id = exp.experiment_id if exp else self.client.create_experiment(names["project"])
            self.run_id = self.client.create_run(exp_id, run_name=names["name"] or self.save_dir.name).info.run_id
        id_file.write_text(self.run_id)
        LOGGER.info(f"{colorstr('MLflow: ')}{'resumed ' if self.resumed else ''}run {self.run_id} in experiment "
                    f"'{names['project']}' at {uri}")

    def stored(self, run_id: str) -> bool:
        """Whether the tracking store holds run_id (a run deleted, or a store changed since, starts a new run)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            LOGGER.info(f"{colorstr('MLflow: ')}run {run_id} of {self.save_dir / ID_FILE} is not in the tracking "
                        f"store; starting a new run")
            return False

    def log_params(self, params: dict[str, Any]) -> None:
        """Every hyperparameter and option as a parameter (values cut to MLflow's limit); a resumed run keeps those
        its first start logged (MLflow refuses to change a logged parameter, and --resume changes opt.resume)."""
        if self.resumed:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], epoch: int) -> None:
        """The epoch's values at step epoch."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, epoch) for k, v in metrics.items()])

    def log_images(self, files: list[Path], step: int) -> None:
        """The image files as artifacts under images/."""
        for f in files:
            self.client.log_artifact(self.run_id, str(f), "images")

    def log_model(self, best: Path, epoch: int) -> None:
        """best.pt as an artifact under weights/."""
        self.client.log_artifact(self.run_id, str(best), "weights")

    def close(self) -> None:
        """Mark the run finished."""
        if getattr(self, "run_id", None):
            self.client.set_terminated(self.run_id)
            self.run_id = None
