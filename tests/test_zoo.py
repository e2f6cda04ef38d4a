"""YOLOv5 v7.0's model zoo: every hub config's figures and state-dict layout, its blocks, CSPPC at every scale."""

from __future__ import annotations

import pickle
import re

import pytest
import torch
import torch.nn as nn

from models.common import BLOCKS, CSPPC
from models.extra_blocks import (
    C3SPP,
    C3TR,
    C3Ghost,
    C3x,
    Contract,
    CrossConv,
    DWConvTranspose2d,
    Expand,
    GhostBottleneck,
    GhostConv,
    MixConv2d,
)
from models.yolo import Detect, DetectionModel
from utils.general import ROOT, yaml_load
from utils.torch_utils import get_flops

# cfg: (parameters at nc=80, output strides, {state-dict key: shape} checked against v7.0's layout)
ZOO = {
    "yolov3.yaml": (61_949_149, [8, 16, 32], {"model.10.3.cv2.conv.weight": (1024, 512, 3, 3),
                                               "model.28.m.0.weight": (255, 256, 1, 1)}),
    "yolov3-spp.yaml": (62_998_749, [8, 16, 32], {"model.12.cv2.conv.weight": (512, 2048, 1, 1)}),
    "yolov3-tiny.yaml": (8_852_366, [16, 32], {"model.13.conv.weight": (1024, 512, 3, 3),
                                               "model.20.m.1.weight": (255, 512, 1, 1)}),
    "yolov5-bifpn.yaml": (46_825_853, [8, 16, 32], {"model.20.cv1.conv.weight": (256, 1024, 1, 1)}),
    "yolov5-fpn.yaml": (41_117_565, [8, 16, 32], {"model.10.cv1.conv.weight": (512, 1024, 1, 1)}),
    "yolov5-p2.yaml": (47_493_372, [4, 8, 16, 32], {"model.21.cv1.conv.weight": (64, 256, 1, 1),
                                                    "model.31.m.0.weight": (255, 128, 1, 1)}),
    "yolov5-p34.yaml": (5_331_518, [8, 16], {"model.21.m.1.weight": (255, 256, 1, 1)}),
    "yolov5-p6.yaml": (76_770_172, [8, 16, 32, 64], {"model.33.m.3.weight": (255, 1024, 1, 1)}),
    "yolov5-p7.yaml": (144_281_723, [8, 16, 32, 64, 128], {"model.13.cv2.conv.weight": (1280, 2560, 1, 1),
                                                           "model.42.m.4.weight": (255, 1280, 1, 1)}),
    "yolov5-panet.yaml": (46_563_709, [8, 16, 32], {"model.24.m.2.weight": (255, 1024, 1, 1)}),
    "yolov5n6.yaml": (3_246_940, [8, 16, 32, 64], {"model.33.m.3.weight": (255, 256, 1, 1)}),
    "yolov5s6.yaml": (12_626_620, [8, 16, 32, 64], {"model.10.m.0.cv2.conv.weight": (256, 256, 3, 3)}),
    "yolov5m6.yaml": (35_731_932, [8, 16, 32, 64], {"model.8.cv3.conv.weight": (576, 576, 1, 1)}),
    "yolov5l6.yaml": (76_770_172, [8, 16, 32, 64], {"model.6.m.8.cv1.conv.weight": (256, 256, 1, 1)}),
    "yolov5x6.yaml": (140_794_780, [8, 16, 32, 64], {"model.33.m.3.weight": (255, 1280, 1, 1)}),
    "yolov5s-ghost.yaml": (3_897_605, [8, 16, 32], {
        "model.1.cv1.conv.weight": (32, 32, 3, 3), "model.1.cv2.conv.weight": (32, 1, 5, 5),
        "model.2.m.0.conv.0.cv1.conv.weight": (8, 32, 1, 1), "model.2.m.0.conv.2.cv2.conv.weight": (16, 1, 5, 5)}),
    "yolov5s-transformer.yaml": (7_235_645, [8, 16, 32], {
        "model.8.m.linear.weight": (256, 256), "model.8.m.linear.bias": (256,),
        "model.8.m.tr.0.q.weight": (256, 256), "model.8.m.tr.0.ma.in_proj_weight": (768, 256),
        "model.8.m.tr.0.ma.out_proj.weight": (256, 256), "model.8.m.tr.0.fc2.weight": (256, 256)}),
    "yolov5s-LeakyReLU.yaml": (7_235_389, [8, 16, 32], {"model.24.m.0.weight": (255, 128, 1, 1)}),
}
# GFLOPs at 640 (thop, 2 x MACs, before fusing) as v7.0 reports them, for the configs quick enough to profile here
GFLOPS = {"yolov3-tiny.yaml": 13.3, "yolov5-p34.yaml": 15.1, "yolov5n6.yaml": 4.65, "yolov5s6.yaml": 17.0,
          "yolov5s-ghost.yaml": 8.88, "yolov5s-transformer.yaml": 16.8, "yolov5s-LeakyReLU.yaml": 16.6}
SLOW = {"yolov3.yaml", "yolov3-spp.yaml", "yolov5-p6.yaml", "yolov5-p7.yaml", "yolov5l6.yaml", "yolov5x6.yaml",
        "yolov5-bifpn.yaml", "yolov5-panet.yaml", "yolov5-fpn.yaml", "yolov5-p2.yaml"}


def _cases(names):
    return [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in names]


@pytest.mark.parametrize("cfg", _cases(ZOO))
def test_zoo_params_strides_and_layout(cfg):
    params, strides, shapes = ZOO[cfg]
    model = DetectionModel(cfg)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.stride.tolist() == strides
    sd = model.state_dict()
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    n_layers = len(model.yaml["backbone"]) + len(model.yaml["head"])
    assert all(re.fullmatch(r"model\.\d+\.[\w.]+", k) for k in sd)
    assert max(int(k.split(".")[1]) for k in sd) == n_layers - 1  # the Detect layer is the last index
    assert f"model.{n_layers - 1}.anchors" in sd and sd[f"model.{n_layers - 1}.anchors"].shape == (len(strides), 3, 2)


@pytest.mark.parametrize("cfg", GFLOPS)
def test_zoo_gflops(cfg):
    assert abs(get_flops(DetectionModel(cfg), 640) - GFLOPS[cfg]) < 0.06


def test_attention_is_counted_quadratically():
    """A transformer's GFLOPs are profiled at the real size: 4x the pixels cost more than 4x the attention."""
    model = DetectionModel("yolov5s-transformer.yaml")
    g320, g640 = get_flops(model, 320), get_flops(model, 640)
    attention_640 = g640 - 4 * g320  # everything linear in pixels cancels; 3/4 of the 640 QK^T + AV cost is left
    e, tokens = 256, (640 // 32) ** 2
    assert attention_640 == pytest.approx(0.75 * 2 * 2 * tokens * tokens * e / 1e9, rel=1e-6)


# CSPPC at every scale ---------------------------------------------------------------------------------------------
CSPPC_BASES = {"yolov5n-csppc.yaml": "yolov5n.yaml", "yolov5s-csppc.yaml": "yolov5s.yaml",
               "yolov5m-csppc.yaml": "yolov5m.yaml", "yolov5l-csppc.yaml": "yolov5l.yaml",
               "yolov5x-csppc.yaml": "yolov5x.yaml", "yolov5n6-csppc.yaml": "yolov5n6.yaml",
               "yolov5s6-csppc.yaml": "yolov5s6.yaml"}


@pytest.mark.parametrize("cfg", CSPPC_BASES)
def test_csppc_config_is_its_base_with_every_c3_replaced(cfg):
    d, base = (yaml_load(next(ROOT.glob(f"models/**/{name}"))) for name in (cfg, CSPPC_BASES[cfg]))
    layers, base_layers = d["backbone"] + d["head"], base["backbone"] + base["head"]
    assert sum(x[2] == "C3" for x in base_layers) > 0 and not any(x[2] == "C3" for x in layers)
    assert [[f, n, "CSPPC" if m == "C3" else m, a] for f, n, m, a in base_layers] == layers
    assert {k: v for k, v in d.items() if k not in ("backbone", "head")} == \
        {k: v for k, v in base.items() if k not in ("backbone", "head")}


# parameters at nc=80, trained and fused (measured with models/yolo.py; the README's zoo table lists them)
CSPPC_PARAMS = {"yolov5m-csppc.yaml": (14_172_765, 12_635_085), "yolov5l-csppc.yaml": (27_860_605, 23_773_629),
                "yolov5x-csppc.yaml": (47_798_365, 39_295_085), "yolov5n6-csppc.yaml": (2_663_996, 2_532_556),
                "yolov5s6-csppc.yaml": (10_302_652, 9_787_100)}


@pytest.mark.parametrize("cfg", [pytest.param(c, marks=pytest.mark.slow) if c[6] in "lx" else c for c in CSPPC_PARAMS])
def test_csppc_params_trained_and_fused(cfg):
    model = DetectionModel(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) == CSPPC_PARAMS[cfg][0]
    assert sum(isinstance(m, CSPPC) for m in model.modules()) == (11 if "6-" in cfg else 8)
    assert model.stride.tolist() == ([8, 16, 32, 64] if "6-" in cfg else [8, 16, 32])
    assert sum(p.numel() for p in model.fuse().parameters()) == CSPPC_PARAMS[cfg][1]


# Blocks ----------------------------------------------------------------------------------------------------------


def test_blocks_are_registered_and_named_as_v7():
    for cls in (GhostConv, GhostBottleneck, C3Ghost, C3TR, C3SPP, C3x, CrossConv, MixConv2d, DWConvTranspose2d,
                Contract, Expand):
        assert BLOCKS[cls.__name__][0] is cls
    for name in ("nn.MaxPool2d", "nn.ZeroPad2d", "nn.ConvTranspose2d"):
        assert name in BLOCKS
    assert GhostConv.__module__ == "models.common" and MixConv2d.__module__ == "models.experimental"
    # pickled by these names, the classes resolve from the modules v7.0 checkpoints name
    assert type(pickle.loads(pickle.dumps(GhostConv(4, 8)))) is GhostConv
    assert b"models.experimental" in pickle.dumps(MixConv2d(4, 8))


@pytest.mark.parametrize(
    "block,shape",
    [(GhostConv(8, 16, 3, 2), (2, 16, 8, 8)), (GhostBottleneck(8, 8), (2, 8, 16, 16)),
     (GhostBottleneck(8, 16, 3, 2), (2, 16, 8, 8)), (C3Ghost(8, 16, 2), (2, 16, 16, 16)),
     (C3TR(8, 16, 1), (2, 16, 16, 16)), (C3SPP(8, 16), (2, 16, 16, 16)), (C3x(8, 16, 2), (2, 16, 16, 16)),
     (CrossConv(8, 16, 3, 2), (2, 16, 8, 8)), (MixConv2d(8, 16, (1, 3, 5)), (2, 16, 16, 16)),
     (MixConv2d(8, 16, (3, 5), equal_ch=False), (2, 16, 16, 16)),
     (DWConvTranspose2d(8, 8, 4, 2, 1, 0), (2, 8, 32, 32)), (Contract(2), (2, 32, 8, 8)), (Expand(2), (2, 2, 32, 32))],
)
def test_block_output_shapes(block, shape):
    block.eval()
    with torch.no_grad():
        assert tuple(block(torch.rand(2, 8, 16, 16)).shape) == shape


def test_mixconv_channel_splits():
    assert [m.out_channels for m in MixConv2d(8, 16, (1, 3, 5)).m] == [6, 5, 5]  # even split, remainder first
    # equal parameters per kernel: 9 * c3 == 25 * c5 with c3 + c5 = 34 -> 25 and 9
    assert [m.out_channels for m in MixConv2d(8, 34, (3, 5), equal_ch=False).m] == [25, 9]


def test_contract_and_expand_are_inverse_pixel_shuffles():
    x = torch.arange(2 * 4 * 6 * 8, dtype=torch.float32).view(2, 4, 6, 8)
    y = Contract(2)(x)
    assert torch.equal(Expand(2)(y), x)
    # Contract's channel block (i, j) holds the pixels at row offset i and column offset j
    assert torch.equal(y[:, 4:8], x[:, :, 0::2, 1::2])


def test_ghost_bottleneck_residual_and_transformer_position_term():
    block = GhostBottleneck(8, 8).eval()
    for p in block.conv.parameters():
        nn.init.zeros_(p)  # the conv branch then contributes BatchNorm's zero bias: the identity shortcut is left
    x = torch.rand(1, 8, 4, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), x)
    c3tr = C3TR(8, 8, 1).eval()
    assert isinstance(c3tr.m.tr[0].ma, nn.MultiheadAttention) and c3tr.m.conv is None


def test_parse_model_channels_for_contract_expand_and_pooling():
    d = {"nc": 2, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30, 33, 23]],
         "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Contract", [2]], [-1, 1, "nn.MaxPool2d", [3, 1, 1]],
                      [-1, 1, "Expand", [2]], [-1, 1, "nn.ZeroPad2d", [[0, 0, 0, 0]]],
                      [-1, 1, "nn.ConvTranspose2d", [8, 2, 2]], [-1, 1, "Conv", [16, 3, 4]]],
         "head": [[[-1], 1, "Detect", ["nc", "anchors"]]]}
    model = DetectionModel(d)
    assert model.model[5].in_channels == 16 and model.model[5].out_channels == 8
    assert model.stride.tolist() == [4.0]  # /2 conv, /2 Contract, x2 Expand, x2 transposed conv, /4 conv


def test_detect_with_four_levels():
    det = DetectionModel("yolov5n6.yaml", nc=3).model[-1]
    assert isinstance(det, Detect) and det.nl == 4 and det.anchors.shape == (4, 3, 2)
