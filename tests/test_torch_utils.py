"""Training helpers of utils/torch_utils.py: EMA, optimizer groups, early stopping, checkpoints, seeds, AMP check."""

import math
import os
import pickle
import platform

import pytest
import torch
import torch.nn as nn

from models.experimental import strip_optimizer, torch_safe_load
from models.yolo import Model
from utils.torch_utils import (
    EarlyStopping,
    ModelEMA,
    amp_outputs_match,
    check_amp,
    init_seeds,
    save_atomic,
    smart_optimizer,
    smart_resume,
    tune_cpu_allocator,
)


def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), nn.Linear(5, 3))


def test_ema_update_follows_ramped_decay():
    torch.manual_seed(0)
    model = tiny_net()
    ema = ModelEMA(model, decay=0.9, tau=2)
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.add_(2.0)
        model[1].num_batches_tracked += 5
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 2))  # decay after one update
    after, msd = ema.ema.state_dict(), model.state_dict()
    for k, v in after.items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, d * before[k] + (1 - d) * msd[k], atol=1e-6), k
    assert after["1.num_batches_tracked"] == before["1.num_batches_tracked"]  # integers are not averaged
    assert ema.updates == 1
    assert not any(p.requires_grad for p in ema.ema.parameters())


def test_ema_update_attr():
    model = tiny_net()
    ema = ModelEMA(model)
    model.names = {0: "a"}
    model.hidden = 1
    ema.update_attr(model, include=["names"])
    assert ema.ema.names == {0: "a"} and not hasattr(ema.ema, "hidden")


def test_smart_optimizer_groups():
    model = tiny_net()
    opt = smart_optimizer(model, "SGD", lr=0.01, momentum=0.9, decay=5e-4)
    g0, g1, g2 = opt.param_groups
    ids = lambda g: {id(p) for p in g["params"]}
    assert ids(g0) == {id(model[2].bias), id(model[3].bias), id(model[1].bias)}  # biases, no decay
    assert g0["weight_decay"] == 0 and g0["nesterov"]
    assert ids(g1) == {id(model[0].weight), id(model[2].weight), id(model[3].weight)} and g1["weight_decay"] == 5e-4
    assert ids(g2) == {id(model[1].weight)} and g2["weight_decay"] == 0.0  # BatchNorm weights
    assert isinstance(smart_optimizer(model, "AdamW"), torch.optim.AdamW)
    adam = smart_optimizer(model, "Adam", momentum=0.8)
    assert adam.param_groups[0]["betas"] == (0.8, 0.999)
    with pytest.raises(NotImplementedError, match="Optimizer Lion"):
        smart_optimizer(model, "Lion")


def test_early_stopping():
    stopper = EarlyStopping(patience=2)
    assert not stopper(0, 0.5)
    assert not stopper(1, 0.4)
    assert stopper.possible_stop
    assert stopper(2, 0.45)  # two epochs without beating 0.5
    assert stopper.best_epoch == 0
    never = EarlyStopping(patience=0)
    assert not any(never(e, 0.0 if e else 1.0) for e in range(50))


def test_save_atomic_keeps_old_file_on_failure(tmp_path):
    f = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, f)
    assert torch.load(f, weights_only=True) == {"epoch": 1}
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a local lambda cannot be pickled
        save_atomic({"epoch": 2, "bad": lambda: 0}, f)
    assert torch.load(f, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind


def test_strip_optimizer(tmp_path):
    model = Model("yolov5n.yaml", nc=2)
    ema = ModelEMA(model)
    with torch.no_grad():
        ema.ema.model[0].conv.weight.fill_(0.25)  # recognisable EMA weights
    opt = smart_optimizer(model, "SGD")
    ckpt = {"epoch": 3, "best_fitness": 0.5, "model": model, "ema": ema.ema, "updates": 7,
            "optimizer": opt.state_dict(), "opt": {"imgsz": 64}, "git": None, "date": "today"}
    f, s = tmp_path / "last.pt", tmp_path / "stripped.pt"
    torch.save(ckpt, f)
    strip_optimizer(f, str(s))
    x = torch_safe_load(s)
    assert x["epoch"] == -1 and x["optimizer"] is None and x["ema"] is None and x["updates"] is None
    assert x["model"].model[0].conv.weight.dtype == torch.float16
    assert (x["model"].model[0].conv.weight == 0.25).all()  # the EMA became the model
    assert x["opt"] == {"imgsz": 64}
    assert torch_safe_load(f)["epoch"] == 3  # the source was kept when saving elsewhere


def test_init_seeds_reproducible():
    init_seeds(3)
    a = torch.rand(3), torch.randint(0, 100, (3,))
    init_seeds(3)
    b = torch.rand(3), torch.randint(0, 100, (3,))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_check_amp_is_off_on_cpu():
    assert check_amp(tiny_net()) is False


def test_amp_outputs_match():
    a = torch.tensor([[[100.0, 50.0, 20.0, 30.0, 0.9, 0.1]]])
    assert amp_outputs_match(a, a + torch.tensor([0.5, 0.5, 0.5, 0.5, 0.01, 0.01]))
    assert not amp_outputs_match(a, a * torch.tensor([1.2, 1, 1, 1, 1, 1]))  # box 20% off
    assert not amp_outputs_match(a, a + torch.tensor([0, 0, 0, 0, -0.3, 0]))  # confidence off
    assert not amp_outputs_match(a, a[..., :5])
    assert not amp_outputs_match(a, torch.full_like(a, float("nan")))


def test_smart_resume_restores_optimizer_and_ema():
    torch.manual_seed(0)
    model = tiny_net()
    opt = smart_optimizer(model, "SGD", lr=0.1)
    model(torch.rand(2, 3, 7, 7)).sum().backward()
    opt.step()  # creates momentum buffers
    ema = ModelEMA(model)
    ema.update(model)
    ckpt = {"epoch": 4, "best_fitness": 0.3, "ema": ema.ema, "updates": ema.updates, "optimizer": opt.state_dict()}
    model2 = tiny_net()
    opt2, ema2 = smart_optimizer(model2, "SGD", lr=0.1), ModelEMA(model2)
    best, start, epochs = smart_resume(ckpt, opt2, ema2, "last.pt", epochs=10, resume=True)
    assert (best, start, epochs) == (0.3, 5, 10)
    assert ema2.updates == 1
    buf = [opt2.state[p]["momentum_buffer"] for p in opt2.param_groups[1]["params"]]
    ref = [opt.state[p]["momentum_buffer"] for p in opt.param_groups[1]["params"]]
    assert all(torch.equal(a, b) for a, b in zip(buf, ref))
    assert torch.equal(ema2.ema[0].weight, ema.ema[0].weight)
    with pytest.raises(ValueError, match="nothing to resume"):
        smart_resume({**ckpt, "epoch": -1, "optimizer": None}, opt2, ema2, "best.pt", epochs=10, resume=True)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_tune_cpu_allocator_sets_glibc_thresholds(monkeypatch):
    assert tune_cpu_allocator() is True  # mallopt accepted both thresholds
    assert tune_cpu_allocator(enable=False) is False
    monkeypatch.setenv("YOLOV5_TUNE_MALLOC", "0")
    assert tune_cpu_allocator() is False  # the documented opt-out


def test_tune_cpu_allocator_is_a_no_op_off_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert tune_cpu_allocator() is False
