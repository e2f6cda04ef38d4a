"""A tracker that fails (broken import, no network, a server that does not answer, a full disk) warns once, naming
itself and the reason, and switches itself off: training finishes with the same results.csv and checkpoints."""

from __future__ import annotations

import builtins
import errno
import logging
import socket
from pathlib import Path

import pytest

from tests.fixtures.loggers import same_training, train_tiny

FAILED = "logging failed and is off for the rest of this run"


class Warnings(logging.Handler):
    """The project logger's WARNING messages while it is installed."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("yolov5").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("yolov5").removeHandler(self)


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def baseline(tiny_data, tmp_path_factory) -> tuple[Path, list[str]]:
    """The same tiny run with every tracker off: its run folder and warnings."""
    with Warnings() as w:
        run = train_tiny(tiny_data, tmp_path_factory.mktemp("base"), "base", noplots=True)
    return run, w.lines


def broken_wandb_import(mp, tmp):
    """wandb is installed but importing it fails (a broken install)."""
    real = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("wandb's native core failed to load")
        return real(name, *args, **kwargs)

    mp.setenv("WANDB_MODE", "offline")
    mp.setattr(builtins, "__import__", fake_import)
    return "Weights & Biases", "ImportError"


def wandb_no_network(mp, tmp):
    """Online W&B with a key, but its server's port refuses connections (W&B gives up after its init_timeout)."""
    mp.setenv("WANDB_MODE", "online")
    mp.setenv("WANDB_API_KEY", "0" * 40)
    mp.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{free_port()}")
    mp.setenv("WANDB_INIT_TIMEOUT", "5")
    mp.setenv("WANDB_SILENT", "true")
    return "Weights & Biases", "CommError"


def mlflow_no_network(mp, tmp):
    """An http tracking URI whose port refuses connections."""
    mp.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    return "MLflow", "ConnectionError"


def mlflow_unanswered(mp, tmp):
    """A tracking server that accepts the connection (listen backlog) but never answers; short request timeouts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    tmp.server = server  # kept open (and never accepted from) until the test ends
    mp.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
    mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return "MLflow", "MlflowException"


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def tensorboard_full_disk(mp, tmp):
    """Every event record write fails with ENOSPC."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    mp.setenv("YOLOV5_TENSORBOARD", "1")
    mp.setattr(RecordWriter, "write", enospc)
    return "TensorBoard", "No space left on device"


def mlflow_full_disk(mp, tmp):
    """The file store's metric appends fail with ENOSPC (the run and its parameters were written)."""
    from mlflow.store.tracking import file_store

    mp.setenv("MLFLOW_TRACKING_URI", (tmp.path / "mlruns").as_uri())
    mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mp.setattr(file_store, "append_to", enospc)
    return "MLflow", "No space left on device"


MODES = [broken_wandb_import, wandb_no_network, mlflow_no_network, mlflow_unanswered, tensorboard_full_disk,
         mlflow_full_disk]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # TensorBoard's writer thread
@pytest.mark.parametrize("mode", MODES, ids=[m.__name__ for m in MODES])
def test_failing_tracker_warns_once_and_training_is_unchanged(mode, baseline, tiny_data, tmp_path):
    needs = {"wandb": "wandb" in mode.__name__, "mlflow": "mlflow" in mode.__name__,
             "tensorboard": "tensorboard" in mode.__name__}
    for package, needed in needs.items():
        if needed:
            pytest.importorskip(package)

    class Tmp:
        path = tmp_path
        server = None

    with pytest.MonkeyPatch.context() as mp:
        name, reason = mode(mp, Tmp)
        with Warnings() as w:
            run = train_tiny(tiny_data, tmp_path / "runs", "failing", noplots=True)
    if Tmp.server is not None:
        Tmp.server.close()
    new = [x for x in w.lines if x not in baseline[1]]
    assert len(new) == 1, new
    assert new[0].startswith(f"WARNING {name} {FAILED}") and reason in new[0], new[0]
    same_training(baseline[0], run)
