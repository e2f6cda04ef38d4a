"""models/formats/tflite.py: the contiguous copy litert-torch converts, FP16 exports on CPU, and --half's refusals.

The runtime-wide checks (every task exports, runs close to PyTorch, detect.py and val.py, damaged files) are in
tests/test_runtimes.py with ncnn's and MNN's.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

import export
from models.backends import DetectMultiBackend
from models.experimental import attempt_load
from models.formats.tflite import standard_layout, tflite_path
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image
from utils.int8_accuracy import AccuracyMetric
from utils.shapes import generate_shapes_dataset

IMGSZ = 64


def _needs_litert() -> None:
    """Skip when the optional converter (requirements-export.txt) or the runtime is missing."""
    for package in ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"TFLite export needs the '{package}' package (pip install -r requirements-export.txt)")


def _tiny_shapes_data(tmp_path, train: int, val: int):
    """A dataset YAML over a generated shapes dataset of IMGSZ images in tmp_path."""
    root = generate_shapes_dataset(tmp_path / "shapes", train=train, val=val, imgsz=IMGSZ, seed=1)
    f = tmp_path / "shapes.yaml"
    f.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": NAMES}))
    return f


def _image(size: int = IMGSZ) -> torch.Tensor:
    """The shapes image as a BCHW RGB batch of one."""
    im = shapes_image(size, size)[..., ::-1].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(im)).float()[None]


def _pair() -> nn.Module:
    """Two same-shape 3x3 convolutions in a row with channels-last weights, as a fused CPU model stores them."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.SiLU(), nn.Conv2d(8, 8, 3, 1, 1)).eval()
    for p in m.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return m


@torch.no_grad()
def test_standard_layout_copies_and_leaves_the_model_as_it_was(tmp_path):
    model = attempt_load(str(make_checkpoint(tmp_path / "tiny.pt")), device=torch.device("cpu"), fuse=True).eval()
    im = _image()
    y = model(im)[0]
    copy = standard_layout(model)
    assert all(p.is_contiguous() for p in copy.parameters())
    head = copy.model[-1]
    assert head.anchor_grid and all(t.is_contiguous() for t in head.anchor_grid + head.grid)
    weights = [p for p in model.parameters() if p.dim() == 4]  # the model the other formats export is untouched
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert torch.equal(model(im)[0], y)
    assert torch.allclose(copy(im)[0], y, rtol=1e-5, atol=1e-4)


@torch.no_grad()
def test_same_shape_convolutions_keep_their_own_weights():
    _needs_litert()
    import litert_torch

    m, x = _pair(), torch.rand(1, 8, 16, 16)
    y = m(x)
    y_lite = torch.as_tensor(np.asarray(litert_torch.convert(standard_layout(m), (x,))(x)))
    assert float((y_lite - y).abs().max()) < 1e-5 * max(float(y.abs().max()), 1.0)


@torch.no_grad()
def test_half_on_cpu_writes_fp16_weights_close_to_pytorch(tmp_path):
    _needs_litert()
    weights = make_checkpoint(tmp_path / "tiny.pt")
    fp32, fp16 = (export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["tflite"], half=h)[0]
                  for h in (False, True))
    assert fp16 == str(tflite_path(weights, half=True)) and fp16.endswith("tiny-fp16.tflite")
    with zipfile.ZipFile(fp16) as z:
        assert json.loads(z.read("meta.txt"))["half"] is True
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=fp16).get_tensor_details()
    assert any(d["dtype"] == np.float16 for d in details)  # weights stored in float16, the graph dequantizes them
    assert tmp_path.joinpath("tiny-fp16.tflite").stat().st_size < 0.6 * tmp_path.joinpath("tiny.tflite").stat().st_size
    im = _image()
    y_pt = DetectMultiBackend(weights)(im)[0]
    for f, rel in ((fp32, 1e-3), (fp16, 1e-2)):
        backend = DetectMultiBackend(f)
        assert backend.tflite and backend.stride == 32
        y = backend(im)
        y = y[0] if isinstance(y, list) else y
        assert y.shape == y_pt.shape
        assert float((y - y_pt).abs().max()) <= rel * float(y_pt.abs().max())


def test_half_on_cpu_refuses_formats_that_need_fp16_pytorch(tmp_path):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match=r"of torchscript onnx need a GPU .* --include openvino coreml tflite"):
        export.run(weights=weights, include=["tflite", "onnx", "torchscript"], half=True, device="cpu")
    assert not list(tmp_path.glob("tiny*.*"))[1:]  # refused before anything was written (only tiny.pt is there)


@torch.no_grad()
def test_openvino_half_on_cpu_compresses_to_fp16(tmp_path):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    f32 = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["openvino"])[0]
    size32 = sum(p.stat().st_size for p in tmp_path.glob("tiny_openvino_model/*.bin"))
    f16 = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["openvino"], half=True)[0]
    assert f16 == f32  # v7.0's folder name either way
    size16 = sum(p.stat().st_size for p in tmp_path.glob("tiny_openvino_model/*.bin"))
    assert size16 < 0.6 * size32
    y_pt, y = DetectMultiBackend(weights)(_image())[0], DetectMultiBackend(f16)(_image())
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert float((torch.as_tensor(y) - y_pt).abs().max()) <= 1e-2 * float(y_pt.abs().max())


def test_accuracy_benchmark_validates_pytorch_and_both_exports(tmp_path, caplog):
    _needs_litert()
    from benchmarks import tflite_accuracy

    weights = make_checkpoint(tmp_path / "tiny.pt")
    tiny_data = _tiny_shapes_data(tmp_path, train=1, val=4)
    with caplog.at_level(logging.INFO, logger="yolov5"):
        (row,) = tflite_accuracy.run(weights=(str(weights),), data=str(tiny_data), imgsz=IMGSZ,
                                     project=str(tmp_path / "v"))
    assert {"PyTorch", "FP32", "FP16"} <= set(row) and all(0 <= row[k] <= 1 for k in ("PyTorch", "FP32", "FP16"))
    assert (tmp_path / "tiny.tflite").is_file() and (tmp_path / "tiny-fp16.tflite").is_file()
    assert "LiteRT mAP50-95 at 64 px" in caplog.text and f"{row['FP32'] - row['PyTorch']:+8.4f}" in caplog.text


def test_int8_benchmark_keeps_float_io_and_scores_every_recipe(tmp_path, caplog):
    _needs_litert()
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks import tflite_int8

    weights = make_checkpoint(tmp_path / "tiny.pt")
    tiny_data = _tiny_shapes_data(tmp_path, train=2, val=2)
    with caplog.at_level(logging.INFO, logger="yolov5"):
        out = tflite_int8.run(weights=[str(weights)], data=str(tiny_data), imgsz=IMGSZ, time_imgsz=IMGSZ, images=2,
                              runs=1, warmup=0, project=str(tmp_path / "q"))
    row = out[str(weights)]
    assert set(row["map"]) == set(row["ms"]) == {"FP32", *tflite_int8.RECIPES, tflite_int8.EXPORT}
    assert all(0 <= v <= 1 for v in row["map"].values()) and all(v > 0 for v in row["ms"].values())
    quantized = [tmp_path / "q" / f"tiny_64-{r}.tflite" for r in ("static_wi8_ai8", "dynamic_wi8_afp32", "int8")]
    for f in quantized:  # DetectMultiBackend feeds and reads float32: the recipe must not quantize the model's I/O
        interpreter = Interpreter(model_path=str(f))
        assert interpreter.get_input_details()[0]["dtype"] == np.float32
        assert interpreter.get_output_details()[0]["dtype"] == np.float32
    assert "LiteRT export.py --int8" in caplog.text


def _tensor_types(f) -> tuple[set, set]:
    """The dtypes of a LiteRT model's tensors, and of the tensors its head's ops (scoped DetectFused) produce."""
    from ai_edge_litert.interpreter import Interpreter

    tensors = Interpreter(model_path=str(f)).get_tensor_details()
    return {d["dtype"] for d in tensors}, {d["dtype"] for d in tensors if "DetectFused" in d["name"]}


@torch.no_grad()
def test_int8_calibrates_on_data_and_keeps_float_io_and_head(tmp_path, caplog):
    _needs_litert()
    weights = make_checkpoint(tmp_path / "tiny.pt")
    data = _tiny_shapes_data(tmp_path, train=3, val=2)
    with caplog.at_level(logging.INFO, logger="yolov5"):
        (f,) = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["tflite"], int8=True, data=str(data),
                          int8_images=3)
    assert f == str(tflite_path(weights, int8=True)) and f.endswith("tiny-int8.tflite")  # v7.0's name
    assert "calibrated on 3 images" in caplog.text and "mAP50-95 on 2 val images: FP32" in caplog.text
    with zipfile.ZipFile(f) as z:
        meta = json.loads(z.read("meta.txt"))
    assert meta["int8"] == "static_wi8_ai8" and meta["half"] is False and meta["task"] == "detect"
    types, head = _tensor_types(f)
    assert np.int8 in types  # weights and activations in int8 ...
    assert head and np.int8 not in head  # ... but not in the head, whose output mixes pixel boxes and 0-1 scores
    backend = DetectMultiBackend(f)
    assert backend.tflite and backend.stride == 32 and backend.names == NAMES
    im = _image()
    y, y_pt = backend(im), DetectMultiBackend(weights)(im)[0]
    y = y[0] if isinstance(y, list) else y
    assert y.shape == y_pt.shape and not torch.equal(y, y_pt)
    assert float((y - y_pt).abs().max()) <= 0.05 * float(y_pt.abs().max())  # int8 error, not a different model


def test_int8_falls_back_to_dynamic_range_when_static_loses_more_than_max_drop(tmp_path, caplog):
    """A metric that any quantization error lowers (agreement with FP32's output on a real image) and a bound of 0:
    static's drop is over it, so the dynamic-range model is scored and kept when it agrees better."""
    _needs_litert()
    from models.formats.litert import LiteRTModel
    from models.formats.tflite import convert
    from models.formats.tflite_int8 import quantize_within_drop

    model = attempt_load(str(make_checkpoint(tmp_path / "tiny.pt")), device=torch.device("cpu"), fuse=True).eval()
    im = _image()
    with torch.no_grad():
        for _ in range(2):
            y_pt = model(im)[0].numpy()
    scores = []

    def agreement(compiled, items):
        scores.append(-float(np.abs(compiled(im.numpy())[0] - y_pt).max()))
        return scores[-1]

    metric = AccuracyMetric("agreement", [0], agreement, lambda i: im.numpy())
    with caplog.at_level(logging.INFO, logger="yolov5"):
        fp32 = convert(model, im)
        kept, recipe = quantize_within_drop(fp32, model, [im.numpy()] * 2, metric, max_drop=0.0)
    fp32_score, static, dynamic = scores  # scored in this order
    assert fp32_score == pytest.approx(0.0, abs=1e-3) and static < fp32_score and dynamic < fp32_score
    assert "dynamic-range INT8 (dynamic_wi8_afp32)" in caplog.text
    assert recipe == ("dynamic_wi8_afp32" if dynamic > static else "static_wi8_ai8")
    assert agreement(LiteRTModel(model_content=kept), [0]) == max(static, dynamic)  # the bytes of the recipe named
    assert "over --int8-max-drop 0.0 with both recipes" in caplog.text


def test_int8_refusals_name_the_formats_it_quantizes(tmp_path):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match="--int8 needs --data"):
        export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["tflite"], int8=True)
    with pytest.raises(ValueError, match="quantizes OpenVINO and TensorFlow Lite exports only; add --include "
                                         "openvino or tflite"):
        export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["onnx"], int8=True, data="shapes.yaml")
