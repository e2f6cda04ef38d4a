"""--half on CPU: bf16 for .pt (autocast) and OpenVINO where the CPU has it, else a clear message and FP32."""

import logging

import numpy as np
import pytest
import torch

from models.backends import DetectMultiBackend
from tests.fixtures.inference import make_checkpoint, shapes_image
from utils import torch_utils

IMGSZ = 128


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("bf16") / "tiny.pt")


def _image() -> torch.Tensor:
    im = shapes_image(IMGSZ, IMGSZ, seed=3)[..., ::-1].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(im)).float()[None]


@pytest.mark.parametrize("flags, expected", [({"avx512f", "avx512_vnni"}, False), ({"avx512_bf16"}, True),
                                             ({"amx_bf16", "amx_tile"}, True), (set(), False)])
def test_bf16_detection_reads_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(torch_utils, "cpu_flags", lambda: flags)
    assert torch_utils.cpu_bf16_supported() is expected


def test_cpu_flags_parses_proc_cpuinfo():
    flags = torch_utils.cpu_flags()
    assert isinstance(flags, set)
    if torch_utils.Path("/proc/cpuinfo").is_file() and torch_utils.platform.machine() in ("x86_64", "AMD64"):
        assert {"fpu", "sse2"} <= flags  # every x86-64 CPU lists these


def test_half_on_cpu_without_bf16_falls_back_with_message(weights, monkeypatch, caplog):
    monkeypatch.setattr(torch_utils, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        model = DetectMultiBackend(weights, fp16=True)
    assert "no native bf16" in caplog.text and "running FP32" in caplog.text
    assert not model.bf16 and not model.fp16
    with torch.no_grad():
        y, y32 = model(_image())[0], DetectMultiBackend(weights)(_image())[0]
    assert y.dtype == torch.float32 and torch.equal(y, y32)  # exactly the FP32 result


def test_half_on_cpu_for_onnx_says_bf16_is_pt_and_openvino_only(tmp_path, weights, monkeypatch, caplog):
    import export

    monkeypatch.setattr(torch_utils, "cpu_flags", lambda: {"avx512_bf16"})
    f = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["onnx"])[0]
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        model = DetectMultiBackend(f, fp16=True)
    assert "for .pt and OpenVINO models only" in caplog.text and not model.bf16


@pytest.mark.skipif(not torch_utils.cpu_bf16_supported(), reason="this CPU has no native bf16")
def test_half_on_bf16_cpu_runs_bf16_close_to_fp32(weights):
    fp32, bf16 = DetectMultiBackend(weights), DetectMultiBackend(weights, fp16=True)
    assert bf16.bf16 and not bf16.fp16
    with torch.no_grad():
        y32, y16 = fp32(_image())[0], bf16(_image())[0]
    assert y16.dtype == torch.float32 and not torch.equal(y16, y32)  # really computed in bf16
    sure = y32[0, :, 4] > 0.5
    assert float((y16[0, sure, :4] - y32[0, sure, :4]).abs().median()) < 1.0  # px at 128 px
    assert float((y16[0, :, 4:] - y32[0, :, 4:]).abs().max()) < 0.05


@pytest.mark.skipif(not torch_utils.cpu_bf16_supported(), reason="this CPU has no native bf16")
def test_half_on_bf16_cpu_sets_openvino_precision_hint(weights):
    ov = pytest.importorskip("openvino")
    import export

    f = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["openvino"])[0]
    fp32, bf16 = DetectMultiBackend(f), DetectMultiBackend(f, fp16=True)
    assert fp32.ov_compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert bf16.ov_compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    y32, y16 = fp32(_image()), bf16(_image())
    assert not torch.equal(y16, y32)
    assert float((y16[0, :, 4:] - y32[0, :, 4:]).abs().max()) < 0.05
