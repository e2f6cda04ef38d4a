"""Classify head and ClassificationModel: v7.0's layout, its published sizes, checkpoints and fusing."""

from __future__ import annotations

import pytest
import torch

from models.common import Classify
from models.experimental import attempt_load, torch_safe_load
from models.yolo import ClassificationModel, DetectionModel
from utils.torch_utils import get_flops, model_info


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("cfg", "nc", "params", "gflops"), [
    ("yolov5n.yaml", 1000, 2_493_000, 0.37),
    ("yolov5s.yaml", 1000, 5_453_480, 1.29),
    ("yolov5n.yaml", 10, 1_224_810, None),
])
def test_sizes_match_v70(cfg, nc, params, gflops):
    model = ClassificationModel(model=DetectionModel(cfg), nc=nc, cutoff=10)
    assert n_params(model) == params
    if gflops is not None:
        assert round(get_flops(model, 224), 2) == gflops
        assert round(model_info(model, imgsz=224)[3], 2) == gflops


def test_layout_is_v70s():
    """The SPPF (layer 9) becomes Classify fed SPPF's input; attribute names as v7.0, so its state dicts load."""
    det = DetectionModel("yolov5n.yaml")
    model = ClassificationModel(model=det, nc=7, cutoff=10)
    head = model.model[-1]
    assert isinstance(head, Classify) and len(model.model) == 10
    assert (head.i, head.f, head.type) == (9, -1, "models.common.Classify")
    assert head.conv.conv.in_channels == det.model[9].cv1.conv.in_channels == 256
    assert isinstance(head.pool, torch.nn.AdaptiveAvgPool2d) and isinstance(head.drop, torch.nn.Dropout)
    assert (head.linear.in_features, head.linear.out_features) == (1280, 7)
    keys = set(model.state_dict())
    assert {"model.9.conv.conv.weight", "model.9.conv.bn.running_mean", "model.9.linear.weight"} <= keys
    assert model.save == [] and model.nc == 7 and model.stride.tolist() == [8.0, 16.0, 32.0]
    y = model.eval()(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 7)


def test_csppc_backbone_and_other_cutoffs():
    model = ClassificationModel(model=DetectionModel("yolov5n-csppc.yaml"), nc=5, cutoff=8)
    assert len(model.model) == 8
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 5)


def test_bad_cutoff_is_explained():
    with pytest.raises(ValueError, match="cutoff=30 must be in 1..24"):
        ClassificationModel(model=DetectionModel("yolov5n.yaml"), nc=5, cutoff=30)
    with pytest.raises(ValueError, match="reads an earlier layer's output"):
        ClassificationModel(model=DetectionModel("yolov5n.yaml"), nc=5, cutoff=14)
    with pytest.raises(ValueError, match="needs a model YAML"):
        ClassificationModel()


def test_from_yaml(tmp_path):
    cfg = {"nc": 4, "depth_multiple": 0.33, "width_multiple": 0.25,
           "backbone": [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                        [-1, 1, "Conv", [256, 3, 2]]],
           "head": [[-1, 1, "Classify", ["nc"]]]}
    model = ClassificationModel(cfg=cfg, nc=3)
    assert model.nc == 3 and model.stride.tolist() == [8.0]
    assert model.eval()(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    cfg["head"] = [[-1, 1, "Conv", [8, 1]]]
    with pytest.raises(ValueError, match="ends with Classify"):
        ClassificationModel(cfg=cfg)


def test_checkpoint_round_trip_and_fuse(tmp_path):
    """A v7.0-layout classification checkpoint (the model object in 'model', FP16) loads through the safe loader."""
    torch.manual_seed(0)
    model = ClassificationModel(model=DetectionModel("yolov5n.yaml"), nc=6).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so fusing really folds something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.names = {i: f"c{i}" for i in range(6)}
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    f = tmp_path / "cls.pt"
    torch.save({"model": model.half(), "ema": None, "epoch": -1, "optimizer": None, "best_fitness": 0.5}, f)
    assert type(torch_safe_load(f)["model"]) is ClassificationModel
    loaded = attempt_load(f, fuse=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.modules())
    assert loaded.names[5] == "c5"
    with torch.no_grad():
        y = loaded(x)
    assert y.shape == (2, 6)
    assert float((y - ref).abs().max()) < 0.05 * float(ref.abs().max())  # FP16 storage, then fused in FP32


def test_v70_checkpoint_with_transforms_loads(tmp_path, monkeypatch):
    """v7.0's classify/train.py attaches model.transforms (its CenterCrop and ToTensor, torchvision's Compose and
    Normalize), pickled under utils.augmentations names: the safe loader rebuilds them with the project's classes."""
    import numpy as np
    import torchvision.transforms as T

    import utils.augmentations
    from utils.classify_data import IMAGENET_MEAN, IMAGENET_STD, CenterCrop, ToTensor, classify_transforms

    v7_crop = type("CenterCrop", (CenterCrop,), {"__module__": "utils.augmentations"})
    v7_tensor = type("ToTensor", (ToTensor,), {"__module__": "utils.augmentations"})
    model = ClassificationModel(model=DetectionModel("yolov5n.yaml"), nc=3).eval()
    model.names = ["a", "b", "c"]  # v7.0 stores the ImageFolder's class list
    model.transforms = T.Compose([v7_crop(32), v7_tensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    f = tmp_path / "v7-cls.pt"
    with monkeypatch.context() as m:  # v7.0's module layout while pickling
        m.setattr(utils.augmentations, "CenterCrop", v7_crop, raising=False)
        m.setattr(utils.augmentations, "ToTensor", v7_tensor, raising=False)
        torch.save({"epoch": -1, "model": model.half(), "ema": None, "optimizer": None,
                    "opt": {"model": "yolov5n.pt", "imgsz": 32}, "git": {"commit": "915bbf29"}}, f)
    loaded = attempt_load(f)
    assert loaded.names == {0: "a", 1: "b", 2: "c"}
    crop, tensor, norm = loaded.transforms.transforms
    assert type(crop) is CenterCrop and type(tensor) is ToTensor and (crop.h, crop.w) == (32, 32)
    im = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    x = loaded.transforms(im)
    assert torch.allclose(x, classify_transforms(32)(im), atol=1e-6)
    assert loaded(x[None]).shape == (1, 3)
