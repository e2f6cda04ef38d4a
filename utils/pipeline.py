"""Keep inference busy: a bounded prefetch thread for the input side and an in-order writer thread for outputs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

_DONE = object()


class Prefetcher:
    """Iterate `source` in a background thread, at most `depth` items ahead of the consumer, in the same order.

    Reading and letterboxing (OpenCV releases the GIL) then overlap with inference of the previous image. An error
    raised by the source is raised again in the consumer, at the position where it happened.
    """

    def __init__(self, source: Iterable, depth: int = 2):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, args=(iter(source),), daemon=True, name="prefetch")
        self.thread.start()

    def _fill(self, it: Iterator) -> None:
        try:
            for item in it:
                while not self.stop.is_set():
                    try:
                        self.queue.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer, which raises it
            self.queue.put((False, e))
            return
        self.queue.put((True, _DONE))

    def __iter__(self) -> Iterator:
        try:
            while True:
                ok, item = self.queue.get()
                if not ok:
                    raise item
                if item is _DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread (also when the consumer leaves early) and wait for it."""
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()  # unblock a put
            except queue.Empty:
                pass
            self.thread.join(timeout=0.05)


class OrderedWriter:
    """Run output jobs (drawing, image and label files) on one background thread, in the order they were submitted.

    At most `max_pending` jobs wait at a time: a submit beyond that waits for the oldest, so a slow disk holds back
    the producer instead of piling up images in memory.
    """

    def __init__(self, max_pending: int = 8):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")
        self.futures: list[Future] = []
        self.max_pending = max_pending

    def submit(self, fn, *args, **kwargs) -> None:
        """Queue fn(*args, **kwargs); errors surface at the next submit or at close()."""
        for f in [f for f in self.futures if f.done()]:
            f.result()  # raises a finished write's error here, in the caller's thread
            self.futures.remove(f)
        while len(self.futures) >= self.max_pending:
            self.futures.pop(0).result()  # one thread runs them in order: the oldest finishes first
        self.futures.append(self.pool.submit(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for every queued write; raise the first error."""
        self.pool.shutdown(wait=True)
        for f in self.futures:
            f.result()
        self.futures.clear()
