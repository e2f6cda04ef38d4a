"""benchmarks/timing.py: the one set of timing helpers the benchmarks share."""

import math
import time

from benchmarks import compare
from benchmarks.timing import EpochTimer, interleaved_samples, loadavg, time_interleaved
from utils.callbacks import Callbacks


def test_interleaved_samples_call_in_turn_and_time_only_after_warmup():
    order = []
    calls = {k: (lambda k=k: order.append(k)) for k in ("a", "b")}
    samples = interleaved_samples(calls, runs=3, warmup=2)
    assert order == ["a", "b"] * 5  # round by round, each model in turn
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3}


def test_median_sees_the_slow_call():
    ms = time_interleaved({"slow": lambda: time.sleep(0.02), "fast": lambda: None}, runs=3, warmup=0)
    assert ms["slow"] >= 15 and ms["fast"] < 5
    assert compare.time_interleaved is time_interleaved  # compare.py and classifiers.py time with this one


def test_epoch_timer_counts_training_not_validation():
    callbacks = Callbacks()
    timer = EpochTimer(callbacks)
    for epoch in range(2):
        callbacks.run("on_train_epoch_start")
        time.sleep(0.02)  # training
        callbacks.run("on_train_epoch_end", epoch=epoch)
        time.sleep(0.05)  # validation: not counted
    assert timer.epochs == 2 and 0.035 <= timer.seconds < 0.1


def test_loadavg_is_a_number():
    assert isinstance(loadavg(), float) and (math.isnan(loadavg()) or loadavg() >= 0)
