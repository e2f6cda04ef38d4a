"""The batcher: jobs waiting together run together (by key, up to max_batch), off the event loop, within bounds."""

import asyncio
import threading

import pytest

from serving.batcher import Batcher, QueueFull


def run(coro):
    """Run a test coroutine with a bound, so a stuck batcher fails instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, 30))


class Recorder:
    """A batch function that doubles its jobs and remembers each batch; it can be held until released."""

    def __init__(self):
        self.batches, self.release, self.entered = [], threading.Event(), threading.Event()
        self.release.set()

    def __call__(self, jobs):
        self.entered.set()
        self.release.wait(10)
        self.batches.append(list(jobs))
        return [j * 2 for j in jobs]


def test_jobs_waiting_together_run_as_one_batch_per_key():
    async def main():
        f = Recorder()
        b = Batcher(f, max_batch=3, max_wait_ms=200)
        b.start()
        keys = ["a", "a", "b", "a", "a", "b"]
        results = await asyncio.gather(*(b.submit(k, i) for i, k in enumerate(keys)))
        await b.stop()
        return f.batches, results, b.batches

    batches, results, sizes = run(main())
    assert results == [0, 2, 4, 6, 8, 10]  # every job gets its own result back
    # the first three jobs form a batch (max_batch=3), split by key into a and b; then the rest
    assert batches == [[0, 1], [2], [3, 4], [5]]
    assert sizes == {2: 2, 1: 2}


def test_the_loop_answers_while_a_batch_runs_and_a_full_queue_refuses():
    async def main():
        f = Recorder()
        f.release.clear()  # the first batch holds the inference thread
        b = Batcher(f, max_batch=1, max_wait_ms=0, max_queue=2)
        b.start()
        first = asyncio.ensure_future(b.submit("k", 1))
        while not f.entered.is_set():
            await asyncio.sleep(0.005)
        ticks = 0
        for _ in range(5):  # the event loop runs freely while the model works on its thread
            await asyncio.sleep(0.001)
            ticks += 1
        waiting = [asyncio.ensure_future(b.submit("k", i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="2 requests are already waiting"):
            await b.submit("k", 4)
        f.release.set()
        results = [await first] + [await w for w in waiting]
        late = await b.submit("k", 5)  # accepted again once the queue drained
        await b.stop()
        return ticks, first.done(), results, late

    ticks, done, results, late = run(main())
    assert ticks == 5 and done and results == [2, 4, 6] and late == 10


def test_a_failing_batch_fails_its_own_jobs_only():
    def picky(jobs):
        if "bad" in jobs:
            raise ValueError("cannot run this batch")
        return [j.upper() for j in jobs]

    async def main():
        b = Batcher(picky, max_batch=4, max_wait_ms=100)
        b.start()
        out = await asyncio.gather(b.submit(1, "bad"), b.submit(2, "ok"), return_exceptions=True)
        after = await b.submit(1, "fine")
        await b.stop()
        return out, after

    (bad, ok), after = run(main())
    assert isinstance(bad, ValueError) and ok == "OK" and after == "FINE"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_batch and max_queue must be >= 1"):
        Batcher(lambda jobs: jobs, max_batch=0)
