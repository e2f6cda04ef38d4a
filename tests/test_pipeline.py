"""utils/pipeline.py and detect.py's prefetch: same items in the same order, bounded look-ahead, same output files."""

import threading
import time

import cv2
import pytest

import detect
from tests.fixtures.inference import make_checkpoint, shapes_image
from utils.pipeline import OrderedWriter, Prefetcher


def test_prefetcher_keeps_order_and_stays_bounded():
    produced = []

    def source():
        for i in range(20):
            produced.append(i)
            yield i

    got = []
    for x in Prefetcher(source(), depth=2):
        time.sleep(0.002)  # a slow consumer: the producer must wait, not run ahead
        assert len(produced) - len(got) <= 4  # the queue's 2, one being put, the one being consumed
        got.append(x)
    assert got == list(range(20))


def test_prefetcher_raises_source_error_in_order():
    def source():
        yield 1
        yield 2
        raise OSError("bad.jpg: cannot read")

    got = []
    with pytest.raises(OSError, match="bad.jpg"):
        for x in Prefetcher(source()):
            got.append(x)
    assert got == [1, 2]


def test_prefetcher_stops_its_thread_when_the_consumer_leaves():
    p = Prefetcher(iter(range(1000)), depth=1)
    for x in p:
        if x == 3:
            break
    p.close()
    assert not p.thread.is_alive()
    with pytest.raises(ValueError, match="depth"):
        Prefetcher([], depth=0)


def test_ordered_writer_runs_in_submission_order_and_reports_errors():
    out, lock = [], threading.Lock()

    def put(i, delay):
        time.sleep(delay)
        with lock:
            out.append(i)

    w = OrderedWriter()
    for i in range(6):
        w.submit(put, i, 0.01 if i % 2 == 0 else 0.0)
    w.close()
    assert out == list(range(6))

    w = OrderedWriter()
    w.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        w.close()


def test_detect_with_prefetch_writes_exactly_the_same_files(tmp_path):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    src = tmp_path / "images"
    src.mkdir()
    for i in range(5):
        cv2.imwrite(str(src / f"{i}.jpg"), shapes_image(120 + 8 * i, 160, seed=i))
    runs = {}
    for prefetch in (False, True):
        runs[prefetch] = detect.run(weights=weights, source=src, imgsz=(160, 160), device="cpu", save_txt=True,
                                    save_conf=True, project=tmp_path / "runs", name=f"p{int(prefetch)}",
                                    prefetch=prefetch)
    files = {k: sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file()) for k, d in runs.items()}
    assert files[True] == files[False] and len(files[True]) == 10  # 5 images, 5 label files
    for f in files[True]:
        assert (runs[True] / f).read_bytes() == (runs[False] / f).read_bytes(), f
