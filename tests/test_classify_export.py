"""Classifiers exported to TorchScript, ONNX and OpenVINO run in DetectMultiBackend and classify/ like PyTorch."""

from __future__ import annotations

import logging

import pytest
import torch

import export
from classify import predict as cls_predict
from classify import val as cls_val
from models.backends import DetectMultiBackend
from models.yolo import ClassificationModel, DetectionModel
from utils.classify_data import ClassifyTransforms, generate_shapes_cls

NAMES = {0: "circle", 1: "cross", 2: "hexagon", 3: "square", 4: "star", 5: "triangle"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A v7.0-layout classification checkpoint (random weights, trained-like BatchNorm statistics)."""
    tmp = tmp_path_factory.mktemp("clsexp")
    torch.manual_seed(0)
    model = ClassificationModel(model=DetectionModel("yolov5n-csppc.yaml"), nc=6).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.names = dict(NAMES)
    f = tmp / "cls.pt"
    torch.save({"model": model.half(), "ema": None, "epoch": -1, "optimizer": None}, f)
    data = generate_shapes_cls(tmp / "shapes-cls", train=1, val=2, imgsz=48, seed=5)
    return f, data


@torch.no_grad()
def test_onnx_and_torchscript_match_pytorch_in_dmb(checkpoint):
    f, data = checkpoint
    written = export.run(weights=f, imgsz=(64,), include=("torchscript", "onnx"))
    assert [p.rsplit(".", 1)[-1] for p in written] == ["torchscript", "onnx"]
    im0 = next((data / "val" / "star").glob("*.jpg"))
    import cv2

    x = ClassifyTransforms(64)(cv2.imread(str(im0)))[None]
    ref = DetectMultiBackend(f)(x)
    assert ref.shape == (1, 6)
    for w in written:
        dmb = DetectMultiBackend(w)
        assert dmb.names == NAMES
        y = dmb(x)
        assert y.shape == (1, 6)
        assert float((y - ref).abs().max()) < 1e-4


def test_val_and_predict_run_onnx_like_pt(checkpoint, tmp_path, caplog):
    f, data = checkpoint
    onnx_file = export.run(weights=f, imgsz=(64,), include=("onnx",))[0]
    r_pt = cls_val.run(data=str(data), weights=f, imgsz=64, batch_size=4, workers=0, project=str(tmp_path))
    r_onnx = cls_val.run(data=str(data), weights=onnx_file, imgsz=64, workers=0, project=str(tmp_path))
    assert r_pt[:2] == pytest.approx(r_onnx[:2], abs=1e-6)
    with caplog.at_level(logging.INFO, logger="yolov5"):
        out = cls_predict.run(weights=onnx_file, source=data / "val" / "cross", imgsz=(64,), save_txt=True,
                              project=str(tmp_path), name="p", conf_thres=0.5)  # detect.py's flag: reported
    assert len(list(out.glob("*.jpg"))) == 2 and len(list((out / "labels").glob("*.txt"))) == 2
    assert "post-process per image" in caplog.text
    assert "detection option --conf-thres 0.5 ignored: a classifier has no boxes" in caplog.text


@pytest.mark.slow
@torch.no_grad()
def test_openvino_export_matches(checkpoint):
    pytest.importorskip("openvino")
    f, _ = checkpoint
    written = export.run(weights=f, imgsz=(64,), include=("openvino",))
    x = torch.rand(1, 3, 64, 64)
    y = DetectMultiBackend(written[-1])(x)
    assert float((y - DetectMultiBackend(f)(x)).abs().max()) < 1e-3


@pytest.mark.slow
@torch.no_grad()
def test_int8_openvino_calibrates_on_centre_crops(checkpoint):
    """--int8 quantizes a classifier on its ImageFolder's train images, transformed as classify/val.py reads them."""
    pytest.importorskip("nncf")
    f, data = checkpoint
    written = export.run(weights=f, imgsz=(64,), include=("openvino",), int8=True, data=str(data), int8_images=6)
    assert written[-1].endswith("cls_int8_openvino_model")
    dmb = DetectMultiBackend(written[-1])
    assert dmb.names == NAMES  # the class folders of --data
    import cv2

    x = ClassifyTransforms(64)(cv2.imread(str(next((data / "train" / "hexagon").glob("*.jpg")))))[None]
    y, ref = dmb(x), DetectMultiBackend(f)(x)
    assert y.shape == (1, 6)
    assert float((y - ref).abs().max()) < 0.1 * float(ref.abs().max())
