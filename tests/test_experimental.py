"""Checkpoint loading: upstream YOLOv5 v7 round trip, allowlisted metadata, refusal of unsafe pickles."""

import argparse
import os
import pickle
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pytest
import torch

from models.experimental import Ensemble, attempt_load, torch_safe_load
from models.yolo import DetectionModel
from tests.conftest import FIXTURES, randomize_bn

UPSTREAM = FIXTURES / "upstream_v7_yolov5n_nc3.pt"


def _upstream_io():
    x = torch.from_numpy(np.load(FIXTURES / "upstream_v7_input.npy"))
    return x, np.load(FIXTURES / "upstream_v7_output.npy")


@pytest.mark.parametrize("fuse", [False, True])
def test_upstream_checkpoint_round_trip(fuse):
    x, expected = _upstream_io()
    model = attempt_load(UPSTREAM, fuse=fuse)
    assert model.names == {0: "circle", 1: "square", 2: "triangle"}
    assert model.stride.tolist() == [8.0, 16.0, 32.0] and not model.training
    with torch.no_grad():
        y = model(x)[0].numpy()
    assert y.shape == expected.shape == (1, 5040, 8)
    diff = np.abs(y - expected).max()
    assert diff <= 1e-3 * np.abs(expected).max(), f"max abs diff {diff} vs output scale {np.abs(expected).max()}"


def _save(tmp_path, obj, name="ckpt.pt"):
    f = tmp_path / name
    torch.save(obj, f)
    return f


class _Payload:
    """Unpickling this runs os.system: the loader must refuse it before anything runs."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    f = _save(tmp_path, {"model": _Payload(marker), "epoch": -1})
    with pytest.raises(pickle.UnpicklingError, match=r"'(posix|os|nt)\.system'"):
        torch_safe_load(f)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        attempt_load(f)
    assert not marker.exists()


def test_unknown_class_refused(tmp_path):
    f = _save(tmp_path, {"model": torch.nn.Module(), "extra": _Payload(tmp_path / "x")})
    with pytest.raises(pickle.UnpicklingError, match="system"):
        torch_safe_load(f)


def test_project_checkpoint_with_metadata_loads(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(DetectionModel("yolov5n-csppc.yaml", nc=2)).eval()
    model.names = {0: "a", 1: "b"}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y0 = model(x)[0]
    ckpt = {
        "epoch": 3, "best_fitness": np.float64(0.5), "model": model.half(), "ema": None, "updates": 10,
        "optimizer": None, "date": "2026-11-28",
        "opt": argparse.Namespace(save_dir=Path("runs/train/exp"), hyp=PurePosixPath("data/hyps/x.yaml")),
        "win": PureWindowsPath("C:/data/x.yaml"), "arr": np.arange(4, dtype=np.int64),
        "dtype": np.dtype("float32"), "scalar": np.float32(1.5), "ints": {1, 2},
    }
    f = _save(tmp_path, ckpt)
    loaded = torch_safe_load(f)
    assert loaded["opt"].save_dir == Path("runs/train/exp") and loaded["best_fitness"] == 0.5
    assert loaded["arr"].tolist() == [0, 1, 2, 3] and loaded["dtype"] == np.float32
    m = attempt_load(f, fuse=False)
    with torch.no_grad():
        y1 = m(x)[0]
    assert (y1 - y0).abs().max() <= 2e-3 * y0.abs().max()  # FP16 storage


def test_older_yolov5_blocks_load(tmp_path):
    d = DetectionModel("yolov5n.yaml", nc=1).yaml
    d["backbone"][0] = [-1, 1, "Focus", [64, 3]]
    d["backbone"][2] = [-1, 3, "BottleneckCSP", [128]]
    d["backbone"][9] = [-1, 1, "SPP", [1024, [5, 9, 13]]]
    model = DetectionModel(d)
    f = _save(tmp_path, {"model": model.half(), "epoch": -1})
    loaded = attempt_load(f)
    with torch.no_grad():
        assert loaded(torch.rand(1, 3, 64, 64))[0].shape == (1, 252, 6)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        torch_safe_load(tmp_path / "missing.pt")
    f = _save(tmp_path, {"weights": torch.zeros(2)})
    with pytest.raises(ValueError, match="not a YOLOv5 checkpoint"):
        torch_safe_load(f)


def test_ensemble(tmp_path):
    x, _ = _upstream_io()
    ens = attempt_load([UPSTREAM, UPSTREAM])
    assert isinstance(ens, Ensemble) and ens.names[0] == "circle" and ens.stride.max() == 32
    with torch.no_grad():
        y, _ = ens(x)
    assert y.shape == (1, 2 * 5040, 8)
