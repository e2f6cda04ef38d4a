"""CoreML export (models/formats/coreml.py), as far as Linux can check it: every task's tiny model writes an
.mlpackage whose structure, metadata and input and output shapes coremltools' spec API reads back; FP16 halves the
weights; a version conflict or an absent coremltools is said clearly while the other formats still export;
DetectMultiBackend refuses a damaged package, and off macOS says that CoreML predicts only there."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch

import export
from engine.exporter import Exporter
from models.backends import DetectMultiBackend
from models.formats import NotRunnableHere, format_for, model_type
from models.formats.coreml import (
    CoreMLToolsConflict,
    _coremltools,
    check_mlpackage,
    coreml_metadata,
    program_to_convert,
    torchscript_conflict,
    version_conflict,
)
from models.yolo import ClassificationModel, DetectionModel
from tests.fixtures.inference import NAMES, make_checkpoint

ct = pytest.importorskip("coremltools", reason="CoreML export needs coremltools (pip install -r requirements.txt)")
IMGSZ = 64
# PyTorch's output shapes for the tiny models at 64 px: 3 anchors x (8x8 + 4x4 + 2x2) cells; 3 classes + 5 (+ 32)
OUTPUTS = {"detect": [[1, 252, 8]], "segment": [[1, 252, 40], [1, 32, 16, 16]], "classify": [[1, 3]]}


def _classifier(path: Path) -> Path:
    """A tiny classification checkpoint with the shapes' class names."""
    torch.manual_seed(0)
    model = ClassificationModel(model=DetectionModel("yolov5n-csppc.yaml"), nc=len(NAMES)).eval()
    model.names = dict(NAMES)
    torch.save({"model": model.half(), "ema": None, "epoch": -1, "optimizer": None}, path)
    return path


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    """Each task's tiny checkpoint exported to CoreML (FP32), task -> .mlpackage."""
    root, out = tmp_path_factory.mktemp("coreml"), {}
    for task in OUTPUTS:
        (root / task).mkdir()
        w = root / task / "tiny.pt"
        if task == "classify":
            _classifier(w)
        else:
            make_checkpoint(w, cfg="yolov5n-seg.yaml" if task == "segment" else "yolov5n-csppc.yaml")
        out[task] = Path(export.run(weights=w, imgsz=(IMGSZ, IMGSZ), include=["coreml"])[0])
    return out


@pytest.mark.parametrize("task", list(OUTPUTS))
def test_package_structure_metadata_and_shapes(task, packages):
    f = packages[task]
    assert f.name == "tiny.mlpackage" and f.is_dir()
    model_file = check_mlpackage(f)
    assert model_file == (f / "Data" / "com.apple.CoreML" / "model.mlmodel").resolve()
    manifest = json.loads((f / "Manifest.json").read_text())
    paths = {e["path"] for e in manifest["itemInfoEntries"].values()}
    assert paths == {"com.apple.CoreML/model.mlmodel", "com.apple.CoreML/weights"}
    assert (f / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size > 100_000

    meta = coreml_metadata(f)
    assert meta["stride"] == 32 and meta["names"] == NAMES and meta["task"] == task and meta["imgsz"] == [64, 64]
    assert meta["half"] == "False"

    spec = ct.models.MLModel(str(f), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert "export.py" in spec.description.metadata.author and task in spec.description.metadata.shortDescription
    (image,) = spec.description.input
    assert image.name == "image" and image.type.WhichOneof("Type") == "imageType"
    assert (image.type.imageType.width, image.type.imageType.height) == (IMGSZ, IMGSZ)
    assert image.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    outputs = [(o.name, list(o.type.multiArrayType.shape)) for o in spec.description.output]
    assert outputs == [(f"output{i}", shape) for i, shape in enumerate(OUTPUTS[task])]


def test_half_writes_fp16_weights_from_cpu(packages, tmp_path):
    w = shutil.copy(packages["detect"].parent / "tiny.pt", tmp_path / "tiny.pt")
    (f,) = export.run(weights=w, imgsz=(IMGSZ, IMGSZ), include=["coreml"], half=True)
    weights = Path(f) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    fp32 = packages["detect"] / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    assert 0.45 < weights.stat().st_size / fp32.stat().st_size < 0.55
    assert coreml_metadata(f)["half"] == "True"
    with pytest.raises(ValueError, match="exports of torchscript need a GPU"):  # others still need a GPU
        export.run(weights=w, imgsz=(IMGSZ, IMGSZ), include=["torchscript", "coreml"], half=True)


def test_version_rules():
    assert version_conflict("9.0", "2.4.6") is None
    assert "coremltools 8.0 cannot convert torch.export programs" in version_conflict("8.0", "2.4.6")
    assert "needs numpy<2" in version_conflict("7.2", "2.4.6")
    assert "#2633" in torchscript_conflict("9.0", "2.4.6") and "numpy<2.4" in torchscript_conflict("9.0", "2.4.6")
    assert torchscript_conflict("9.0", "2.3.5") is None and torchscript_conflict("9.1", "2.4.6") is None


class _ValueBranch(torch.nn.Module):
    """Python control flow on a tensor's value: torch.export cannot export it, the tracer records one branch."""

    def forward(self, x):
        return x * 2 if x.mean() > 0.5 else x - 1


def test_torchscript_fallback_only_where_it_converts():
    im = torch.rand(1, 3, 8, 8)
    with pytest.raises(CoreMLToolsConflict, match=r"torch\.export could not export.*numpy 2\.4\.6.*#2633"):
        program_to_convert(_ValueBranch(), im, "9.0", "2.4.6")
    traced = program_to_convert(_ValueBranch(), im, "9.0", "2.3.5")
    assert isinstance(traced, torch.jit.ScriptModule)
    assert isinstance(program_to_convert(torch.nn.Conv2d(3, 4, 1), im, "9.0", "2.4.6"), torch.export.ExportedProgram)


def test_conflict_is_said_and_other_formats_still_export(packages, tmp_path, monkeypatch, caplog):
    w = shutil.copy(packages["detect"].parent / "tiny.pt", tmp_path / "tiny.pt")
    monkeypatch.setattr(ct, "__version__", "8.0")  # what the installed package reports is what the check reads
    with caplog.at_level(logging.INFO, logger="yolov5"):
        written = export.run(weights=w, imgsz=(IMGSZ, IMGSZ), include=["torchscript", "coreml"])
    assert written == [str(tmp_path / "tiny.torchscript")] and not (tmp_path / "tiny.mlpackage").exists()
    assert "CoreML export of" in caplog.text and "coremltools 8.0 cannot convert" in caplog.text
    assert "Versions that work: coremltools>=8.1" in caplog.text


def test_absent_coremltools_is_said(monkeypatch, tmp_path, caplog):
    # import and find_spec now fail for it as for a package that is not installed
    monkeypatch.setitem(sys.modules, "coremltools", None)
    with pytest.raises(ImportError, match=r"CoreML export needs coremltools .*pip install"):
        _coremltools()
    w = make_checkpoint(tmp_path / "tiny.pt")
    with caplog.at_level(logging.INFO, logger="yolov5"):
        assert Exporter(w, ("coreml",), imgsz=(IMGSZ, IMGSZ))() == []
    assert "CoreML export of" in caplog.text and "needs coremltools: pip install coremltools" in caplog.text


def test_names_route_to_coreml():
    assert model_type("best.mlpackage")["coreml"] and model_type("yolov5s.mlmodel")["coreml"]
    assert format_for("best.mlpackage").name == "CoreML"


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs there: DetectMultiBackend predicts")
def test_backend_says_coreml_runs_only_on_macos(packages):
    with pytest.raises(NotRunnableHere, match=r"tiny\.mlpackage: CoreML models predict only on macOS"):
        DetectMultiBackend(packages["detect"])


def _damaged(f: Path, tmp: Path) -> list[tuple[Path, str]]:
    """Damaged copies of an .mlpackage, each with the words its error must contain."""
    cases = []
    for name, edit, words in (("nomanifest", "drop", "no Manifest.json"), ("text", "text", "not a CoreML manifest"),
                              ("escape", "escape", "leads outside"), ("nomodel", "model", "missing or empty")):
        d = tmp / f"{name}.mlpackage"
        shutil.copytree(f, d)
        manifest = d / "Manifest.json"
        if edit == "drop":
            manifest.unlink()
        elif edit == "text":
            manifest.write_text("<html>not json</html>")
        elif edit == "escape":
            info = json.loads(manifest.read_text())
            info["itemInfoEntries"][info["rootModelIdentifier"]]["path"] = "../../../etc/passwd"
            manifest.write_text(json.dumps(info))
        else:
            (d / "Data" / "com.apple.CoreML" / "model.mlmodel").unlink()
        cases.append((d, words))
    return cases


def test_damaged_package_fails_naming_it(packages, tmp_path):
    for damaged, words in _damaged(packages["detect"], tmp_path):
        with pytest.raises(ValueError, match=words) as e:
            DetectMultiBackend(damaged)
        assert damaged.name in str(e.value)


def test_metadata_not_written_by_export_is_refused():
    meta = coreml_metadata("a.mlpackage", {"stride": "32", "names": "{0: 'circle'}", "imgsz": "[64, 64]"})
    assert meta["stride"] == 32 and meta["names"] == {0: "circle"} and meta["imgsz"] == [64, 64]
    with pytest.raises(ValueError, match=r"b\.mlpackage: user-defined metadata not as export\.py writes it"):
        coreml_metadata("b.mlpackage", {"names": "__import__('os').system('true')"})
