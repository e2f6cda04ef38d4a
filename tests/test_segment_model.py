"""Segmentation models: v7.0's figures, Segment's outputs in training, inference and export, and fusing."""

import pytest
import torch

from models.common import Proto
from models.yolo import Segment, SegmentationModel
from utils.general import check_yaml
from utils.torch_utils import get_flops


@pytest.mark.parametrize(
    "cfg,params,gflops",
    [("yolov5n-seg.yaml", 1_991_549, 7.19), ("yolov5s-seg.yaml", 7_621_277, 26.58),
     ("yolov5m-seg.yaml", 21_990_397, 71.25), ("yolov5l-seg.yaml", 47_924_957, 148.37),
     ("yolov5x-seg.yaml", 88_819_517, 266.6)],
)
def test_figures_match_v7(cfg, params, gflops):
    model = SegmentationModel(cfg)
    assert sum(p.numel() for p in model.parameters()) == params
    assert get_flops(model, 640) == pytest.approx(gflops, abs=0.006)


def test_bare_name_found_in_models_segment():
    assert check_yaml("yolov5n-seg-csppc.yaml").replace("\\", "/").endswith("models/segment/yolov5n-seg-csppc.yaml")


def test_csppc_variants_replace_every_c3():
    for s in ("n", "s"):
        base, csppc = SegmentationModel(f"yolov5{s}-seg.yaml"), SegmentationModel(f"yolov5{s}-seg-csppc.yaml")
        assert not any(type(m).__name__ == "C3" for m in csppc.modules())
        n_c3 = sum(type(m).__name__ == "C3" for m in base.modules())
        assert sum(type(m).__name__ == "CSPPC" for m in csppc.modules()) == n_c3 == 8
        assert sum(p.numel() for p in csppc.parameters()) < sum(p.numel() for p in base.parameters())


def test_v7_state_dict_names_of_the_head():
    sd = SegmentationModel("yolov5n-seg.yaml", nc=3).state_dict()
    head = {k: tuple(v.shape) for k, v in sd.items() if k.startswith("model.24.")}
    assert head["model.24.anchors"] == (3, 3, 2)
    assert head["model.24.m.0.weight"] == (3 * (5 + 3 + 32), 64, 1, 1)
    assert head["model.24.proto.cv1.conv.weight"] == (64, 64, 3, 3)  # npr 256 x width 0.25
    assert head["model.24.proto.cv2.conv.weight"] == (64, 64, 3, 3)
    assert head["model.24.proto.cv3.conv.weight"] == (32, 64, 1, 1)
    assert "model.24.proto.cv3.bn.running_var" in head


def test_outputs_in_every_mode():
    model = SegmentationModel("yolov5n-seg.yaml", nc=2)
    head = model.model[-1]
    assert isinstance(head, Segment) and isinstance(head.proto, Proto)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(2, 3, 64, 96)
    levels, proto = model(x)
    assert [tuple(t.shape) for t in levels] == [(2, 3, 64 // s, 96 // s, 5 + 2 + 32) for s in (8, 16, 32)]
    assert tuple(proto.shape) == (2, 32, 16, 24)  # 1/4 of the input
    model.eval()
    with torch.no_grad():
        pred, proto_eval, raw = model(x)
        head.export = True
        exported = model(x)
        head.export = False
    cells = sum((64 // s) * (96 // s) for s in (8, 16, 32))
    assert tuple(pred.shape) == (2, 3 * cells, 39) and len(raw) == 3
    assert len(exported) == 2 and torch.equal(exported[0], pred) and torch.equal(exported[1], proto_eval)
    # boxes, objectness and classes are sigmoid outputs; mask coefficients are linear and take any sign
    assert 0 <= pred[..., 4:7].min() and pred[..., 4:7].max() <= 1
    assert pred[..., 7:].min() < 0 < pred[..., 7:].max()


def test_mask_coefficients_are_the_raw_convolution():
    model = SegmentationModel("yolov5n-seg.yaml", nc=2).eval()
    head = model.model[-1]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pred, _, raw = model(x)
    first = raw[0].view(1, -1, 39)  # level 0, in the same anchor-major order as the decoded output
    assert torch.allclose(pred[0, : first.shape[1], 7:], first[0, :, 7:])
    assert torch.allclose(pred[0, : first.shape[1], 4:7], first[0, :, 4:7].sigmoid())
    assert head.no == 39 and head.nm == 32 and head.npr == 64


def test_fused_matches_unfused():
    model = SegmentationModel("yolov5n-seg-csppc.yaml", nc=2).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pred, proto, _ = model(x)
        fpred, fproto, _ = model.fuse()(x)
    assert torch.allclose(pred, fpred, atol=1e-4, rtol=1e-3)
    assert torch.allclose(proto, fproto, atol=1e-4, rtol=1e-3)


def test_backward_through_masks_and_boxes():
    model = SegmentationModel("yolov5n-seg.yaml", nc=2)
    levels, proto = model(torch.rand(1, 3, 64, 64))
    (sum(t.sum() for t in levels) + proto.sum()).backward()
    assert model.model[-1].proto.cv3.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("fuse", [False, True])
def test_v7_format_checkpoint_loads_and_predicts_the_same(tmp_path, fuse):
    """A checkpoint as YOLOv5 v7.0 saves it: FP16 model whose Segment holds `detect = Detect.forward`."""
    from models.experimental import attempt_load
    from models.yolo import Detect
    from tests.conftest import randomize_bn

    torch.manual_seed(0)
    model = SegmentationModel("yolov5n-seg.yaml", nc=3)
    randomize_bn(model)
    model.model[-1].detect = Detect.forward  # v7.0's instance attribute: pickled as getattr(Detect, 'forward')
    model.names = {0: "a", 1: "b", 2: "c"}
    ckpt = {"epoch": -1, "best_fitness": None, "model": model.half(), "ema": None, "updates": None,
            "optimizer": None, "opt": {}, "git": None, "date": "2022-11-22T00:00:00"}
    torch.save(ckpt, tmp_path / "seg.pt")
    loaded = attempt_load(tmp_path / "seg.pt", device=torch.device("cpu"), fuse=fuse)
    assert isinstance(loaded.model[-1], Segment) and loaded.names == model.names
    x = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        ref_pred, ref_proto, _ = model.float().eval()(x)
        pred, proto, _ = loaded(x)
    assert torch.allclose(pred, ref_pred, rtol=1e-3, atol=1e-3 * float(ref_pred.abs().max()))
    assert torch.allclose(proto, ref_proto, rtol=1e-3, atol=1e-3 * float(ref_proto.abs().max()))


def test_safe_loader_refuses_other_getattr_calls(tmp_path):
    """The getattr that v7.0 segmentation checkpoints need (Detect.forward) and a fused Conv's forward_fuse are allowed,
    and nothing else."""
    import pickle

    from models.common import Conv
    from models.experimental import _allowed_getattr
    from models.yolo import Detect

    conv = Conv(3, 8)
    assert _allowed_getattr(Detect, "forward") is Detect.forward
    assert _allowed_getattr(conv, "forward_fuse") == conv.forward_fuse
    for args in ((Detect, "__init__"), (Detect, "forward", None), (torch, "load"), (conv, "forward"),
                 (Conv, "forward_fuse"), (conv, "forward_fuse", None), (torch.nn.Conv2d(3, 8, 1), "forward_fuse")):
        with pytest.raises(pickle.UnpicklingError, match="getattr"):
            _allowed_getattr(*args)
