"""torch.hub.load on this repository, offline: custom checkpoints and models built from YAML."""

import logging

import numpy as np
import pytest
import torch

from models.backends import AutoShape, Detections
from models.common import CSPPC
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image
from utils.general import ROOT


def test_custom_checkpoint_through_torch_hub(tmp_path):
    weights = make_checkpoint(tmp_path / "best.pt")
    model = torch.hub.load(str(ROOT), "custom", path=str(weights), source="local", _verbose=False)
    assert isinstance(model, AutoShape) and model.names == NAMES
    model.conf = 0.3
    results = model(shapes_image(160, 160)[..., ::-1].copy(), size=160)
    assert isinstance(results, Detections) and len(results.xyxy[0]) > 0
    assert set(results.pandas().xyxy[0]["name"]) <= set(NAMES.values())
    raw = torch.hub.load(str(ROOT), "custom", path=str(weights), autoshape=False, source="local", _verbose=False)
    assert not isinstance(raw, AutoShape) and raw.names == NAMES


def test_named_csppc_model_without_pretrained_weights():
    model = torch.hub.load(str(ROOT), "yolov5n_csppc", pretrained=False, classes=5, source="local", _verbose=False)
    assert isinstance(model, AutoShape)
    detect = model.model.model[-1]
    assert detect.nc == 5 and any(isinstance(m, CSPPC) for m in model.modules())
    pred = model(torch.zeros(1, 3, 64, 64))  # a tensor input skips pre/post-processing: the raw prediction tensor
    assert isinstance(pred, torch.Tensor) and pred.shape == (1, 3 * (64 + 16 + 4), 10)
    assert model(torch.zeros(1, 3, 64, 64), augment=True).shape[0] == 1  # test-time augmentation: a tensor too
    results = model(np.zeros((48, 80, 3), dtype=np.uint8), size=64)
    assert results.s == (1, 3, 64, 64)


def test_pretrained_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if (ROOT / "yolov5s_csppc.pt").exists():
        pytest.skip("a local yolov5s_csppc.pt exists")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        torch.hub.load(str(ROOT), "yolov5s_csppc", source="local", _verbose=False)
    with pytest.raises(FileNotFoundError, match="custom model not found"):
        torch.hub.load(str(ROOT), "custom", path=str(tmp_path / "none.pt"), source="local", _verbose=False)


def test_custom_path_without_suffix_finds_its_pt(tmp_path, monkeypatch):
    """As in YOLOv5: path='runs/train/exp/weights/best' loads best.pt; a tensor input returns the raw tensor."""
    monkeypatch.chdir(tmp_path)
    weights_dir = tmp_path / "runs/train/exp/weights"
    weights_dir.mkdir(parents=True)
    make_checkpoint(weights_dir / "best.pt")
    model = torch.hub.load(str(ROOT), "custom", path="runs/train/exp/weights/best", source="local", _verbose=False)
    assert isinstance(model, AutoShape) and model.names == NAMES
    x = torch.rand(1, 3, 64, 64)
    pred = model(x)
    raw = torch.hub.load(str(ROOT), "custom", path="runs/train/exp/weights/best", autoshape=False, source="local",
                         _verbose=False)
    with torch.no_grad():
        expected = raw(x)[0]
    assert isinstance(pred, torch.Tensor) and pred.shape == expected.shape == (1, 252, 8)
    assert float((pred - expected).abs().max()) <= 1e-4 * float(expected.abs().max())  # fused vs unfused
    with pytest.raises(FileNotFoundError, match=r"custom model not found: runs/train/exp/weights/last\.pt"):
        torch.hub.load(str(ROOT), "custom", path="runs/train/exp/weights/last", source="local", _verbose=False)


def test_quiet_loading_still_prints_results(tmp_path, logs):
    """_verbose=False silences loading only: results.print() and save() still log, and the level is restored."""
    weights = make_checkpoint(tmp_path / "best.pt")
    logs.clear()  # building the checkpoint logged its layer table
    model = torch.hub.load(str(ROOT), "custom", path=str(weights), source="local", _verbose=False)
    assert logs == [] and logging.getLogger("yolov5").level == logging.INFO
    results = model(shapes_image(96, 128)[..., ::-1].copy(), size=96)
    results.print()
    assert len(logs) == 1 and logs[0].startswith("image 1/1: 96x128 ") and "\nSpeed: " in logs[0]
    save_dir = results.save(save_dir=tmp_path / "out")
    assert logs[-1] == f"Saved 1 image to {save_dir}" and (save_dir / "image0.jpg").is_file()
    logs.clear()
    torch.hub.load(str(ROOT), "yolov5n_csppc", pretrained=False, classes=3, source="local", _verbose=False)
    assert logs == []
    torch.hub.load(str(ROOT), "custom", path=str(weights), source="local")  # verbose: loading is reported
    assert any(r.startswith("Fusing layers") for r in logs) and any("AutoShape" in r for r in logs)
    logging.getLogger("yolov5").setLevel(logging.WARNING)  # a user's own choice survives loading
    torch.hub.load(str(ROOT), "custom", path=str(weights), source="local", _verbose=False)
    assert logging.getLogger("yolov5").level == logging.WARNING
