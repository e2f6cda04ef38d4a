"""ONNX (.onnx): exported by torch.onnx, run by ONNX Runtime or, with --dnn, by OpenCV DNN."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch

from models.formats.registry import ExportContext, ExportFormat, Runner, register
from models.formats.tracing import quiet_tracing
from utils.general import LOGGER, colorstr


def export_onnx(model, im: torch.Tensor, file: Path, opset: int, dynamic: bool, simplify: bool, metadata: dict,
                prefix: str = colorstr("ONNX:"), n_outputs: int = 1) -> Path:
    """Export to ONNX (input 'images', outputs 'output0' and for segmentation the prototypes 'output1'), store
    stride/names as metadata, optionally simplify."""
    import onnx

    LOGGER.info(f"\n{prefix} starting export with onnx {onnx.__version__} opset {opset}...")
    f = ONNX.path(file)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}
        if n_outputs > 1:
            dynamic_axes["output1"] = {0: "batch", 2: "mask_height", 3: "mask_width"}
    # dynamo=False selects the TorchScript-based exporter on purpose: torch>=2.9 defaults to the torch.export-based
    # one, which needs the onnxscript package and gives different graphs; the TorchScript exporter supports opset 17,
    # dynamic_axes and every op these models use, and its graphs load in OpenCV DNN as well as ONNX Runtime.
    with quiet_tracing():
        torch.onnx.export(model.cpu() if dynamic else model, im.cpu() if dynamic else im, str(f), verbose=False,
                          opset_version=opset, do_constant_folding=True, input_names=["images"],
                          output_names=[f"output{i}" for i in range(n_outputs)], dynamic_axes=dynamic_axes,
                          dynamo=False)
    model_onnx = onnx.load(str(f))
    onnx.checker.check_model(model_onnx)
    if simplify:
        try:
            import onnxslim

            LOGGER.info(f"{prefix} slimming with onnxslim {onnxslim.__version__}...")
            model_onnx = onnxslim.slim(model_onnx)
        except ImportError:
            LOGGER.warning(f"{prefix} WARNING --simplify needs onnxslim (pip install onnxslim); exported unsimplified")
    for k, v in metadata.items():
        meta = model_onnx.metadata_props.add()
        meta.key, meta.value = k, str(v)
    onnx.save(model_onnx, str(f))
    return f


def _export(ctx: ExportContext) -> Path:
    """The registry's call: export_onnx with export.run's --opset, --dynamic and --simplify."""
    o = ctx.options
    return export_onnx(ctx.model, ctx.im, ctx.file, o["opset"], o["dynamic"], o["simplify"], ctx.metadata,
                       n_outputs=len(ctx.outputs))


def layer_to_onnx(layer: torch.nn.Module, args: tuple, opset: int) -> bytes:
    """One layer alone as ONNX bytes (raises where torch.onnx cannot export it)."""
    buffer = io.BytesIO()
    with quiet_tracing():
        torch.onnx.export(layer, args, buffer, opset_version=opset, do_constant_folding=True, dynamo=False)
    return buffer.getvalue()


def _check_layer_opencv(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Export one layer to ONNX and read it with OpenCV DNN (raises where either cannot)."""
    cv2.dnn.readNetFromONNX(np.frombuffer(layer_to_onnx(layer, args, opset), dtype=np.uint8))


def _report(ctx: ExportContext, f: Path) -> str:
    """The export table's OpenCV DNN column: the difference when OpenCV DNN (--dnn) runs the file too."""
    if ctx.options["dynamic"]:
        return ""
    try:
        return f", OpenCV DNN {ctx.compare(f, dnn=True):.2e}"
    except Exception:  # ONNX Runtime runs it; OpenCV DNN does not support every ONNX graph
        where = ctx.unexportable(_check_layer_opencv)
        LOGGER.warning(f"WARNING {f}: OpenCV DNN (--dnn) cannot run it" + (f", {where}" if where else ""))
        return ", OpenCV DNN cannot run it"


def onnx_metadata(w: str) -> dict:
    """The stride/names properties export.py writes into an ONNX file (empty when onnx is not installed)."""
    try:
        import onnx
    except ImportError:
        LOGGER.warning(f"WARNING onnx is not installed: cannot read stride and names from {w}")
        return {}
    model = onnx.load(w, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def ort_session(file: str | Path, threads: int = 0, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                spinning: bool = True, profile_prefix: str | None = None):
    """An ONNX Runtime session: `threads` intra-op threads (0: ONNX Runtime's choice, one per core) and one inter-op.

    spinning=False keeps idle workers from spinning: interleaved with other sessions (benchmarks), the spinning
    workers of one take the cores from the session timed next (each model measured ~2.5x slower on 2 cores). With
    profile_prefix, ONNX Runtime's profiler records every node to <profile_prefix>_<date>.json.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return onnxruntime.InferenceSession(str(file), options, providers=list(providers))


class OnnxRuntimeRunner(Runner):
    """An ONNX file in an ONNX Runtime session (CUDA where the device and the installed build have it)."""

    def __init__(self, w: str, device: torch.device, **_):
        import onnxruntime

        LOGGER.info(f"Loading {w} for ONNX Runtime inference...")
        cuda = device.type != "cpu" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        self.session = ort_session(w, providers=tuple(providers))
        self.output_names = [x.name for x in self.session.get_outputs()]
        self.input_name = self.session.get_inputs()[0].name
        self.input_fp16 = "float16" in self.session.get_inputs()[0].type
        self.input_shape = self.session.get_inputs()[0].shape  # ints, or names for dynamic axes
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output of the session; a clear error for a shape other than the one a fixed-size export takes."""
        fixed = [d if isinstance(d, int) else None for d in self.input_shape]
        if any(f is not None and f != n for f, n in zip(fixed, im.shape)):
            raise ValueError(f"this ONNX model was exported for input shape {tuple(self.input_shape)}, got "
                             f"{tuple(im.shape)}: use --imgsz {fixed[2]} {fixed[3]} or export with --dynamic")
        x = im.cpu().numpy()
        x = x.astype(np.float16 if self.input_fp16 else np.float32, copy=False)
        return self.session.run(self.output_names, {self.input_name: x})


class OpenCVRunner(Runner):
    """An ONNX file read by OpenCV DNN (--dnn)."""

    def __init__(self, w: str, **_):
        LOGGER.info(f"Loading {w} for ONNX OpenCV DNN inference...")
        self.net = cv2.dnn.readNetFromONNX(w)
        self.meta = onnx_metadata(w)

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output of the network (segmentation: 2)."""
        self.net.setInput(im.cpu().numpy().astype(np.float32))
        return list(self.net.forward(self.net.getUnconnectedOutLayersNames()))


def load_onnx(w: str, device: torch.device, dnn: bool = False, **_) -> Runner:
    """OpenCV DNN with --dnn, ONNX Runtime otherwise."""
    return OpenCVRunner(w) if dnn else OnnxRuntimeRunner(w, device)


ONNX = register(ExportFormat("ONNX", "onnx", ".onnx", "onnx", export=_export, load=load_onnx,
                             requirements=("onnx", "onnxruntime"), check_layer=layer_to_onnx, report=_report,
                             gpu=True))
