"""OpenVINO IR (<name>_openvino_model/ with xml, bin and yaml metadata): converted from the ONNX export, in FP32,
FP16 (--half) or INT8 (--int8, quantized by NNCF on --data images)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from models.formats.onnx import layer_to_onnx
from models.formats.registry import ExportContext, ExportFormat, Runner, register
from utils.general import LOGGER, colorstr, yaml_load, yaml_save
from utils.sigstack import keep_signal_stack


def _openvino():
    """The openvino module, or an ImportError saying how to install it."""
    try:
        import openvino as ov
    except ImportError as e:
        raise ImportError("OpenVINO export needs the 'openvino' package: pip install openvino") from e
    return ov


def export_openvino(onnx_file: Path, file: Path, metadata: dict, half: bool, prefix: str = colorstr("OpenVINO:")):
    """Convert the ONNX export to OpenVINO IR (xml + bin) in <name>_openvino_model/, with <name>.yaml metadata."""
    ov = _openvino()
    LOGGER.info(f"\n{prefix} starting export with openvino {ov.__version__}...")
    f = OPENVINO.path(file)
    f.mkdir(parents=True, exist_ok=True)
    xml = f / file.with_suffix(".xml").name
    ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=half)
    yaml_save(xml.with_suffix(".yaml"), metadata)
    return f


def export_openvino_int8(onnx_file: Path, file: Path, metadata: dict, data: str | Path, imgsz: list[int],
                         images: int = 300, prefix: str = colorstr("OpenVINO INT8:"), calibration=None,
                         metric: Callable | None = None, max_drop: float = 0.01) -> Path:
    """INT8 OpenVINO model in <name>_int8_openvino_model/: the ONNX export quantized by NNCF on `data` train images.

    calibration (an iterable of input arrays) replaces the detection images, e.g. a classifier's centre crops. With
    metric (a function returning a utils.int8_accuracy.AccuracyMetric) the drop is measured and, above max_drop,
    NNCF's accuracy-aware quantization returns the layers that cost it to float.
    """
    ov = _openvino()
    from utils.quantize import CalibrationImages, quantize_openvino

    LOGGER.info(f"\n{prefix} starting export with openvino {ov.__version__}...")
    if imgsz[0] != imgsz[1]:
        raise ValueError(f"INT8 calibration letterboxes to a square as val.py does; got --imgsz {imgsz}")
    calibration = calibration or CalibrationImages(data, imgsz[0], int(metadata["stride"]), n=images)
    if metric is None:
        quantized = quantize_openvino(ov.convert_model(str(onnx_file)), calibration, prefix=prefix)
    else:
        from utils.int8_accuracy import quantize_within_drop

        quantized = quantize_within_drop(lambda: ov.convert_model(str(onnx_file)), calibration, metric(), max_drop,
                                         prefix=prefix).model
    f = int8_openvino_path(file)
    f.mkdir(parents=True, exist_ok=True)
    xml = f / file.with_suffix(".xml").name
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    yaml_save(xml.with_suffix(".yaml"), metadata)
    return f


def int8_openvino_path(weights: str | Path) -> Path:
    """Where the INT8 OpenVINO export of `weights` goes: best.pt -> best_int8_openvino_model/."""
    w = Path(weights)
    return w.parent / f"{w.stem}_int8{OPENVINO.suffix}"


def _export(ctx: ExportContext) -> Path:
    """The registry's call: FP32/FP16 IR, or with --int8 the quantized IR; both from this run's ONNX export."""
    o = ctx.options
    onnx_file = ctx.need("onnx")
    if not o["int8"]:
        return export_openvino(onnx_file, ctx.file, ctx.metadata, o["half"])
    return export_openvino_int8(onnx_file, ctx.file, ctx.metadata, o["data"], o["imgsz"], o["int8_images"],
                                calibration=ctx.calibration_images(), metric=ctx.int8_metric,
                                max_drop=o.get("int8_max_drop", 0.01))


def _check_layer(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Export one layer to ONNX and convert it to OpenVINO (raises where either cannot)."""
    _openvino().convert_model(io.BytesIO(layer_to_onnx(layer, args, opset)))


class OpenVINORunner(Runner):
    """An OpenVINO model compiled for the CPU (or AUTO on other devices), with the <name>.yaml metadata beside it."""

    def __init__(self, w: str, device: torch.device, bf16: bool = False, **_):
        try:
            import openvino as ov
        except ImportError as e:
            raise ImportError(f"{w}: OpenVINO models need the 'openvino' package (pip install openvino)") from e
        LOGGER.info(f"Loading {w} for OpenVINO inference...")
        p = Path(w)
        xml = p if p.suffix == ".xml" else next(p.glob("*.xml"), None)
        if xml is None:
            raise FileNotFoundError(f"{w}: no .xml model inside this OpenVINO folder")
        core = ov.Core()
        ov_model = core.read_model(model=str(xml), weights=str(xml.with_suffix(".bin")))
        # OpenVINO's CPU plugin runs bf16 by default where the CPU has it (AVX512-BF16/AMX): boxes then move by ~1 px
        # from PyTorch's; ask for f32 so every format gives the same detections, and for bf16 only with --half
        config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        with keep_signal_stack():  # the CPU plugin swaps this thread's signal stack: see utils/sigstack.py
            self.ov_compiled = core.compile_model(ov_model, "AUTO" if device.type != "cpu" else "CPU", config)
        self.ov_request = self.ov_compiled.create_infer_request()
        meta_file = xml.with_suffix(".yaml")  # export.py writes stride and names beside the model
        self.meta = self.ov_meta = yaml_load(meta_file) if meta_file.exists() else {}

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list:
        """Every output of the compiled model."""
        return list(self.ov_request.infer({0: im.cpu().numpy().astype(np.float32)}).values())


OPENVINO = register(ExportFormat("OpenVINO", "openvino", "_openvino_model", "xml", export=_export,
                                 load=OpenVINORunner, requirements=("openvino", "onnx"), also=(".xml",),
                                 check_layer=_check_layer, bf16=True, int8=True, source="onnx", half_on_cpu=True))
