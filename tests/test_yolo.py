"""Models built from YAML: figures, YOLOv5 state-dict layout, output shapes, fusing, parse_model registry."""

import json
import math
import subprocess
import sys
from copy import deepcopy

import pytest
import torch
import torch.nn as nn

from models.common import BLOCKS, channel_parser, register, resolve_arg
from models.yolo import Detect, DetectionModel, Model, parse_model
from tests.conftest import FIXTURES, randomize_bn
from utils.general import ROOT
from utils.torch_utils import get_flops

ALL_CFGS = ["yolov5n.yaml", "yolov5s.yaml", "yolov5m.yaml", "yolov5l.yaml", "yolov5x.yaml",
            "yolov5n-csppc.yaml", "yolov5s-csppc.yaml"]


@pytest.mark.parametrize(
    "cfg,params,gflops,tol",
    [("yolov5n.yaml", 1_872_157, 4.6, 0.1), ("yolov5s.yaml", 7_235_389, 16.6, 0.2),
     ("yolov5n-csppc.yaml", 1_480_445, 3.5, 0.1)],
)
def test_figures(cfg, params, gflops, tol):
    model = DetectionModel(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    assert abs(get_flops(model, 640) - gflops) <= tol


def test_state_dict_matches_upstream_v7():
    expected = json.loads((FIXTURES / "upstream_v7_yolov5n_nc3_state_dict_shapes.json").read_text())
    got = {k: list(v.shape) for k, v in DetectionModel("yolov5n.yaml", nc=3).state_dict().items()}
    assert list(got) == list(expected)
    assert got == expected


@pytest.mark.parametrize("cfg", ALL_CFGS)
def test_build_shapes(cfg):
    model = DetectionModel(cfg, nc=4)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    for s in (64, 128):
        x = torch.rand(2, 3, s, s)
        model.train()
        maps = model(x)
        assert [tuple(m.shape) for m in maps] == [(2, 3, s // st, s // st, 9) for st in (8, 16, 32)]
        model.eval()
        with torch.no_grad():
            pred, raw = model(x)
        cells = sum((s // st) ** 2 for st in (8, 16, 32))
        assert pred.shape == (2, 3 * cells, 9) and len(raw) == 3


def test_rectangular_input():
    model = DetectionModel("yolov5n.yaml", nc=2).eval()
    with torch.no_grad():
        pred, _ = model(torch.rand(1, 3, 96, 160))
    assert pred.shape == (1, 3 * (12 * 20 + 6 * 10 + 3 * 5), 7)


def test_detect_decoding_formula():
    model = DetectionModel("yolov5n.yaml", nc=2).eval()
    det = model.model[-1]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pred, raw = model(x)
    # cell (gy=1, gx=2) of anchor 1 at level 0 (stride 8, 8x8 grid)
    r = raw[0][0, 1, 1, 2].sigmoid()
    stride = det.stride[0]
    anchor = det.anchors[0, 1] * stride
    xy = (r[:2] * 2 - 0.5 + torch.tensor([2.0, 1.0])) * stride
    wh = (r[2:4] * 2) ** 2 * anchor
    idx = 1 * 64 + 1 * 8 + 2
    assert torch.allclose(pred[0, idx, :2], xy, atol=1e-5)
    assert torch.allclose(pred[0, idx, 2:4], wh, atol=1e-5)
    assert torch.allclose(pred[0, idx, 4:], r[4:], atol=1e-6)


def test_detect_export_mode_returns_decoded_only():
    model = DetectionModel("yolov5n.yaml", nc=2).eval()
    det = model.model[-1]
    det.export = True
    try:
        with torch.no_grad():
            out = model(torch.rand(1, 3, 64, 64))
    finally:
        det.export = False
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == (1, 252, 7)


def test_anchors_in_grid_units_and_biases():
    model = DetectionModel("yolov5n.yaml")
    det = model.model[-1]
    assert torch.allclose(det.anchors[0, 0] * 8, torch.tensor([10.0, 13.0]))
    assert torch.allclose(det.anchors[2, 2] * 32, torch.tensor([373.0, 326.0]))
    # priors: 8 objects per 640 image (objectness), 0.6 / nc (classes), added to torch's default init,
    # which lies within +-1/sqrt(fan_in) = +-1/8 for the 64-channel P3 input
    for level, (conv, stride) in enumerate(zip(det.m, (8, 16, 32))):
        b = conv.bias.detach().view(3, -1)
        bound = 1 / conv.in_channels**0.5
        obj_prior = math.log(8 / (640 / stride) ** 2)
        cls_prior = math.log(0.6 / (80 - 0.99999))
        assert (b[:, 4] - obj_prior).abs().max() <= bound, level
        assert (b[:, 5:] - cls_prior).abs().max() <= bound, level


@pytest.mark.parametrize("cfg", ["yolov5n.yaml", "yolov5n-csppc.yaml"])
def test_fused_equals_unfused(cfg):
    torch.manual_seed(0)
    model = randomize_bn(DetectionModel(cfg, nc=3)).eval()
    x = torch.rand(1, 3, 128, 96)
    fused = deepcopy(model).fuse()  # outside no_grad, as attempt_load calls it
    with torch.no_grad():
        y0 = model(x)[0]
        y1 = fused(x)[0]
    assert fused is not None and not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert all(p.is_leaf for p in fused.parameters()), "fused weights must not hang on an autograd graph"
    rel = (y1 - y0).abs().max() / y0.abs().max()
    assert rel <= 1e-4, f"fused vs unfused relative error {rel:.2e}"


def test_overrides_and_names():
    model = Model("yolov5n.yaml", ch=1, nc=5, anchors=2)
    det = model.model[-1]
    assert det.nc == 5 and det.na == 2 and model.yaml["ch"] == 1
    assert model.names == {i: str(i) for i in range(5)}
    assert model.model[0].conv.in_channels == 1
    assert model.save == sorted(model.save) and hasattr(model, "stride")


def test_model_from_dict_and_bare_name_lookup():
    d = DetectionModel("yolov5n-csppc.yaml").yaml  # found in models/hub
    assert DetectionModel(deepcopy(d)).yaml["head"][-1][2] == "Detect"
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        DetectionModel("nope.yaml")


def test_unknown_module_is_a_clear_error():
    d = deepcopy(DetectionModel("yolov5n.yaml").yaml)
    d["backbone"][2][2] = "Evil"
    with pytest.raises(KeyError, match="layer 2: unknown module 'Evil'"):
        DetectionModel(d)


def test_yaml_strings_are_not_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "__import__('os').system('touch pwned')"
    assert resolve_arg(code, {}) == code  # stays a plain string
    assert resolve_arg("None", {}) is None and resolve_arg("nc", {"nc": 3}) == 3
    d = deepcopy(DetectionModel("yolov5n.yaml").yaml)
    d["head"][1][3] = ["None", 2, code]
    with pytest.raises(NotImplementedError, match="system"):  # handed to nn.Upsample as a mode name
        DetectionModel(d)
    assert not (tmp_path / "pwned").exists()


def test_activation_key_without_eval():
    d = deepcopy(DetectionModel("yolov5n.yaml").yaml)
    d["activation"] = "nn.LeakyReLU(0.1)"
    model = DetectionModel(d)
    acts = {type(m.act) for m in model.modules() if hasattr(m, "act")}
    assert acts == {nn.LeakyReLU}
    assert isinstance(DetectionModel("yolov5n.yaml").model[0].act, nn.SiLU)  # other models unaffected
    d["activation"] = "os.system('x')"
    with pytest.raises(ValueError, match="activation"):
        DetectionModel(d)


def test_new_block_needs_no_parse_model_edit():
    @register(channel_parser(repeat_inside=True), name="TestTwin")
    class TestTwin(nn.Module):
        def __init__(self, c1, c2, n=1):
            super().__init__()
            self.n = n
            self.conv = nn.Conv2d(c1, c2, 1)

        def forward(self, x):
            return self.conv(x)

    try:
        d = {"nc": 2, "depth_multiple": 0.33, "width_multiple": 0.25,
             "anchors": [[10, 13, 16, 30, 33, 23]],
             "backbone": [[-1, 1, "TestTwin", [64]], [-1, 3, "TestTwin", [64]]],
             "head": [[[1], 1, "Detect", ["nc", "anchors"]]]}
        model, save = parse_model(d, ch=[3])
        assert isinstance(model[1], TestTwin) and model[1].n == 1  # round(3 * 0.33) = 1, passed inside
        assert model[1].conv.out_channels == 16 and isinstance(model[2], Detect)
    finally:
        BLOCKS.pop("TestTwin")


def test_cli_prints_table_and_summary():
    out = subprocess.run([sys.executable, "models/yolo.py", "--cfg", "yolov5n-csppc.yaml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "from  n    params  module" in text and "models.common.CSPPC" in text
    assert "1,480,445 parameters" in text and "3.5 GFLOPs" in text
