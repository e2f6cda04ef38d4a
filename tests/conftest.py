"""Shared test helpers."""

from __future__ import annotations

import ctypes
import logging
import sys
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


class _StackT(ctypes.Structure):
    """Linux stack_t, as sigaltstack(2) reads and writes it."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack(new: _StackT | None = None) -> _StackT:
    """Set the calling thread's alternate signal stack (when new is given); returns the one in place before."""
    old = _StackT()
    ctypes.CDLL(None, use_errno=True).sigaltstack(ctypes.byref(new) if new else None, ctypes.byref(old))
    return old


@pytest.fixture(autouse=True, scope="session")
def first_signal_stack() -> _StackT | None:
    """The main thread's alternate signal stack when the session starts (faulthandler's), None off Linux."""
    return _sigaltstack() if sys.platform == "linux" else None


@pytest.fixture(autouse=True)
def keep_signal_stack(first_signal_stack):
    """Put the session's alternate signal stack back, before and after each test, if a library set a smaller one.

    OpenVINO's CPU plugin, compiling an INT8 model on a CPU with AMX, installs its own sigaltstack (20144 bytes here)
    in place of the larger one faulthandler allocated. Python runs its signal handlers on that stack, and once the
    main thread has used AMX its signal frames no longer fit: the next Python-handled signal (SIGCHLD, whose handler
    torch's DataLoader leaves installed, when a pool process exits) is turned into a SIGSEGV by the kernel and the
    whole pytest process dies without a report. One process running every test is what makes the two meet.
    Checked before the test too, because module-scoped fixtures (test_int8's export) run before this one.
    """

    def restore():
        first, now = first_signal_stack, _sigaltstack()
        if first.ss_sp and now.ss_sp != first.ss_sp and now.ss_size < first.ss_size:
            _sigaltstack(first)

    if first_signal_stack is None:
        yield
        return
    restore()
    yield
    restore()


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
