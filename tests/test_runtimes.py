"""The mobile runtimes (models/formats/ncnn.py, mnn.py): every task's tiny model exports, runs in DetectMultiBackend
close to PyTorch on a real image, runs in detect.py and val.py, and a damaged file fails naming itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import detect
import export
import val
from models.backends import DetectMultiBackend
from models.yolo import ClassificationModel, DetectionModel
from tests.conftest import randomize_bn
from tests.fixtures.inference import NAMES, assert_same_detections, make_checkpoint, read_labels, shapes_image
from utils.shapes import generate_shapes_dataset

IMGSZ = 64
DETECT_IMGSZ = 160  # detect.py's comparison: at 64 px random weights give only image-sized, overlapping boxes
# --include argument -> (the package its runner needs, the file or folder export.py writes for tiny.pt)
RUNTIMES = {"ncnn": ("ncnn", "{}_ncnn_model"), "mnn": ("MNN", "{}.mnn")}


def _needs(fmt: str) -> None:
    """Skip when the runtime is not installed (the converters are optional extras)."""
    package = RUNTIMES[fmt][0]
    if importlib.util.find_spec(package) is None or (fmt == "ncnn" and importlib.util.find_spec("pnnx") is None):
        pytest.skip(f"{fmt} needs the '{package}' package (pip install -r requirements-export.txt)")


def _classifier(path: Path) -> Path:
    """A classification checkpoint with trained-like BatchNorm statistics."""
    torch.manual_seed(0)
    model = randomize_bn(ClassificationModel(model=DetectionModel("yolov5n-csppc.yaml"), nc=3)).eval()
    model.names = dict(NAMES)
    torch.save({"model": model.half(), "ema": None, "epoch": -1, "optimizer": None}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint per task, each in its own folder (exports are written beside them)."""
    root = tmp_path_factory.mktemp("runtimes")
    folders = {t: root / t for t in ("detect", "segment", "classify")}
    for d in folders.values():
        d.mkdir()
    return {"detect": make_checkpoint(folders["detect"] / "tiny.pt"),
            "segment": make_checkpoint(folders["segment"] / "tiny.pt", cfg="yolov5n-seg.yaml"),
            "classify": _classifier(folders["classify"] / "tiny.pt")}


def _exported(fmt: str, weights: Path, imgsz: int = IMGSZ) -> Path:
    """The export of weights to fmt, written once per module."""
    f = weights.parent / RUNTIMES[fmt][1].format(weights.stem)
    if not f.exists():
        assert export.run(weights=weights, imgsz=(imgsz, imgsz), include=[fmt]) == [str(f)]
    return f


def _image() -> torch.Tensor:
    """The shapes image as a BCHW RGB batch of one."""
    im = shapes_image(IMGSZ, IMGSZ)[..., ::-1].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(im)).float()[None]


@pytest.mark.parametrize("task", ["detect", "segment", "classify"])
@pytest.mark.parametrize("fmt", list(RUNTIMES))
@torch.no_grad()
def test_export_runs_in_backend_like_pytorch(fmt, task, checkpoints):
    _needs(fmt)
    f = _exported(fmt, checkpoints[task])
    backend = DetectMultiBackend(f)
    assert getattr(backend, fmt) and not backend.pt
    assert backend.names == NAMES and backend.stride == 32
    im = _image().expand(2, -1, -1, -1)  # batch 2 on a batch-1 export: run image by image
    y, y_pt = backend(im), DetectMultiBackend(checkpoints[task])(im)
    y = y if isinstance(y, list) else [y]
    y_pt = list(y_pt[:2]) if task == "segment" else [y_pt[0] if isinstance(y_pt, (list, tuple)) else y_pt]
    assert len(y) == len(y_pt)
    for a, b in zip(y, y_pt):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-3 * max(float(b.abs().max()), 1.0)


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_detect_and_val_run_on_the_export(fmt, tmp_path):
    _needs(fmt)
    weights = make_checkpoint(tmp_path / "tiny.pt")
    f = _exported(fmt, weights, DETECT_IMGSZ)
    cv2.imwrite(str(tmp_path / "shapes.jpg"), shapes_image(DETECT_IMGSZ, DETECT_IMGSZ, seed=3))
    labels = {}
    for name, w in (("pt", weights), (fmt, f)):
        save_dir = detect.run(weights=w, source=tmp_path / "shapes.jpg", imgsz=(DETECT_IMGSZ, DETECT_IMGSZ),
                              conf_thres=0.3, project=tmp_path, name=name, save_txt=True, save_conf=True)
        labels[name] = read_labels(save_dir / "labels" / "shapes.txt", DETECT_IMGSZ, DETECT_IMGSZ)
    assert len(labels["pt"]) > 0
    assert_same_detections(labels[fmt], labels["pt"], px=1.0, what=fmt)

    root = generate_shapes_dataset(tmp_path / "shapes", train=1, val=4, imgsz=DETECT_IMGSZ, seed=1)
    data = tmp_path / "shapes.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": NAMES}))
    results = {name: val.run(data=str(data), weights=str(w), imgsz=DETECT_IMGSZ, batch_size=1, project=str(tmp_path),
                             name=f"val-{name}", plots=False)[0] for name, w in (("pt", weights), (fmt, f))}
    assert np.allclose(results[fmt][:4], results["pt"][:4], atol=0.002)  # P, R, mAP50, mAP50-95


def _damage(f: Path, tmp: Path, fmt: str) -> list[tuple[Path, str]]:
    """Damaged copies of an export, each with the words its error must contain."""
    if fmt == "mnn":
        data = f.read_bytes()
        (tmp / "cut.mnn").write_bytes(data[:len(data) // 2])
        (tmp / "text.mnn").write_text("not a model\n" * 20)
        return [(tmp / "cut.mnn", "corrupt or truncated"), (tmp / "text.mnn", "not an MNN model")]
    cases = []
    for name, edit in (("cutbin", "bin"), ("huge", "param"), ("text", "magic")):
        d = tmp / f"{name}_ncnn_model"
        d.mkdir()
        param, weights = f / "model.ncnn.param", f / "model.ncnn.bin"
        lines = param.read_text().splitlines()
        b = weights.read_bytes()
        if edit == "bin":
            (d / "model.ncnn.param").write_text(param.read_text())
            (d / "model.ncnn.bin").write_bytes(b[:len(b) // 2])
            cases.append((d, "truncated"))
        elif edit == "param":  # a header promising a billion layers must not make ncnn allocate for them
            (d / "model.ncnn.param").write_text("\n".join([lines[0], "999999999 1000", *lines[2:]]))
            (d / "model.ncnn.bin").write_bytes(b)
            cases.append((d, "header says 999999999 layers"))
        else:
            (d / "model.ncnn.param").write_text("<html>not a model</html>\n")
            (d / "model.ncnn.bin").write_bytes(b)
            cases.append((d, "not an ncnn .param file"))
    return cases


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_damaged_file_fails_naming_it(fmt, checkpoints, tmp_path):
    _needs(fmt)
    f = _exported(fmt, checkpoints["detect"])
    for damaged, words in _damage(f, tmp_path, fmt):
        with pytest.raises(ValueError, match=words) as e:
            DetectMultiBackend(damaged)
        assert damaged.name in str(e.value)
