"""The mobile runtimes (models/formats/ncnn.py, mnn.py, tflite.py): every task's tiny model exports, runs in
DetectMultiBackend close to PyTorch on a real image, runs in detect.py and val.py; a damaged file fails naming it."""

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
from engine.exporter import unexportable_layer
from models.backends import DetectMultiBackend
from models.experimental import attempt_load
from models.formats.ncnn import NCNN
from models.formats.torchscript import TORCHSCRIPT
from tests.fixtures.inference import (
    NAMES,
    assert_same_detections,
    make_checkpoint,
    make_classifier,
    read_labels,
    shapes_image,
)
from utils.shapes import generate_shapes_dataset

IMGSZ = 64
DETECT_IMGSZ = 160  # detect.py's comparison: at 64 px random weights give only image-sized, overlapping boxes
# --include argument -> (the package its runner needs, the file or folder export.py writes for tiny.pt)
RUNTIMES = {"ncnn": ("ncnn", "{}_ncnn_model"), "mnn": ("MNN", "{}.mnn"), "tflite": ("litert_torch", "{}.tflite")}
EXTRA = {"ncnn": "pnnx", "tflite": "ai_edge_litert"}  # the converter or runtime that comes with the first


def _needs(fmt: str) -> None:
    """Skip when the runtime is not installed (the converters are optional extras)."""
    for package in (RUNTIMES[fmt][0], EXTRA.get(fmt, RUNTIMES[fmt][0])):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{fmt} needs the '{package}' package (pip install -r requirements-export.txt)")


# yolov5n-csppc for every runtime: its n=2 CSPPC blocks run two same-shape partial 3x3 convolutions in a row, the case
# that litert-torch 0.10 got wrong from channels-last weights (models/formats/tflite.py: standard_layout)
CFG = dict.fromkeys(RUNTIMES, "yolov5n-csppc.yaml")
VALIDATED = [(f, t) for f in RUNTIMES for t in ("detect", "segment", "classify")]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """checkpoints(fmt): one tiny checkpoint per task for the format's architecture, each in its own folder."""
    root, made = tmp_path_factory.mktemp("runtimes"), {}

    def build(fmt: str) -> dict[str, Path]:
        cfg = CFG[fmt]
        if cfg not in made:
            folders = {t: root / Path(cfg).stem / t for t in ("detect", "segment", "classify")}
            for d in folders.values():
                d.mkdir(parents=True)
            seg_cfg = cfg.replace(".yaml", "-seg.yaml") if "csppc" not in cfg else "yolov5n-seg.yaml"
            made[cfg] = {"detect": make_checkpoint(folders["detect"] / "tiny.pt", cfg=cfg),
                         "segment": make_checkpoint(folders["segment"] / "tiny.pt", cfg=seg_cfg),
                         "classify": make_classifier(folders["classify"] / "tiny.pt", cfg)}
        return made[cfg]

    return build


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


@pytest.mark.parametrize(("fmt", "task"), VALIDATED)
@torch.no_grad()
def test_export_runs_in_backend_like_pytorch(fmt, task, checkpoints):
    _needs(fmt)
    weights = checkpoints(fmt)[task]
    f = _exported(fmt, weights)
    backend = DetectMultiBackend(f)
    assert getattr(backend, fmt) and not backend.pt
    assert backend.names == NAMES and backend.stride == 32
    im = _image().expand(2, -1, -1, -1)  # batch 2 on a batch-1 export: run image by image
    y, y_pt = backend(im), DetectMultiBackend(weights)(im)
    y = y if isinstance(y, list) else [y]
    y_pt = list(y_pt[:2]) if task == "segment" else [y_pt[0] if isinstance(y_pt, (list, tuple)) else y_pt]
    assert len(y) == len(y_pt)
    for a, b in zip(y, y_pt):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-3 * max(float(b.abs().max()), 1.0)


@pytest.mark.parametrize("fmt", list(RUNTIMES))
def test_detect_and_val_run_on_the_export(fmt, tmp_path):
    _needs(fmt)
    weights = make_checkpoint(tmp_path / "tiny.pt", cfg=CFG[fmt])
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
    # task "speed" letterboxes both to the export's square ("val" would feed PyTorch rectangular batches padded by
    # half a stride, another input than the export's); the saved boxes are compared, since this random model's boxes
    # match no label and its mAP is zero for any format
    kw = dict(data=str(data), imgsz=DETECT_IMGSZ, batch_size=1, project=str(tmp_path), plots=False, task="speed",
              conf_thres=0.3, save_txt=True, save_conf=True)
    results = {name: val.run(weights=str(w), name=f"val-{name}", **kw)[0] for name, w in (("pt", weights), (fmt, f))}
    assert np.allclose(results[fmt][:4], results["pt"][:4], atol=0.002)  # P, R, mAP50, mAP50-95
    saved = sorted((tmp_path / "val-pt" / "labels").glob("*.txt"))
    assert len(saved) == 4
    for txt in saved:  # rows in NMS's order, by confidence: near-alike image-sized boxes cannot be paired by place
        got, ref = (np.loadtxt(d / "labels" / txt.name, ndmin=2) for d in (tmp_path / f"val-{fmt}", txt.parents[1]))
        assert len(ref) and got.shape == ref.shape, f"{fmt} val {txt.name}"
        assert np.allclose(got, ref, atol=1e-3), f"{fmt} val {txt.name}"  # class, normalised xywh, confidence


def _damage(f: Path, tmp: Path, fmt: str) -> list[tuple[Path, str]]:
    """Damaged copies of an export, each with the words its error must contain."""
    if fmt in ("mnn", "tflite"):
        data, suffix = f.read_bytes(), f.suffix
        (tmp / f"cut{suffix}").write_bytes(data[:len(data) // 2])
        (tmp / f"text{suffix}").write_text("not a model\n" * 20)
        not_a_model = "not an MNN model" if fmt == "mnn" else "not a TFLite model"
        return [(tmp / f"cut{suffix}", "corrupt or truncated"), (tmp / f"text{suffix}", not_a_model)]
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
    f = _exported(fmt, checkpoints(fmt)["detect"])
    for damaged, words in _damage(f, tmp_path, fmt):
        with pytest.raises(ValueError, match=words) as e:
            DetectMultiBackend(damaged)
        assert damaged.name in str(e.value)


def test_layer_checks_get_each_layers_own_inputs(checkpoints):
    """Detect replaces the entries of its input list: the layer-by-layer check must still trace it on its inputs."""
    model = attempt_load(str(checkpoints("ncnn")["detect"]), device=torch.device("cpu"), fuse=True).eval()
    assert unexportable_layer(model, _image(), TORCHSCRIPT.check_layer) is None


def test_ncnn_layer_check_takes_list_inputs(checkpoints):
    _needs("ncnn")
    model = attempt_load(str(checkpoints("ncnn")["detect"]), device=torch.device("cpu"), fuse=True).eval()
    inputs = {}  # the head alone (a list input) is converted, on the feature maps the model gives it
    model.model[-1].register_forward_pre_hook(lambda _, a: inputs.setdefault("x", [t.clone() for t in a[0]]) and None)
    with torch.no_grad():
        model(_image())
    NCNN.check_layer(model.model[-1], (inputs["x"],), 17)  # raises if pnnx cannot convert it
