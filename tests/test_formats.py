"""models/formats/: a format defined in this file alone is exported by export.run and run by DetectMultiBackend;
the registry's lookups; the next-step hint asks the model's task."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import export
from engine.exporter import NEXT_STEPS, model_task
from models.backends import DetectMultiBackend
from models.formats import ExportContext, ExportFormat, Runner, export_formats, format_for, format_of, register
from models.formats import unregister as unregister_format
from models.formats.registry import model_type
from models.formats.tracing import quiet_tracing
from models.yolo import ClassificationModel, DetectionModel, SegmentationModel
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image

IMGSZ = 64


# --- a toy format, known to no project file: a folder with the traced model and a JSON of its metadata -----------
def export_toy(ctx: ExportContext) -> Path:
    """Trace the model into <name>_toy_model/model.pt and write meta.json beside it."""
    f = TOY.path(ctx.file)
    f.mkdir(parents=True, exist_ok=True)
    with quiet_tracing():
        torch.jit.trace(ctx.model, ctx.im, strict=False, check_trace=False).save(str(f / "model.pt"))
    (f / "meta.json").write_text(json.dumps({"stride": ctx.metadata["stride"], "names": ctx.metadata["names"]}))
    return f


class ToyRunner(Runner):
    """Loads the folder export_toy writes."""

    def __init__(self, w: str, device: torch.device, **_):
        with warnings.catch_warnings():  # torch>=2.9 marks torch.jit deprecated; loading still works
            warnings.simplefilter("ignore", FutureWarning)
            self.model = torch.jit.load(str(Path(w) / "model.pt"), map_location=device)
        self.meta = json.loads((Path(w) / "meta.json").read_text())
        self.calls = 0

    def __call__(self, im, augment=False, visualize=False):
        self.calls += 1
        return self.model(im)


def refuse_upsample(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """A converter that cannot take nn.Upsample (as a real one may lack an op)."""
    if isinstance(layer, torch.nn.Upsample):
        raise RuntimeError("no Upsample in this format")


def export_refusing(ctx: ExportContext) -> Path:
    """An export that fails where its layer check does, so the failure report can name the layer."""
    for m in ctx.model.model:
        refuse_upsample(m, (), 17)
    raise AssertionError("yolov5n has an Upsample layer")


TOY = ExportFormat("Toy", "toy", "_toy_model", "toy", export=export_toy, load=ToyRunner, requirements=("torch",))
REFUSING = ExportFormat("Refusing", "refusing", ".refusing", "refusing", export=export_refusing, load=ToyRunner,
                        check_layer=refuse_upsample)


@pytest.fixture
def toy_formats():
    """Register the two formats for one test, and leave the registry as it was."""
    for fmt in (TOY, REFUSING):
        register(fmt)
    yield
    for fmt in (TOY, REFUSING):
        unregister_format(fmt.argument)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("formats") / "tiny.pt", cfg="yolov5n.yaml")


def _image() -> torch.Tensor:
    im = shapes_image(IMGSZ, IMGSZ)[..., ::-1].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(im)).float()[None]


def test_toy_format_exports_and_runs_without_project_edits(weights, toy_formats, caplog):
    with caplog.at_level(logging.INFO, logger="yolov5"):
        written = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["toy", "onnx"])
    folder = weights.parent / "tiny_toy_model"
    assert written == [str(weights.with_suffix(".onnx")), str(folder)]  # table order: v7.0's rows first
    assert (folder / "model.pt").is_file() and json.loads((folder / "meta.json").read_text())["stride"] == 32
    row = next(x for x in caplog.text.splitlines() if x.startswith("Toy "))
    assert float(row.split("max|diff|")[1]) < 1e-5  # export.run compared it with PyTorch through DetectMultiBackend

    backend = DetectMultiBackend(folder)
    assert backend.toy and not (backend.pt or backend.onnx) and backend.format is TOY
    assert backend.stride == 32 and backend.names == NAMES
    im = _image()
    reference = DetectMultiBackend(weights)
    with torch.no_grad():
        y = backend(im)
        y_pt = reference(im)[0]
    assert backend.calls == 1  # the runner's own attribute, reached through the backend
    assert isinstance(y, torch.Tensor) and y.shape == y_pt.shape
    assert float((y - y_pt).abs().max()) < 1e-4


def test_toy_format_on_the_command_line(weights, toy_formats):
    assert export.parse_opt(["--weights", str(weights), "--include", "toy"]).include == ["toy"]
    unregister_format("toy")
    with pytest.raises(SystemExit):  # argparse's error, listing the known formats
        export.parse_opt(["--include", "toy"])


def test_failing_format_names_the_layer_and_others_still_export(weights, toy_formats, caplog):
    with caplog.at_level(logging.ERROR, logger="yolov5"):
        written = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["refusing", "torchscript"])
    assert written == [str(weights.with_suffix(".torchscript"))]
    assert "Refusing export of" in caplog.text
    assert "layer 11 (torch.nn.modules.upsampling.Upsample): no Upsample in this format" in caplog.text


def test_missing_package_named_before_export(weights, caplog):
    register(ExportFormat("Needy", "needy", ".needy", "needy", export=export_toy, load=ToyRunner,
                          requirements=("torch", "no_such_package_xyz")))
    try:
        with caplog.at_level(logging.ERROR, logger="yolov5"):
            written = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["needy", "torchscript"])
    finally:
        unregister_format("needy")
    assert written == [str(weights.with_suffix(".torchscript"))]
    assert "Needy export of" in caplog.text
    assert "needs no_such_package_xyz: pip install no_such_package_xyz" in caplog.text
    assert not (weights.parent / "tiny.needy").exists()


def test_registry_lookups():
    assert format_for("a/b_edgetpu.tflite").argument == "edgetpu"  # the longest ending wins over .tflite
    assert format_for("m_openvino_model").argument == format_for("m_openvino_model/m.xml").argument == "openvino"
    assert format_for("m.xyz") is None
    assert model_type("m.onnx") == {f.key: f.argument == "onnx" for f in export_formats()}
    with pytest.raises(KeyError, match="known formats: torchscript, onnx, openvino, engine"):
        format_of("onnxx")
    assert format_of("ONNX").name == "ONNX"


def test_registering_a_v7_format_keeps_its_row(weights):
    rows = [f.argument for f in export_formats()]
    old = format_of("pb")
    try:
        register(ExportFormat("TensorFlow GraphDef", "pb", ".pb", "pb", export=export_toy, load=ToyRunner))
        assert [f.argument for f in export_formats()] == rows
        assert format_of("pb").supported and format_of("pb").export is export_toy
    finally:
        register(old)
    assert not format_of("pb").supported


def test_unsupported_format_says_what_it_needs(tmp_path):
    with pytest.raises(NotImplementedError, match=r"TensorRT models are not supported \(TensorRT needs .*CUDA"):
        DetectMultiBackend(tmp_path / "m.engine")


def test_next_step_hint_asks_the_task():
    det = DetectionModel("yolov5n.yaml", nc=3)
    assert model_task(det) == "detect" and model_task(SegmentationModel("yolov5n-seg.yaml", nc=3)) == "segment"
    assert model_task(ClassificationModel(model=DetectionModel("yolov5n.yaml"), nc=3)) == "classify"
    det.task = "segment"  # a model that says its task is taken at its word
    assert model_task(det) == "segment" and NEXT_STEPS["segment"] == ("segment/predict.py", "segment/val.py")
