"""The helpers YOLOv5 v7.0 scripts import from utils.general: print_args and Profile."""

import argparse

import utils.general as general
from utils.general import Profile, print_args


def _run(weights="a.pt", imgsz=64, half=False):
    print_args()


def test_print_args_reads_the_callers_arguments(logs):
    _run(imgsz=96)
    assert len(logs) == 1
    assert logs[0].endswith("tests/test_general_api: \x1b[0mweights=a.pt, imgsz=96, half=False")


def test_print_args_takes_a_namespace_or_dict(logs):
    print_args(argparse.Namespace(data="coco.yaml", epochs=3), show_file=False)
    print_args({"x": [1, 2]}, show_file=False, show_func=True)
    assert logs[0].endswith("\x1b[0mdata=coco.yaml, epochs=3")
    assert "test_print_args_takes_a_namespace_or_dict: " in logs[1] and logs[1].endswith("x=[1, 2]")


def test_profile_as_context_and_decorator(monkeypatch):
    clock = iter([10.0, 10.5, 20.0, 20.25, 30.0, 31.0])
    monkeypatch.setattr(general.time, "perf_counter", lambda: next(clock))
    p = Profile(device="cpu")
    assert not p.cuda
    with p as same:
        pass
    assert same is p and (p.dt, p.t) == (0.5, 0.5)
    with p:
        pass
    assert (p.dt, p.t) == (0.25, 0.75)

    q = Profile(t=2.0, device="cpu")

    @q
    def work(a):
        return a * 2

    assert work(3) == 6 and (q.dt, q.t) == (1.0, 3.0)
