"""LiteRT models run without the converter: the committed exports of tests/fixtures/tflite (tests/fixtures/tflite/
make.py) load in DetectMultiBackend with their metadata, match their PyTorch checkpoints, run in every task's predict
and val scripts, and a damaged file fails naming it. Only ai-edge-litert (requirements.txt) is needed, not litert-torch.
The INT8 detection export (export.py --int8, calibrated on generated shapes images) is held to int8's error.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import detect
import val
from classify import predict as cls_predict
from classify import val as cls_val
from models.backends import DetectMultiBackend
from segment import predict as seg_predict
from segment import val as seg_val
from tests.fixtures.inference import NAMES, shapes_image
from utils.classify_data import generate_shapes_cls
from utils.shapes import generate_shapes_dataset

pytest.importorskip("ai_edge_litert", reason="LiteRT models need the 'ai-edge-litert' package (requirements.txt)")

FIXTURES = Path(__file__).parent / "fixtures" / "tflite"
# export -> (its checkpoint, task, image size it was exported at, relative tolerance against PyTorch)
EXPORTS = {"detect.tflite": ("detect.pt", "detect", 96, 1e-3),
           "detect-fp16.tflite": ("detect.pt", "detect", 96, 1e-2),
           "segment.tflite": ("segment.pt", "segment", 64, 1e-3),
           "classify.tflite": ("classify.pt", "classify", 64, 1e-3)}


def _image(size: int) -> torch.Tensor:
    """The shapes image as a BCHW RGB batch of one."""
    im = shapes_image(size, size)[..., ::-1].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(im)).float()[None]


def _outputs(y, task: str) -> list[torch.Tensor]:
    """The outputs an export has, from a backend's result: (predictions, prototypes) for segmentation, else one."""
    if task == "segment":
        return list(y[:2])
    return [y[0] if isinstance(y, (list, tuple)) else y]


def _data_yaml(root: Path, task: str) -> Path:
    """A data YAML over tiny generated shapes images (boxes, or polygons for segmentation) with the fixtures' names."""
    imgsz = EXPORTS[f"{task}.tflite"][2]
    images = generate_shapes_dataset(root / "shapes", train=1, val=4, imgsz=imgsz, seed=1, segments=task == "segment")
    f = root / "shapes.yaml"
    f.write_text(yaml.safe_dump({"path": str(images), "train": "images/train", "val": "images/val", "names": NAMES}))
    return f


@pytest.mark.parametrize("name", list(EXPORTS))
@torch.no_grad()
def test_fixture_loads_with_its_metadata_and_matches_pytorch(name):
    ckpt, task, imgsz, rel = EXPORTS[name]
    backend = DetectMultiBackend(FIXTURES / name)
    assert backend.tflite and not backend.pt
    assert backend.stride == 32 and backend.names == NAMES
    assert backend.meta["task"] == task and backend.meta["shape"] == [1, 3, imgsz, imgsz]
    assert backend.meta["half"] == name.endswith("-fp16.tflite")
    im = _image(imgsz)
    y, y_pt = _outputs(backend(im), task), _outputs(DetectMultiBackend(FIXTURES / ckpt)(im), task)
    assert len(y) == len(y_pt)
    for a, b in zip(y, y_pt):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= rel * max(float(b.abs().max()), 1.0)


def _runs(task: str) -> tuple[tuple[str, str], ...]:
    """(run name, weights) of the task's PyTorch checkpoint and of its LiteRT export, the order the tests run them."""
    return ("pt", str(FIXTURES / f"{task}.pt")), ("tflite", str(FIXTURES / f"{task}.tflite"))


def _val_options(root: Path, task: str) -> dict:
    """val.run's options for both runs: task "speed" letterboxes the val split to --imgsz for both, where "val"
    would pad PyTorch's batches by half a stride (rectangular batches); FP32 PyTorch, not bf16."""
    return dict(data=str(_data_yaml(root, task)), imgsz=EXPORTS[f"{task}.tflite"][2], batch_size=1,
                project=str(root), plots=False, half=False, task="speed")


def test_detect_and_val_run_on_the_fixture(tmp_path):
    cv2.imwrite(str(tmp_path / "shapes.jpg"), shapes_image(96, 96, seed=3))
    labels = {}
    for name, w in _runs("detect"):
        save_dir = detect.run(weights=w, source=tmp_path / "shapes.jpg", imgsz=(96, 96), conf_thres=0.3,
                              project=tmp_path, name=name, save_txt=True, save_conf=True)
        labels[name] = np.loadtxt(save_dir / "labels" / "shapes.txt", ndmin=2)
    # rows in NMS's order, by confidence: this tiny model gives image-sized boxes, several of them alike, which
    # assert_same_detections cannot pair one to one; their confidences lie further apart (9.6e-4 or more) than the
    # two runtimes differ (under 1e-4, export.py's check), so the order holds
    assert len(labels["pt"]) > 0 and labels["tflite"].shape == labels["pt"].shape
    assert np.allclose(labels["tflite"], labels["pt"], atol=1e-3)  # class, normalised xywh, confidence
    kw = _val_options(tmp_path, "detect")
    results = {name: val.run(weights=w, name=f"val-{name}", **kw)[0] for name, w in _runs("detect")}
    assert results["pt"][1] > 0  # some boxes found: the figures compared are not all zero
    assert np.allclose(results["tflite"][:4], results["pt"][:4], rtol=0, atol=1e-4)  # P, R, mAP50, mAP50-95


def test_segment_predict_and_val_run_on_the_fixture(tmp_path):
    kw = _val_options(tmp_path, "segment")
    results = {name: seg_val.run(weights=w, name=f"val-{name}", **kw)[0] for name, w in _runs("segment")}
    assert results["pt"][1] > 0
    assert np.allclose(results["tflite"][:8], results["pt"][:8], rtol=0, atol=1e-4)  # box, mask P R mAP50 mAP50-95
    kw = dict(source=str(tmp_path / "shapes" / "images" / "val"), imgsz=(64, 64), conf_thres=0.3, save_txt=True,
              save_conf=True, project=str(tmp_path))
    out = {name: seg_predict.run(weights=w, name=name, **kw) for name, w in _runs("segment")}
    assert len(list(out["tflite"].glob("*.jpg"))) == 4
    rows = {name: {p.name: [r.split() for r in p.read_text().splitlines()] for p in d.glob("labels/*.txt")}
            for name, d in out.items()}
    assert any(rows["pt"].values()) and rows["tflite"].keys() == rows["pt"].keys()
    for file, ref in rows["pt"].items():  # the same masks: each row a class, its polygon and its confidence
        got = rows["tflite"][file]
        assert [r[0] for r in got] == [r[0] for r in ref]
        assert np.allclose([float(r[-1]) for r in got], [float(r[-1]) for r in ref], atol=1e-3)


def test_classify_predict_and_val_run_on_the_fixture(tmp_path):
    root = generate_shapes_cls(tmp_path / "shapes-cls", train=1, val=2, imgsz=64, seed=3)
    for split in ("train", "val"):  # keep the fixtures' three classes (circle, square, triangle, in that order)
        for d in (root / split).iterdir():
            if d.name not in NAMES.values():
                shutil.rmtree(d)
    kw = dict(source=str(root / "val" / "circle"), imgsz=(64,), save_txt=True, project=str(tmp_path))
    out = {name: cls_predict.run(weights=w, name=name, **kw) for name, w in _runs("classify")}
    texts = {name: sorted(p.read_text() for p in d.glob("labels/*.txt")) for name, d in out.items()}
    assert len(texts["tflite"]) == 2
    for a, b in zip(texts["tflite"], texts["pt"]):  # the same top-5 classes, probabilities within 1e-3
        rows_a, rows_b = [r.split() for r in a.splitlines()], [r.split() for r in b.splitlines()]
        assert [r[1] for r in rows_a] == [r[1] for r in rows_b]
        assert np.allclose([float(r[0]) for r in rows_a], [float(r[0]) for r in rows_b], atol=1e-3)
    acc = {name: cls_val.run(data=str(root), weights=w, imgsz=64, batch_size=2, workers=0, project=str(tmp_path),
                             name=f"val-{name}")[:2] for name, w in _runs("classify")}
    assert acc["tflite"] == pytest.approx(acc["pt"], abs=1e-6) and acc["pt"][1] > 0  # top-1 and top-5 on 6 images


@torch.no_grad()
def test_int8_fixture_is_quantized_with_float_io_and_close_to_pytorch(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    f = FIXTURES / "detect-int8.tflite"
    backend = DetectMultiBackend(f)
    assert backend.tflite and backend.names == NAMES and backend.meta["int8"] == "static_wi8_ai8"
    interpreter = Interpreter(model_path=str(f))
    tensors = interpreter.get_tensor_details()
    assert np.int8 in {d["dtype"] for d in tensors}  # the backbone and neck compute in int8 ...
    head = {d["dtype"] for d in tensors if "DetectFused" in d["name"]}
    assert head and np.int8 not in head  # ... the head, whose output mixes pixel boxes and 0-1 scores, in float
    assert interpreter.get_input_details()[0]["dtype"] == interpreter.get_output_details()[0]["dtype"] == np.float32
    im = _image(96)
    y, y_pt = _outputs(backend(im), "detect")[0], _outputs(DetectMultiBackend(FIXTURES / "detect.pt")(im), "detect")[0]
    assert y.shape == y_pt.shape and not torch.equal(y, y_pt)  # quantized: not the FP32 model
    d = (y - y_pt).abs()
    assert float(d[..., :4].max()) <= 0.02 * float(y_pt[..., :4].abs().max())  # boxes within 2% of the largest
    assert float(d[..., 4:].max()) <= 0.01  # objectness and class scores
    cv2.imwrite(str(tmp_path / "shapes.jpg"), shapes_image(96, 96, seed=3))
    save_dir = detect.run(weights=str(f), source=tmp_path / "shapes.jpg", imgsz=(96, 96), conf_thres=0.3,
                          project=tmp_path, name="int8", save_txt=True)
    assert (save_dir / "shapes.jpg").is_file() and (save_dir / "labels" / "shapes.txt").is_file()
    kw = _val_options(tmp_path, "detect")
    results = {name: val.run(weights=str(FIXTURES / w), name=f"val-{name}", **kw)[0]
               for name, w in (("pt", "detect.pt"), ("int8", "detect-int8.tflite"))}
    assert np.allclose(results["int8"][:4], results["pt"][:4], rtol=0, atol=0.05)  # P, R, mAP50, mAP50-95


@torch.no_grad()
def test_v7_layout_runs_with_nhwc_input_normalised_boxes_and_literal_metadata(tmp_path):
    """YOLOv5 v7.0's TFLite files (tests/fixtures/tflite/make_v7.py): NHWC input, boxes divided by the image size, a
    dict literal as meta.txt, and in -int8.tflite int8 input and output; each gives PyTorch's pixel boxes."""
    from ai_edge_litert.interpreter import Interpreter

    im = _image(96)
    y_pt = _outputs(DetectMultiBackend(FIXTURES / "detect.pt")(im), "detect")[0]
    backend = DetectMultiBackend(FIXTURES / "v7-detect.tflite")
    assert backend.tflite and backend.names == NAMES and backend.stride == 32  # names keyed by int, as v7.0 writes
    y = _outputs(backend(im), "detect")[0]
    assert y.shape == y_pt.shape and float((y - y_pt).abs().max()) <= 1e-3 * float(y_pt.abs().max())
    f = FIXTURES / "v7-detect-int8.tflite"
    out = Interpreter(model_path=str(f)).get_output_details()[0]
    assert out["dtype"] == np.int8
    step = out["quantization"][0]  # one int8 step of the (normalised) output
    d = (_outputs(DetectMultiBackend(f)(im), "detect")[0] - y_pt).abs()
    assert float(d[..., :4].max()) <= step * 96 and float(d[..., 4:].max()) <= step  # quantized in, dequantized out
    cv2.imwrite(str(tmp_path / "shapes.jpg"), shapes_image(96, 96, seed=3))
    labels = {}
    for name, w in (("pt", FIXTURES / "detect.pt"), ("v7", FIXTURES / "v7-detect.tflite")):
        save_dir = detect.run(weights=str(w), source=tmp_path / "shapes.jpg", imgsz=(96, 96), conf_thres=0.3,
                              project=tmp_path, name=name, save_txt=True, save_conf=True)
        labels[name] = np.loadtxt(save_dir / "labels" / "shapes.txt", ndmin=2)
    assert len(labels["pt"]) and np.allclose(labels["v7"], labels["pt"], atol=1e-3)


def test_metadata_that_is_not_a_dict_literal_is_read_as_none_and_never_run(tmp_path, caplog):
    from models.formats.tflite import tflite_metadata

    marker = tmp_path / "ran"
    for text in (f"__import__('pathlib').Path({str(marker)!r}).touch()", "[1, 2]", "{'stride': 32,"):
        f = tmp_path / "m.tflite"
        shutil.copy(FIXTURES / "v7-detect.tflite", f)
        with zipfile.ZipFile(f) as z:
            names = z.namelist()
        assert names == ["meta.txt"]
        data = f.read_bytes()
        f.write_bytes(data[:data.rfind(b"PK\x03\x04")])  # the model alone, then a meta.txt with this text
        with zipfile.ZipFile(f, "a") as z:
            z.writestr("meta.txt", text)
        assert tflite_metadata(f) == {}
        assert "meta.txt is neither JSON nor a dict literal" in caplog.text
    assert not marker.exists()


def test_damaged_fixture_fails_naming_it(tmp_path):
    data = (FIXTURES / "detect.tflite").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[:len(data) // 2])
    shutil.copy(FIXTURES / "detect.pt", tmp_path / "checkpoint.tflite")  # a zip archive, not a FlatBuffer
    for f, words in ((tmp_path / "cut.tflite", "corrupt or truncated"),
                     (tmp_path / "checkpoint.tflite", "not a TFLite model")):
        with pytest.raises(ValueError, match=words) as e:
            DetectMultiBackend(f)
        assert str(f) in str(e.value)
