"""OpenVINO's CPU plugin and the alternate signal stack: processes that compile or quantize models stay alive."""

import ctypes
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import export
from tests.fixtures.inference import make_checkpoint, tiny_dataset
from utils.sigstack import StackT, install_own_stack, keep_signal_stack, own_stack, sigaltstack, stack_size

pytest.importorskip("openvino")
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="sigaltstack is read through Linux's libc")
ROOT = Path(__file__).resolve().parents[1]

# Python-handled SIGCHLD (torch's DataLoader leaves such a handler) raised many times by children that start and end:
# delivered on an unmapped alternate stack, the first one kills the process with SIGSEGV
SIGNALS = """
def raise_sigchld(n=30):
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        os.kill(os.getpid(), signal.SIGCHLD)
"""
HEADER = "import faulthandler, gc, os, signal, subprocess, sys, threading\nfaulthandler.enable()\n" \
         "signal.signal(signal.SIGCHLD, lambda *a: None)\n" + SIGNALS


def _run(body: str, *args: str) -> subprocess.CompletedProcess:
    code = HEADER + textwrap.dedent(body) + "\nprint('survived')\n"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _survived(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, f"exit {done.returncode} (-11 or 139: SIGSEGV)\n{done.stderr[-3000:]}"
    assert done.stdout.strip().endswith("survived")


@pytest.fixture(scope="module")
def openvino_model(tmp_path_factory) -> str:
    weights = make_checkpoint(tmp_path_factory.mktemp("sigstack") / "tiny.pt")
    return export.run(weights=weights, imgsz=(64, 64), include=["openvino"])[0]


def test_own_stack_replaces_a_foreign_one_and_stays():
    foreign = bytearray(stack_size())
    buf = (ctypes.c_char * len(foreign)).from_buffer(foreign)
    before = sigaltstack()
    try:
        with keep_signal_stack():
            sigaltstack(StackT(ctypes.addressof(buf), 0, len(foreign)))  # what a plugin's constructor does
        mine = own_stack()
        assert mine is not None and mine.ss_size >= 64 * 1024
        assert sigaltstack().ss_sp == mine.ss_sp  # the foreign stack is no longer current
        install_own_stack()  # idempotent
        assert sigaltstack().ss_sp == mine.ss_sp
    finally:
        sigaltstack(before)


def test_backends_freed_out_of_order_keep_the_process_alive(openvino_model):
    """Two OpenVINO models whose plugins die oldest first, then one freed on another thread: signals still land."""
    _survived(_run("""
        from models.backends import DetectMultiBackend
        w = sys.argv[1]
        for _ in range(3):
            a, b = DetectMultiBackend(w), DetectMultiBackend(w)
            del a; gc.collect()
            del b; gc.collect()
            raise_sigchld(10)
        box = [DetectMultiBackend(w)]
        t = threading.Thread(target=box.clear)  # the plugin is destroyed on this thread
        t.start(); t.join(); gc.collect()
        raise_sigchld()
        """, openvino_model))


def test_int8_export_then_val_with_workers_in_one_process(tmp_path):
    """The issue's sequence in one interpreter with faulthandler on: export.py --int8 then val.py --workers 2, from the
    command lines (their __main__) and from run() calls, with children started and ended in between."""
    weights = make_checkpoint(tmp_path / "tiny.pt")
    data = tiny_dataset(tmp_path / "data")
    _survived(_run("""
        import runpy
        import val
        weights, data = sys.argv[1], sys.argv[2]
        f = weights.replace(".pt", "_int8_openvino_model")
        sys.argv = ["export.py", "--weights", weights, "--imgsz", "128", "--include", "openvino", "--int8",
                    "--data", data, "--int8-images", "8"]
        runpy.run_path("export.py", run_name="__main__")
        raise_sigchld(10)
        sys.argv = ["val.py", "--weights", f, "--data", data, "--imgsz", "128", "--workers", "2"]
        runpy.run_path("val.py", run_name="__main__")
        for _ in range(2):
            raise_sigchld(10)
            val.run(data=data, weights=f, imgsz=128, batch_size=4, workers=2)
        raise_sigchld(10)
        """, str(weights), data))
