"""The inference form BaseModel.fuse() builds: CSPPCFused, SPPFFused, DetectFused, channels-last on CPU."""

from copy import deepcopy

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from export import export_onnx
from models.common import CSPPC, SPPF
from models.fused import CSPPCFused, DetectFused, SPPFFused, inference_form
from models.yolo import Detect, DetectionModel
from models.yolo import run as yolo_run
from tests.conftest import randomize_bn
from utils.torch_utils import get_flops


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("c1, c2, n, e", [(16, 32, 1, 0.5), (32, 32, 2, 0.5), (24, 40, 3, 0.5), (8, 16, 0, 0.5),
                                          (32, 64, 2, 0.25)])
def test_block_equals_trained(c1, c2, n, e):
    torch.manual_seed(n)
    block = randomize_bn(CSPPC(c1, c2, n, e=e), seed=n).eval()
    fused = CSPPCFused.from_csppc(deepcopy(block))
    x = torch.randn(2, c1, 19, 14)  # odd sizes: the 3x3 borders matter
    with torch.no_grad():
        y0, y1 = block(x), fused(x)
    assert y1.shape == y0.shape
    assert rel_err(y1, y0) <= 1e-5
    c, q = block.c, (block.m[0].pconv1.dim_conv3 if n else 0)
    assert fused.cv2.in_channels == 2 * c + n * q  # not (2 + n) c
    # BatchNorm parameters go, and the n * (c - q) pass-through columns of cv2 fold away
    bn = sum(p.numel() for m in block.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    expected = sum(p.numel() for p in block.parameters()) - bn + 2 * c + c2 - n * (c - q) * c2
    assert sum(p.numel() for p in fused.parameters()) == expected


def test_block_keeps_a_model_activation():
    block = randomize_bn(CSPPC(16, 16, 1)).eval()
    block.cv1.act, block.cv2.act = nn.LeakyReLU(0.1), nn.Hardswish()
    fused = CSPPCFused.from_csppc(deepcopy(block))
    x = torch.randn(1, 16, 9, 9)
    with torch.no_grad():
        assert rel_err(fused(x), block(x)) <= 1e-5


def test_partial_convs_read_a_view_of_cv1():
    """The untouched channels are never copied: the first partial conv reads a slice of cv1's output in place."""
    fused = CSPPCFused.from_csppc(randomize_bn(CSPPC(16, 32, 2)).eval())
    seen = {}
    fused.m[0].register_forward_pre_hook(lambda m, i: seen.update(z=i[0]))
    fused.cv2.register_forward_pre_hook(lambda m, i: seen.update(cat=i[0]))
    with torch.no_grad():
        fused(torch.randn(1, 16, 8, 8))
    z = seen["z"]
    assert z.shape[1] == fused.q and z._base is not None and z._base.shape[1] == 2 * fused.c  # a view of y
    assert seen["cat"].shape[1] == 2 * fused.c + 2 * fused.q


def test_sppf_fused_is_identical():
    m = randomize_bn(SPPF(32, 48)).eval()
    f = SPPFFused.from_sppf(deepcopy(m))
    x = torch.randn(2, 32, 13, 11)
    with torch.no_grad():
        assert torch.equal(f(x), m(x))  # max-pooling in another memory layout picks the very same maxima
    assert inference_form(f) is None  # already in inference form: fuse() twice changes nothing


@pytest.mark.parametrize("export", [False, True])
def test_detect_fused_is_identical(export):
    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=3).eval()
    det = model.model[-1]
    det.export = export
    fused = DetectFused.from_detect(deepcopy(det))
    xs = [torch.randn(2, c, s, s + 2) for c, s in zip((64, 128, 256), (8, 4, 2))]
    with torch.no_grad():
        y0, y1 = det([x.clone() for x in xs]), fused([x.clone() for x in xs])
    assert len(y0) == len(y1) == (1 if export else 2)
    assert torch.equal(y1[0], y0[0])  # same operations in the same order: bitwise equal
    if not export:
        assert all(torch.equal(a, b) and b.is_contiguous() for a, b in zip(y0[1], y1[1]))
    fused.train()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(fused([x.clone() for x in xs]), det.train()(list(xs))))


@pytest.fixture(scope="module")
def csppc_models():
    torch.manual_seed(0)
    model = randomize_bn(DetectionModel("yolov5n-csppc.yaml", nc=3)).eval()
    return model, deepcopy(model).fuse()


def test_model_equals_trained(csppc_models):
    model, fused = csppc_models
    assert not any(isinstance(m, (CSPPC, nn.BatchNorm2d)) for m in fused.modules())
    assert sum(isinstance(m, CSPPCFused) for m in fused.modules()) == 8
    assert isinstance(fused.model[9], SPPFFused) and isinstance(fused.model[-1], DetectFused)
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        y0, y1 = model(x)[0], fused(x)[0]
        y2 = deepcopy(fused).fuse()(x)[0]  # fusing again is a no-op
    assert rel_err(y1, y0) <= 1e-5
    assert torch.equal(y2, y1)


@pytest.mark.parametrize("wants_grad", ["input", "params"])
def test_fused_model_under_autograd(csppc_models, wants_grad):
    """With grad mode on, the fast in-place decode would break autograd: the plain decode runs, same outputs."""
    model, fused = csppc_models
    fused = deepcopy(fused)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        y_trained, y_nograd = model(x)[0], fused(x)[0]
    if wants_grad == "input":
        fused.requires_grad_(False)
        x.requires_grad_(True)
    else:
        fused.requires_grad_(True)
    y, maps = fused(x)
    assert y.requires_grad and y.shape == y_trained.shape
    assert torch.equal(y.detach(), y_nograd)  # the plain decode's values are the fast decode's, bit for bit
    assert rel_err(y.detach(), y_trained) <= 1e-5
    y[..., 4].sum().backward()
    if wants_grad == "input":
        assert x.grad is not None and x.grad.shape == x.shape and float(x.grad.abs().sum()) > 0
    else:
        grads = [p.grad for p in fused.model[-1].parameters()]
        assert all(g is not None for g in grads) and float(sum(g.abs().sum() for g in grads)) > 0
        assert fused.model[2].cv1.weight.grad is not None  # reaches back through a CSPPCFused block


def test_fused_cpu_model_runs_channels_last(csppc_models):
    model, fused = csppc_models
    convs = [p for p in fused.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not any(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters()
                   if p.dim() == 4 and p.shape[1] > 1 and p.shape[2:] != (1, 1))  # the trained model keeps NCHW
    seen = {}
    fused.model[2].cv2.register_forward_hook(lambda m, i, o: seen.update(out=o))
    with torch.no_grad():
        y = fused(torch.rand(1, 3, 64, 64))[0]  # an NCHW image in, like detect.py and val.py feed it
    assert seen["out"].is_contiguous(memory_format=torch.channels_last)  # the first conv switched the layout
    assert y.is_contiguous()  # detections keep YOLOv5's (batch, anchors x cells, 5 + nc) layout


def test_fused_model_is_smaller(csppc_models):
    model, fused = csppc_models
    bn_only = deepcopy(model)
    for m in bn_only.modules():  # what fuse() did before CSPPC had an inference form: fold BatchNorm only
        if hasattr(m, "bn"):
            from utils.torch_utils import fuse_conv_and_bn

            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.forward_fuse
    n = [sum(p.numel() for p in x.parameters()) for x in (model, bn_only, fused)]
    assert n[0] > n[1] > n[2]
    flops = [get_flops(x, 640) for x in (model, bn_only, fused)]
    assert flops[0] > flops[1] > flops[2] > 0
    assert flops[2] / flops[1] < 0.95  # 3.48 -> 3.26 GFLOPs for yolov5n-csppc


def test_onnx_export_runs_in_ort_and_opencv(csppc_models, tmp_path):
    import onnxruntime

    fused = deepcopy(csppc_models[1])
    for m in fused.modules():
        if isinstance(m, Detect):
            m.export = True
    im = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        y = fused(im)[0].numpy()
    f = export_onnx(fused, im, tmp_path / "csppc.pt", opset=17, dynamic=False, simplify=False,
                    metadata={"stride": 32, "names": fused.names})
    graph = onnx.load(str(f)).graph
    inits = {i.name: i.dims for i in graph.initializer}
    detect_convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(f"/model.{fused.model[-1].i}/")]
    users = {i: n.op_type for n in graph.node for i in n.input}
    assert len(detect_convs) == 3 and all(users[n.output[0]] == "Sigmoid" for n in detect_convs)  # ORT fuses them
    for m in fused.model:
        if isinstance(m, CSPPCFused):  # its 1x1 convolutions read c1 (cv1), then 2c and n*q channels (cv2)
            nodes = [n for n in graph.node if n.name.startswith(f"/model.{m.i}/")]
            ins = sorted(inits[n.input[1]][1] for n in nodes if n.op_type == "Conv" and inits[n.input[1]][2] == 1)
            assert ins == sorted([m.cv1.in_channels, 2 * m.c, m.n * m.q]), (m.i, ins)
            assert "Split" not in {n.op_type for n in nodes}  # channel Slice: uneven Splits trouble OpenCV DNN

    session = onnxruntime.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    y_ort = session.run(None, {"images": im.numpy()})[0]
    net = cv2.dnn.readNetFromONNX(str(f))
    net.setInput(im.numpy())
    y_cv = net.forward()
    scale = np.abs(y).max()
    assert np.abs(y_ort - y).max() / scale <= 1e-5
    assert np.abs(y_cv - y).max() / scale <= 1e-4


def test_cli_reports_trained_and_fused(logs):
    yolo_run(cfg="yolov5n-csppc.yaml", imgsz=640, device="cpu")
    line = next(s for s in logs if "trained" in s and "fused" in s)
    assert "trained 1,480,445 parameters 3.55 GFLOPs" in line and "fused 1,392,205 parameters 3.26 GFLOPs" in line
