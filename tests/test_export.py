"""export.py: files named as YOLOv5 names them, ONNX layout and metadata, outputs equal to PyTorch in every runtime."""

import ast
import functools
import inspect
import logging

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import export
from models.backends import DetectMultiBackend
from models.experimental import attempt_load
from models.yolo import Detect
from tests.fixtures.inference import NAMES, make_checkpoint, shapes_image

IMGSZ = 160
ANCHORS_160 = 3 * ((IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2)  # 1575 rows



@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("export") / "tiny.pt")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def exported(weights):
    """One export of every supported format, shared by the tests; the log is kept under the key 'log'."""
    include = ["torchscript", "onnx"] + (["openvino"] if _has_openvino() else [])
    logger, handler = logging.getLogger("yolov5"), _Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        files = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=include)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return {**dict(zip(include, files)), "log": "\n".join(handler.lines)}


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=2)
def _pytorch_model(weights):
    model = attempt_load(weights, fuse=True)
    for m in model.modules():
        if isinstance(m, Detect):
            m.export = True
    return model


def _pytorch_output(weights, im: torch.Tensor) -> np.ndarray:
    """The fused PyTorch model's decoded predictions, as export.py traces it."""
    with torch.no_grad():
        return _pytorch_model(str(weights))(im)[0].numpy()


def _image_batch(h: int = IMGSZ, w: int = IMGSZ, n: int = 1) -> torch.Tensor:
    im = shapes_image(h, w)[..., ::-1].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(im)).float()[None].repeat(n, 1, 1, 1)


def assert_close_relative(a: np.ndarray, b: np.ndarray, rtol: float = 1e-3):
    """|a - b| <= rtol * max(|b|, 1) elementwise: coordinates are hundreds of pixels, scores are below 1."""
    assert a.shape == b.shape
    err = np.abs(a - b) / np.maximum(np.abs(b), 1.0)
    assert err.max() <= rtol, f"max relative error {err.max():.3g}"


def test_files_named_as_yolov5(weights, exported):
    assert exported["torchscript"] == str(weights.with_suffix(".torchscript"))
    assert exported["onnx"] == str(weights.with_suffix(".onnx"))
    if "openvino" in exported:
        folder = weights.parent / "tiny_openvino_model"
        assert exported["openvino"] == str(folder)
        assert (folder / "tiny.xml").is_file() and (folder / "tiny.bin").is_file()
        meta = (folder / "tiny.yaml").read_text()
        assert "stride: 32" in meta and "triangle" in meta


def test_onnx_layout_and_metadata(exported):
    model = onnx.load(exported["onnx"])
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["output0"]
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, ANCHORS_160, 5 + len(NAMES)]
    assert model.opset_import[0].version == 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert int(meta["stride"]) == 32
    assert ast.literal_eval(meta["names"]) == NAMES


def test_onnxruntime_and_opencv_dnn_equal_pytorch(weights, exported):
    im = _image_batch()
    y_pt = _pytorch_output(weights, im)
    session = onnxruntime.InferenceSession(exported["onnx"], providers=["CPUExecutionProvider"])
    y_ort = session.run(None, {"images": im.numpy()})[0]
    assert_close_relative(y_ort, y_pt)
    net = cv2.dnn.readNetFromONNX(exported["onnx"])  # PConv's 1:3 channel split must import in OpenCV too
    net.setInput(im.numpy())
    assert_close_relative(net.forward(), y_pt)


def test_torchscript_and_openvino_through_backend_equal_pytorch(weights, exported):
    im = _image_batch()
    y_pt = _pytorch_output(weights, im)
    for fmt in ("torchscript", "openvino"):
        if fmt not in exported:
            continue  # openvino is optional
        model = DetectMultiBackend(exported[fmt])
        assert (model.jit, model.xml) == (fmt == "torchscript", fmt == "openvino")
        assert model.stride == 32 and model.names == NAMES  # read from the metadata each export embeds
        with torch.no_grad():
            y = model(im)
        assert isinstance(y, torch.Tensor)
        assert_close_relative(y.numpy(), y_pt, rtol=1e-5 if fmt == "torchscript" else 1e-3)


def test_dynamic_simplified_onnx_runs_at_two_sizes(weights, tmp_path):
    w = tmp_path / "dyn.pt"
    w.write_bytes(weights.read_bytes())  # its own folder, so the shared exports are not overwritten
    (f,) = export.run(weights=w, imgsz=(IMGSZ, IMGSZ), include=["onnx"], dynamic=True, simplify=True, opset=16)
    model = onnx.load(f)
    assert model.opset_import[0].version == 16
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2:] == ["height", "width"]
    session = onnxruntime.InferenceSession(f, providers=["CPUExecutionProvider"])
    net = cv2.dnn.readNetFromONNX(f)
    for n, h, w_ in ((1, 128, 192), (2, 224, 160)):
        im = _image_batch(h, w_, n)
        y_pt = _pytorch_output(w, im)
        y = session.run(None, {"images": im.numpy()})[0]
        assert y.shape == (n, 3 * sum((h // s) * (w_ // s) for s in (8, 16, 32)), 8)
        assert_close_relative(y, y_pt)
        if n == 1:  # the slimmed dynamic graph also runs in OpenCV DNN
            net.setInput(im.numpy())
            assert_close_relative(net.forward(), y_pt)


def test_export_log_reports_checks_sizes_and_times(exported):
    text = exported["log"]
    assert "Export complete" in text and "max|diff|" in text and " MB " in text
    rows = [x for x in text.splitlines() if x.startswith(("TorchScript ", "ONNX ", "OpenVINO "))]
    assert len(rows) == len(exported) - 1  # one summary row per format
    for row in rows:
        assert float(row.split("max|diff|")[1].split(",")[0]) < 1e-3
    assert "OpenCV DNN" in next(x for x in rows if x.startswith("ONNX"))


def test_unsupported_formats_answer_clearly(weights, caplog):
    with caplog.at_level(logging.ERROR, logger="yolov5"):
        assert export.run(weights=weights, include=["engine", "pb"]) == []
    assert "TensorRT export (--include engine) is not supported" in caplog.text
    assert "TensorFlow GraphDef export (--include pb) is not supported" in caplog.text
    with pytest.raises(SystemExit):
        export.parse_opt(["--include", "onnx", "nonsense"])


def test_bad_requests_raise_specific_errors(weights, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights not found"):
        export.run(weights=tmp_path / "missing.pt", include=["onnx"])
    with pytest.raises(ValueError, match="--half exports of onnx need a GPU"):
        export.run(weights=weights, include=["onnx"], half=True, device="cpu")


def test_cli_flags_match_yolov5():
    opt = export.parse_opt(["--weights", "a.pt", "--include", "onnx", "openvino", "--dynamic", "--simplify"])
    assert opt.include == ["onnx", "openvino"] and opt.opset == 17 and opt.imgsz == [640, 640]
    assert opt.dynamic and opt.simplify and not opt.half and opt.batch_size == 1


V7_TF_TRT_FLAGS = ["--keras", "--workspace", "8", "--nms", "--agnostic-nms", "--topk-per-class", "5",
                   "--topk-all", "7", "--iou-thres", "0.5", "--conf-thres", "0.3"]


def test_v7_tensorflow_tensorrt_flags_accepted_and_reported_once(weights, tmp_path, caplog):
    defaults = export.parse_opt([])
    sig = inspect.signature(export.run).parameters
    for k, (flag, default, _) in export.INACTIVE.items():  # CLI, run() and the warning agree on every default
        assert getattr(defaults, k) == default and sig[k].default == default and flag in V7_TF_TRT_FLAGS, k
    w = tmp_path / "tiny.pt"
    w.write_bytes(open(weights, "rb").read())
    opt = export.parse_opt(["--weights", str(w), "--imgsz", "64", "--include", "torchscript", *V7_TF_TRT_FLAGS])
    assert (opt.keras, opt.workspace, opt.nms, opt.agnostic_nms) == (True, 8, True, True)
    assert (opt.topk_per_class, opt.topk_all, opt.iou_thres, opt.conf_thres) == (5, 7, 0.5, 0.3)
    with caplog.at_level(logging.INFO, logger="yolov5"):
        assert len(export.main(opt)) == 1
    cli_lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    args_line = next(r.getMessage() for r in caplog.records if "export: " in r.getMessage())
    assert f"weights=['{w}']" in args_line and "include=['torchscript']" in args_line and "keras=True" in args_line
    caplog.clear()
    kwargs = {k: v for k, v in vars(opt).items() if k != "weights"}
    with caplog.at_level(logging.INFO, logger="yolov5"):
        assert len(export.run(weights=w, **kwargs)) == 1
    run_lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert cli_lines == run_lines and len(cli_lines) == 1  # one line, the same from Python as from the shell
    assert cli_lines[0] == (
        "WARNING TensorFlow options --keras --nms --agnostic-nms --topk-per-class 5 --topk-all 7 --iou-thres 0.5 "
        "--conf-thres 0.3 and TensorRT option --workspace 8 ignored: this project exports only torchscript, onnx, "
        "openvino, coreml, tflite, mnn, ncnn")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="yolov5"):  # at their defaults the flags say nothing
        export.run(weights=w, imgsz=(64, 64), include=["torchscript"], workspace=4, conf_thres=0.25)
    assert not caplog.records
