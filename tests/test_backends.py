"""DetectMultiBackend on .pt and exports; AutoShape inputs and the Detections API."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import export
from models.backends import AutoShape, Detections, DetectMultiBackend
from tests.conftest import FIXTURES
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image
from utils.general import non_max_suppression, scale_boxes


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("backends") / "tiny.pt")


def test_lazy_names_in_models_common():
    import models.common as common

    assert common.DetectMultiBackend is DetectMultiBackend
    assert common.AutoShape is AutoShape and common.Detections is Detections
    with pytest.raises(AttributeError, match="has no attribute 'Nonexistent'"):
        common.Nonexistent  # noqa: B018


def test_pt_backend_attributes_and_upstream_output():
    model = DetectMultiBackend(FIXTURES / "upstream_v7_yolov5n_nc3.pt", device=torch.device("cpu"), fuse=False)
    assert model.pt and not (model.jit or model.onnx or model.xml or model.engine or model.fp16)
    assert model.stride == 32 and model.names == {0: "circle", 1: "square", 2: "triangle"}
    with torch.no_grad():
        pred, maps = model(torch.from_numpy(np.load(FIXTURES / "upstream_v7_input.npy")))
    expected = np.load(FIXTURES / "upstream_v7_output.npy")
    assert len(maps) == 3
    np.testing.assert_allclose(pred.numpy(), expected, rtol=1e-4, atol=1e-3)


def test_onnx_backend_reads_metadata_and_rejects_wrong_shape(weights):
    (f,) = export.run(weights=weights, imgsz=(96, 96), include=["onnx"])
    model = DetectMultiBackend(f)
    assert model.onnx and not model.pt and model.stride == 32 and model.names == NAMES
    y = model(torch.rand(1, 3, 96, 96))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 3 * (144 + 36 + 9), 8)
    with pytest.raises(ValueError, match=r"exported for input shape \(1, 3, 96, 96\).*--imgsz 96 96"):
        model(torch.rand(1, 3, 128, 128))


def test_unsupported_unknown_and_missing_weights(tmp_path):
    for name, err, msg in (("m.engine", NotImplementedError, "TensorRT models are not supported"),
                           ("m.pb", NotImplementedError, "TensorFlow GraphDef models are not supported"),
                           ("m.xyz", ValueError, "unknown model format"),
                           ("m.onnx", FileNotFoundError, "weights not found")):
        with pytest.raises(err, match=msg):
            DetectMultiBackend(tmp_path / name)


@pytest.fixture(scope="module")
def autoshape(weights):
    model = AutoShape(DetectMultiBackend(weights), verbose=False)
    model.conf = 0.3
    return model


def test_autoshape_same_detections_from_every_input_type(autoshape, tmp_path):
    bgr = shapes_image(160, 160)
    file = tmp_path / "im.png"
    Image.fromarray(bgr[..., ::-1]).save(file)
    rgb = bgr[..., ::-1].copy()
    results = autoshape([str(file), Image.open(file), rgb, file], size=160)
    assert isinstance(results, Detections) and len(results) == 4
    assert results.files == ["im.jpg", "im.jpg", "image2.jpg", "im.jpg"]
    ref = results.xyxy[0]
    assert len(ref) > 0
    for boxes in results.xyxy[1:]:
        torch.testing.assert_close(boxes, ref)
    # the batch equals a direct forward of the letterboxed tensor through the wrapped model, then NMS
    x = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float()[None] / 255
    with torch.no_grad():
        direct = non_max_suppression(autoshape.model(x), 0.3, 0.45, max_det=1000)[0]
    scale_boxes((160, 160), direct[:, :4], (160, 160))  # same shape, so this only clips to the image
    torch.testing.assert_close(ref, direct, atol=1e-3, rtol=1e-5)  # batch of 4 vs 1: float rounding only


def test_detections_formats_pandas_and_text(autoshape):
    im = shapes_image(120, 200)[..., ::-1].copy()
    r = autoshape(im, size=160)
    xyxy, xywhn = r.xyxy[0], r.xywhn[0]
    assert len(xyxy) > 0 and r.s == (1, 3, 96, 160)
    assert (xyxy[:, [0, 2]] <= 200).all() and (xyxy[:, [1, 3]] <= 120).all()
    np.testing.assert_allclose(xywhn[:, 0].numpy(), ((xyxy[:, 0] + xyxy[:, 2]) / 2 / 200).numpy(), rtol=1e-6)
    np.testing.assert_allclose(xywhn[:, 3].numpy(), ((xyxy[:, 3] - xyxy[:, 1]) / 120).numpy(), rtol=1e-6)
    df = r.pandas().xyxy[0]
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["xmin", "ymin", "xmax", "ymax", "confidence", "class", "name"]
    assert df["name"].tolist() == [NAMES[int(c)] for c in xyxy[:, 5]]
    counts = {NAMES[int(c)]: int((xyxy[:, 5] == c).sum()) for c in xyxy[:, 5].unique()}
    assert all(f"{n} {k}" in str(r) for k, n in counts.items()) and "120x200" in str(r)


def test_detections_save_crop_render(autoshape, tmp_path, caplog):
    im = shapes_image(160, 160)[..., ::-1].copy()
    r = autoshape([im, im.copy()], size=160)
    n = len(r.xyxy[0])
    with caplog.at_level(logging.INFO, logger="yolov5"):
        r.print()
        save_dir = r.save(save_dir=tmp_path / "exp")
    assert "image 1/2: 160x160" in caplog.text
    assert sorted(p.name for p in save_dir.iterdir()) == ["image0.jpg", "image1.jpg"]
    crops = r.crop(save_dir=tmp_path / "exp")
    assert len(crops) == 2 * n and all(c["im"].ndim == 3 for c in crops)
    assert sum(1 for _ in (tmp_path / "exp2" / "crops").rglob("*.jpg")) == 2 * n
    before = r.ims[0].copy()
    rendered = r.render()
    assert len(rendered) == 2 and (rendered[0] != before).any()  # boxes were drawn


def test_autoshape_bad_inputs(autoshape, tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found"):
        autoshape(str(tmp_path / "none.jpg"))
    with pytest.raises(TypeError, match="expected a path, URL, PIL image or numpy array"):
        autoshape([1234])
    with pytest.raises(ConnectionError, match="Could not fetch"):
        autoshape("http://127.0.0.1:9/im.jpg")
