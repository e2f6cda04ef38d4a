"""The benchmarks' timing helpers, in one place: interleaved latency, ONNX Runtime sessions for timing, the machine's
load, and an epoch timer fed by training callbacks."""

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


def ort_session(file: str | Path, threads: int, providers: tuple[str, ...] = ("CPUExecutionProvider",)):
    """An ONNX Runtime session for timing: `threads` intra-op threads, one inter-op, and workers that never spin.

    Every session owns a thread pool, and idle workers that spin (the default) take the cores from the session
    timed next: interleaved, each model measured ~2.5x slower on 2 cores. So no session spins, alike for all.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(file), options, providers=list(providers))


class EpochTimer:
    """Training seconds, images and validation seconds of every epoch, and the epoch mAP, from train.py's callbacks.

    Training time runs from an epoch's start to its end (validation excluded); images are counted where the loop
    reports its batches (on_train_batch_end), validation from the epoch's end to the fit-epoch callback.
    """

    def __init__(self, callbacks: Callbacks, target: float = 0.9, map_columns: tuple[int, int] | None = None):
        self.target, self.t0, self._t, self._t_end, self.images = target, time.time(), 0.0, 0.0, 0
        self.map_columns = map_columns  # where mAP50 and mAP50-95 sit in the fit-epoch values (train.py: 5, 6)
        self.epochs: list[dict] = []
        for event, action in (("on_train_start", self.on_train_start), ("on_train_epoch_start", self.epoch_start),
                              ("on_train_batch_end", self.batch_end), ("on_train_epoch_end", self.epoch_end),
                              ("on_fit_epoch_end", self.fit_epoch_end)):
            callbacks.register_action(event, "bench.timer", action)

    def on_train_start(self, *args, **kwargs) -> None:
        self.t0 = time.time()

    def epoch_start(self, *args, **kwargs) -> None:
        self._t, self.images = time.perf_counter(), 0

    def batch_end(self, model=None, ni=None, imgs=None, *args, **kwargs) -> None:
        self.images += 0 if imgs is None else imgs.shape[0]

    def epoch_end(self, *args, **kwargs) -> None:
        self._t_end = time.perf_counter()
        self.epochs.append({"train_s": self._t_end - self._t, "images": self.images, "val_s": 0.0})

    def fit_epoch_end(self, vals=None, *args, **kwargs) -> None:
        e = self.epochs[-1]
        e.update(val_s=time.perf_counter() - self._t_end, wall_s=time.time() - self.t0)
        if self.map_columns and vals is not None:
            e.update({"mAP50": float(vals[self.map_columns[0]]), "mAP50-95": float(vals[self.map_columns[1]])})

    @property
    def seconds(self) -> float:
        """Training seconds over all epochs."""
        return sum(e["train_s"] for e in self.epochs)

    def summary(self) -> dict:
        """Images per training second, seconds per epoch, and the first epoch (and minute) mAP50 reached target."""
        n = max(len(self.epochs), 1)
        reached = next((i for i, e in enumerate(self.epochs) if e.get("mAP50", -1) >= self.target), None)
        return {"train_img_s": sum(e["images"] for e in self.epochs) / max(self.seconds, 1e-9),
                "train_s_per_epoch": self.seconds / n, "val_s_per_epoch": sum(e["val_s"] for e in self.epochs) / n,
                "target_epoch": reached, "target_wall_min": None if reached is None else
                self.epochs[reached].get("wall_s", math.nan) / 60,
                "wall_min": self.epochs[-1].get("wall_s", math.nan) / 60 if self.epochs else 0.0}
