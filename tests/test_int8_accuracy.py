"""export.py --int8-max-drop: val mAP50-95 through the engine's validator, NNCF's accuracy-aware quantization where
plain INT8 loses more than the bound, the operations it returns to float, and clear refusals."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import export
from models.backends import DetectMultiBackend
from tests.fixtures.inference import label_with_detections, make_checkpoint, tiny_dataset

ov = pytest.importorskip("openvino")
pytest.importorskip("nncf")

IMGSZ = 128
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The tiny checkpoint, its FP32 OpenVINO export, and a dataset whose val labels are that export's detections."""
    tmp = tmp_path_factory.mktemp("int8acc")
    weights = make_checkpoint(tmp / "tiny.pt")
    data = tiny_dataset(tmp / "data", imgsz=IMGSZ)
    fp32 = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["openvino"])[0]
    label_with_detections(fp32, data, IMGSZ)  # FP32 scores well on them, and INT8 errors cost mAP
    return {"weights": weights, "data": data, "fp32": fp32}


def _export_cli(weights: Path, data: str, max_drop: float) -> subprocess.CompletedProcess:
    """export.py --int8 as a user runs it (NNCF stays out of the pytest process)."""
    cmd = [sys.executable, str(ROOT / "export.py"), "--weights", str(weights), "--imgsz", str(IMGSZ), "--include",
           "openvino", "--int8", "--data", data, "--int8-images", "8", "--int8-max-drop", str(max_drop)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_metric_is_val_py_map(labelled):
    """The metric NNCF gets is val.py's mAP50-95 of the same model on the same split, to the last digit."""
    import val
    from engine.int8_metric import ValMetric
    from utils.int8_accuracy import compile_f32

    metric = ValMetric(labelled["data"], IMGSZ, 32, DetectMultiBackend(labelled["fp32"]).names)
    compiled = compile_f32(ov.Core().read_model(str(next(Path(labelled["fp32"]).glob("*.xml")))))
    ours = metric(compiled, range(len(metric.dataset)))
    r, _, _ = val.run(data=labelled["data"], weights=labelled["fp32"], imgsz=IMGSZ, batch_size=1, device="cpu",
                      half=False, plots=False, workers=0, project=Path(labelled["fp32"]).parent, name="val")
    assert ours > 0.5  # its own detections as labels
    assert ours == pytest.approx(float(r[3]), abs=1e-9)
    one = metric(compiled, [3])  # NNCF also scores single images while ranking layers
    assert 0.0 <= one <= 1.0
    assert metric.image(3).shape == (1, 3, IMGSZ, IMGSZ) and metric.image(3).dtype == np.float32


@pytest.mark.slow
def test_accuracy_aware_reverts_layers(labelled, tmp_path):
    """With --int8-max-drop 0, plain INT8 loses mAP on these labels: layers go back to float and the drop shrinks."""
    from utils.quantize import quantized_ops

    weights = Path(labelled["weights"])
    done = _export_cli(weights, labelled["data"], 0.0)
    log = done.stdout + done.stderr
    plain = re.search(r"FP32 ([\d.]+), INT8 ([\d.]+), drop ([-\d.]+) \(--int8-max-drop 0.0\)", log)
    assert plain, log[-3000:]
    assert float(plain.group(3)) > 0  # a case built to need it: plain INT8 costs mAP here
    reverted = re.search(r"(\d+) operations went back to float: (.+)", log)
    assert reverted and int(reverted.group(1)) >= 1, log[-3000:]
    final = re.search(r"final drop ([-\d.]+) \(plain INT8 dropped ([-\d.]+)\)", log)
    assert final and float(final.group(1)) < float(final.group(2))
    int8 = weights.parent / "tiny_int8_openvino_model"
    model = ov.Core().read_model(str(next(int8.glob("*.xml"))))
    names = reverted.group(2).split(", ")
    assert not set(names) & quantized_ops(model)  # the operations named really read float now
    assert len(quantized_ops(model)) > 10  # and the rest stayed int8
    backend = DetectMultiBackend(str(int8))
    assert backend(torch.rand(1, 3, IMGSZ, IMGSZ)).shape == DetectMultiBackend(labelled["fp32"])(
        torch.rand(1, 3, IMGSZ, IMGSZ)).shape
    import val

    r, _, _ = val.run(data=labelled["data"], weights=str(int8), imgsz=IMGSZ, batch_size=1, device="cpu", half=False,
                      plots=False, workers=0, project=tmp_path, name="int8")
    assert float(r[3]) == pytest.approx(float(plain.group(1)) - float(final.group(1)), abs=2e-4)  # the logged figure


def test_within_bound_keeps_plain_quantization(labelled):
    """A drop within the bound keeps NNCF's plain result: every quantizable operation in int8, nothing reverted."""
    weights = Path(labelled["weights"]).parent / "wide.pt"
    weights.write_bytes(Path(labelled["weights"]).read_bytes())
    log = (lambda d: d.stdout + d.stderr)(_export_cli(weights, labelled["data"], 1.0))
    assert "drop within 1.0: keeping the plain quantization" in log
    assert "went back to float" not in log and "accuracy-aware" not in log
    assert (weights.parent / "wide_int8_openvino_model").is_dir()


def test_int8_max_drop_flag_and_bad_values(labelled):
    assert export.parse_opt(["--weights", "a.pt"]).int8_max_drop == 0.01
    assert export.parse_opt(["--weights", "a.pt", "--int8-max-drop", "0.02"]).int8_max_drop == 0.02
    for bad in (-0.01, float("nan")):
        with pytest.raises(ValueError, match="--int8-max-drop"):
            export.run(weights=labelled["weights"], imgsz=(IMGSZ, IMGSZ), include=["openvino"], int8=True,
                       data=labelled["data"], int8_max_drop=bad)


def test_no_val_split_is_named(labelled, tmp_path):
    from engine.int8_metric import ValMetric

    cfg = yaml.safe_load(Path(labelled["data"]).read_text())
    cfg.pop("val")
    f = tmp_path / "noval.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(KeyError, match="noval.yaml: 'val:' key missing"):
        ValMetric(str(f), IMGSZ, 32, {0: "a"})


def test_quantized_ops_of_float_model_is_empty(labelled):
    from utils.quantize import quantized_ops

    assert quantized_ops(ov.Core().read_model(str(next(Path(labelled["fp32"]).glob("*.xml"))))) == set()
