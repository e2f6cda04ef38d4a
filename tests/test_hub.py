"""torch.hub.load on this repository, offline: custom checkpoints and models built from YAML."""

import logging

import numpy as np
import pytest
import torch

from models.backends import AutoShape, Detections
from models.common import CSPPC
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image
from utils.general import ROOT


@pytest.fixture(autouse=True)
def _restore_logger():
    """hubconf configures the project logger (set_logging); put it back so later tests' caplog still sees it."""
    logger = logging.getLogger("yolov5")
    state = logger.level, logger.propagate, list(logger.handlers)
    yield
    logger.setLevel(state[0])
    logger.propagate = state[1]
    logger.handlers[:] = state[2]


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
    with torch.no_grad():
        pred = model(torch.zeros(1, 3, 64, 64))[0]  # a tensor input skips pre/post-processing
    assert pred.shape == (1, 3 * (64 + 16 + 4), 10)
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
