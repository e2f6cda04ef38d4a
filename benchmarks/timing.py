"""The benchmarks' timing helpers, in one place: interleaved latency, ONNX Runtime sessions for timing, the machine's
load, and an epoch timer fed by the training callbacks."""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from utils.callbacks import Callbacks


def passive_wait() -> bool:
    """OMP_WAIT_POLICY=PASSIVE: idle threads sleep rather than spin (fairer on a machine shared with other jobs)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def loadavg() -> float:
    """The 1-minute load average (nan where the platform has none), printed beside every figure."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def interleaved_samples(calls: dict[str, Callable], runs: int, warmup: int, cuda: bool = False,
                        burst: int = 1) -> dict[str, list[float]]:
    """Milliseconds of every timed call; every round calls each one in turn, burst times back to back.

    Interleaving makes drifts in machine load hit every call alike. Only the last call of a burst is timed: with
    burst > 1 it finds the caches holding its own model, as a deployed model run frame after frame does, rather
    than the model timed just before it.
    """
    times = {k: [] for k in calls}
    for r in range(warmup + runs):
        for k, call in calls.items():
            for _ in range(burst):
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                call()
                if cuda:
                    torch.cuda.synchronize()
            if r >= warmup:
                times[k].append((time.perf_counter() - t) * 1000)
    return times


def time_interleaved(calls: dict[str, Callable], runs: int, warmup: int, cuda: bool = False,
                     burst: int = 1) -> dict[str, float]:
    """Median milliseconds of each call, timed by interleaved_samples."""
    return {k: statistics.median(v) for k, v in interleaved_samples(calls, runs, warmup, cuda, burst).items()}


def ort_session(file: str | Path, threads: int, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                profile_prefix: str | None = None):
    """An ONNX Runtime session for timing: `threads` intra-op threads, one inter-op, and workers that never spin, so
    that no session takes the cores from the one timed next (models/formats/onnx.ort_session)."""
    from models.formats.onnx import ort_session as session

    return session(file, threads, providers, spinning=False, profile_prefix=profile_prefix)


class EpochTimer:
    """Seconds spent in training loops (epoch start to epoch end, validation excluded), from the training callbacks."""

    def __init__(self, callbacks: Callbacks):
        self.seconds, self.epochs, self._t = 0.0, 0, 0.0
        callbacks.register_action("on_train_epoch_start", "bench.start", self.start)
        callbacks.register_action("on_train_epoch_end", "bench.end", self.end)

    def start(self, *args, **kwargs) -> None:
        """An epoch's training begins."""
        self._t = time.perf_counter()

    def end(self, *args, **kwargs) -> None:
        """An epoch's training ends (its validation follows)."""
        self.seconds += time.perf_counter() - self._t
        self.epochs += 1
