"""Dynamic batching: requests that wait while a model works are run together in one forward pass, off the event loop.

Each model has one Batcher: a bounded asyncio queue and one worker task. The worker takes the first waiting job,
gathers more for up to max_wait_ms (or until max_batch), groups them by input shape (only equal shapes stack), and
runs each group on a one-thread executor, so the event loop keeps answering (/health, uploads) while the model works
and the model never runs on two threads at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class QueueFull(Exception):
    """The model's queue holds max_queue waiting jobs already."""


class Batcher:
    """Queue jobs (each with a key: only jobs with equal keys are batched) and answer each with run_batch's result."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], max_batch: int = 8, max_wait_ms: float = 2.0,
                 max_queue: int = 64, name: str = "model"):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"{name}: max_batch and max_queue must be >= 1 and max_wait_ms >= 0, got {max_batch}, "
                             f"{max_queue} and {max_wait_ms}")
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait_ms / 1000
        self.max_queue, self.name = max_queue, name
        self.queue: asyncio.Queue | None = None  # made in start(), on the loop that serves
        self.worker: asyncio.Task | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{name}")
        self.batches: Counter = Counter()  # how many batches of each size have run (bounded: sizes <= max_batch)

    def start(self) -> None:
        """Create the queue and the worker on the running event loop."""
        self.queue = asyncio.Queue(self.max_queue)
        self.worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Cancel the worker, fail the jobs still waiting, and end the inference thread."""
        if self.worker:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        while self.queue and not self.queue.empty():
            _, _, fut = self.queue.get_nowait()
            if not fut.done():
                fut.set_exception(asyncio.CancelledError())
        self.executor.shutdown(wait=True)

    async def submit(self, key: Any, job: Any) -> Any:
        """job's result once its batch has run; QueueFull at once when max_queue jobs wait already."""
        fut = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((key, job, fut))
        except asyncio.QueueFull as e:
            raise QueueFull(f"{self.name}: {self.max_queue} requests are already waiting") from e
        return await fut

    async def _gather(self) -> list[tuple]:
        """The next batch: the first job, then whatever arrives within max_wait_ms, max_batch jobs at most."""
        batch = [await self.queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            if not self.queue.empty():  # jobs that queued up while the model was busy join without waiting
                batch.append(self.queue.get_nowait())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        """Run batches until cancelled; a failing batch fails its own jobs only."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            groups: dict[Any, list[tuple]] = {}
            for item in batch:
                groups.setdefault(item[0], []).append(item)
            for items in groups.values():
                items = [x for x in items if not x[2].done()]  # a client that went away needs no answer
                if not items:
                    continue
                self.batches[len(items)] += 1
                try:
                    results = await loop.run_in_executor(self.executor, self.run_batch, [x[1] for x in items])
                except Exception as e:  # answered as a 500 for these requests; the server goes on
                    results = [e] * len(items)
                for (_, _, fut), r in zip(items, results):
                    if fut.done():
                        continue
                    fut.set_exception(r) if isinstance(r, Exception) else fut.set_result(r)
