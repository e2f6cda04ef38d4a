"""Shared test helpers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

FIXTURES = Path(__file__).parent / "fixtures"


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so fusing is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Run torch on one thread for the whole suite.

    The tests use tiny models and images that gain nothing from intra-op threads, and on a shared 2-core machine
    two OpenMP threads spin-waiting against other processes made a 160 px forward pass take 1.5 s instead of 15 ms.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def no_experiment_trackers(tmp_path_factory):
    """Every experiment tracker off for the suite, whatever the developer's environment or login holds.

    Training tests would otherwise write TensorBoard events (and trace the model) on every run, and a W&B login,
    MLFLOW_TRACKING_URI or ClearML/Comet configuration on the machine would send test runs to a server. The tracker
    tests (tests/test_loggers_*.py) turn on the one they check, in offline modes.
    """
    home = tmp_path_factory.mktemp("tracker_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLOV5_TENSORBOARD", "0")
        mp.setenv("WANDB_MODE", "disabled")
        for k in ("MLFLOW_TRACKING_URI", "CLEARML_OFFLINE_MODE", "CLEARML_API_ACCESS_KEY", "COMET_MODE",
                  "COMET_API_KEY", "WANDB_API_KEY"):
            mp.delenv(k, raising=False)
        for k in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR", "CLEARML_CACHE_DIR"):
            mp.setenv(k, str(home / k.lower()))  # trackers' own folders, out of the developer's home
        mp.setenv("CLEARML_CONFIG_FILE", str(home / "clearml.conf"))  # absent: ClearML is not configured
        mp.setenv("COMET_CONFIG", str(home / ".comet.config"))  # absent: Comet has no API key
        yield


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    """12 train and 6 val shapes images of 64x64, and a data YAML pointing at them (train and ablation tests)."""
    from utils.shapes import NAMES, generate_shapes_dataset

    root = tmp_path_factory.mktemp("data") / "tiny"
    generate_shapes_dataset(root, train=12, val=6, imgsz=64, seed=1)
    f = root.parent / "tiny.yaml"
    f.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                 "names": dict(enumerate(NAMES))}))
    return str(f)


@pytest.fixture
def logs() -> list[str]:
    """Messages the project logger emits at INFO and above during a test (whatever its handlers and propagation)."""
    logger = logging.getLogger("yolov5")
    lines = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)
