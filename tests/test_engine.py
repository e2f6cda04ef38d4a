"""The engine's task tables and hooks: what each task declares matches its script, and the loggers follow the task."""

from __future__ import annotations

import argparse
import inspect

import pytest
import torch

import val
from classify import val as cls_val
from engine.options import parse, train_parser
from engine.tasks.classify import CLASSIFY
from engine.tasks.classify_val import CLS_VAL_DEFAULTS
from engine.tasks.detect import DETECT
from engine.tasks.detect_val import VAL_DEFAULTS, is_coco_val, val_args
from engine.tasks.segment import SEGMENT
from utils.loggers import Loggers
from utils.plots import CLASSIFY_PANELS, plot_results


def defaults(fn) -> dict:
    """A function's keyword defaults."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_validator_defaults_are_the_scripts_run_defaults():
    """The Trainer and segment/val.py fill in what val.run would; classification's those of classify/val.run."""
    want = defaults(val.run)
    want.pop("callbacks")  # val.run's default is a Callbacks() without actions; the Validator makes one for None
    assert {k: v for k, v in VAL_DEFAULTS.items() if k != "callbacks"} == want
    assert VAL_DEFAULTS["callbacks"] is None
    assert CLS_VAL_DEFAULTS == defaults(cls_val.run)


def test_val_args_refuses_unknown_arguments():
    """A misspelt argument fails as a call to val.run would; known ones override the defaults."""
    with pytest.raises(TypeError, match="conf_thresh"):
        val_args("data.yaml", conf_thresh=0.1)
    args = val_args("data.yaml", conf_thres=0.1)
    assert args["data"] == "data.yaml" and args["conf_thres"] == 0.1 and args["iou_thres"] == 0.6


def test_tasks_declare_their_results_and_options():
    """Each task's result keys, initial results and options are those of its v7.0 script."""
    assert len(DETECT.initial_results()) == 4 + 3  # P, R, mAP50, mAP50-95 and three val losses
    assert len(SEGMENT.initial_results()) == 8 + 4
    assert CLASSIFY.initial_results() == (0.0, 0.0, 0.0)
    assert len(SEGMENT.result_keys) == 2 * 4 + 8 + 3 and SEGMENT.loss_names[1] == "seg_loss"
    seg = SEGMENT.parse_opt(argv=[])
    assert seg.mask_ratio == 4 and seg.project.endswith("runs/train-seg") and seg.data == "shapes-seg.yaml"
    assert vars(DETECT.parse_opt(argv=[])) == vars(parse(train_parser(), argv=[]))
    cls = CLASSIFY.parse_opt(argv=[])
    assert (cls.optimizer, cls.lr0, cls.label_smoothing) == ("Adam", 0.001, 0.1)  # v7.0's classification defaults
    assert CLASSIFY.fitness((0.7, 0.9, 1.2)) == 0.7
    assert DETECT.fitness((0.5, 0.5, 0.5, 0.25, 0, 0, 0)) == pytest.approx(0.1 * 0.5 + 0.9 * 0.25)


def test_is_coco_val():
    """COCO's val2017 list is recognised whatever the separator; other lists and folders are not."""
    assert is_coco_val("../datasets/coco/val2017.txt") and is_coco_val("/data/coco/val2017.txt")
    assert not is_coco_val("../datasets/coco128/images/train2017") and not is_coco_val(["coco/val2017.txt"])


def test_loggers_draw_training_batches_as_the_task_says(tmp_path):
    """Detection and segmentation draw their batches (segmentation with masks); classification draws none."""
    imgs = torch.full((2, 3, 64, 64), 0.5)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.5, 0.5], [1, 2, 0.25, 0.25, 0.25, 0.25]])
    masks = torch.zeros(2, 64, 64)
    masks[0, 20:44, 20:44] = 1
    opt = argparse.Namespace(noplots=False, no_overlap=False)
    for task, extra in ((DETECT, ()), (SEGMENT, (masks,)), (CLASSIFY, ())):
        lg = Loggers(tmp_path / task.name, opt, include=())
        lg.save_dir.mkdir()
        lg.plot_train_batch = task.plot_train_batch(opt)
        lg.on_train_batch_end(None, 0, imgs, targets, ["a.jpg", "b.jpg"], [], *extra)
        assert (lg.save_dir / "train_batch0.jpg").is_file() == (task is not CLASSIFY)


def test_plot_results_uses_the_panels_it_is_given(tmp_path, monkeypatch):
    """panels from the task decide the figure; without them a classification CSV is still recognised."""
    f = tmp_path / "results.csv"
    keys = ("epoch", *CLASSIFY.result_keys)
    f.write_text(",".join(keys) + "\n" + "\n".join(",".join(str(e + i / 10) for i in range(len(keys)))
                                                    for e in range(3)) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    opened = []
    real = plt.subplots

    def spy(*a, **k):
        opened.append(a[:2])
        return real(*a, **k)

    monkeypatch.setattr(plt, "subplots", spy)
    plot_results(f)
    plot_results(f, panels=CLASSIFY_PANELS[:2])
    assert opened == [(2, 2), (2, 1)]
