"""utils/pipeline.py and the predictors' prefetch: same items in the same order, bounded look-ahead and writer queue,
the same output files from detect.py, segment/predict.py and classify/predict.py with prefetch on and off."""

import threading
import time
from copy import deepcopy

import cv2
import pytest
import torch

import detect
from classify import predict as cls_predict
from engine import predictor
from models.yolo import ClassificationModel, DetectionModel
from segment import predict as seg_predict
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image
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


def test_ordered_writer_holds_at_most_max_pending_jobs():
    started, release = [], threading.Event()

    def job(i):
        started.append(i)
        release.wait(5)

    w = OrderedWriter(max_pending=2)
    w.submit(job, 0)
    w.submit(job, 1)
    t = threading.Thread(target=w.submit, args=(job, 2))
    t.start()
    time.sleep(0.1)
    stuck = t.is_alive()  # the third submit waits for the oldest job to finish
    release.set()
    t.join(5)
    w.close()
    assert stuck and started == [0, 1, 2]
    with pytest.raises(ValueError, match="max_pending"):
        OrderedWriter(max_pending=0)


def _classifier(path):
    torch.manual_seed(0)
    model = ClassificationModel(model=DetectionModel("yolov5n.yaml", nc=3), nc=3)
    model.names = dict(NAMES)
    torch.save({"epoch": -1, "model": deepcopy(model).half(), "ema": None, "optimizer": None}, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    src = tmp_path_factory.mktemp("images")
    for i in range(5):
        cv2.imwrite(str(src / f"{i}.jpg"), shapes_image(120 + 8 * i, 160, seed=i))
    return src


TASKS = {  # run(), checkpoint builder, options: labels with confidences, crops where the task has boxes
    "detect": (detect.run, make_checkpoint, dict(save_txt=True, save_conf=True, save_crop=True)),
    "segment": (seg_predict.run, lambda p: make_checkpoint(p, cfg="yolov5n-seg.yaml"),
                dict(save_txt=True, save_conf=True, save_crop=True, max_det=20)),
    "classify": (cls_predict.run, _classifier, dict(save_txt=True)),
}


@pytest.mark.parametrize("task", TASKS)
def test_prefetch_writes_exactly_the_same_files(task, images, tmp_path, caplog):
    run, make, opts = TASKS[task]
    weights = make(tmp_path / f"{task}.pt")
    runs, logs = {}, {}
    for prefetch in (False, True):
        caplog.clear()
        with caplog.at_level("INFO", logger="yolov5"):
            runs[prefetch] = run(weights=weights, source=images, imgsz=(160, 160), device="cpu",
                                 project=tmp_path / "runs", name=f"p{int(prefetch)}", prefetch=prefetch, **opts)
        lines = [r.getMessage() for r in caplog.records]
        logs[prefetch] = [x.rsplit(" ", 1)[0] for x in lines if x.startswith("image")]  # without the time
    files = {k: sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file()) for k, d in runs.items()}
    assert files[True] == files[False]
    assert sum(f.suffix == ".jpg" and len(f.parts) == 1 for f in files[True]) == 5
    assert sum(f.parts[0] == "labels" for f in files[True]) == 5
    if task != "classify":  # boxes were found, and cut out
        assert any(f.parts[0] == "crops" for f in files[True])
    for f in files[True]:
        assert (runs[True] / f).read_bytes() == (runs[False] / f).read_bytes(), f
    assert logs[True] == logs[False] and len(logs[True]) == 5  # the same lines (up to the time), in the same order
    if task == "segment":  # polygon lines: class, (x, y) pairs, confidence
        v = (runs[True] / "labels" / "0.txt").read_text().splitlines()[0].split()
        assert len(v) >= 8 and len(v) % 2 == 0


def test_view_img_draws_on_the_main_thread(images, tmp_path, monkeypatch):
    """With a window, each image is drawn here and shown; the files are those of a run without a window."""
    shown = []

    def imshow(title, im):
        assert threading.current_thread() is threading.main_thread()
        shown.append((title, im.copy()))

    weights = make_checkpoint(tmp_path / "tiny.pt")
    plain = detect.run(weights=weights, source=images, imgsz=(160, 160), device="cpu", save_txt=True,
                       project=tmp_path, name="plain", prefetch=False)
    monkeypatch.setattr(predictor, "check_imshow", lambda warn=False: True)
    monkeypatch.setattr(cv2, "imshow", imshow)
    monkeypatch.setattr(cv2, "waitKey", lambda ms: -1)
    viewed = detect.run(weights=weights, source=images, imgsz=(160, 160), device="cpu", save_txt=True,
                        view_img=True, project=tmp_path, name="viewed", prefetch=True)
    assert [t for t, _ in shown] == [str(images / f"{i}.jpg") for i in range(5)]
    for title, im in shown:
        name = title.rsplit("/", 1)[-1]
        assert cv2.imencode(".jpg", im)[1].tobytes() == (plain / name).read_bytes()  # shown = saved, drawn
        assert (viewed / name).read_bytes() == (plain / name).read_bytes()
        assert (viewed / "labels" / name.replace(".jpg", ".txt")).read_bytes() == (
            plain / "labels" / name.replace(".jpg", ".txt")).read_bytes()
