"""Export a YOLOv5 PyTorch model to TorchScript, ONNX or OpenVINO, and check each export against PyTorch.

Formats (see utils/export_formats.py for the full YOLOv5 list; the others answer "not supported"):
    Format        --include      Model
    PyTorch       -              yolov5s.pt
    TorchScript   torchscript    yolov5s.torchscript
    ONNX          onnx           yolov5s.onnx
    OpenVINO      openvino       yolov5s_openvino_model/

Usage:
    python export.py --weights yolov5s.pt --include torchscript onnx openvino
    python export.py --weights yolov5s.pt --include openvino --int8 --data shapes.yaml   # yolov5s_int8_openvino_model/

Inference:
    python detect.py --weights yolov5s.onnx        # or .torchscript, _openvino_model, and --dnn for OpenCV DNN
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from models.backends import DetectMultiBackend
from models.experimental import attempt_load
from models.yolo import ClassificationModel, Detect
from utils.augmentations import letterbox
from utils.classify_data import calibration_images, check_cls_dataset
from utils.export_formats import FORMATS, SUPPORTED, export_path, format_of
from utils.general import (
    LOGGER,
    ROOT,
    check_img_size,
    check_yaml,
    colorstr,
    inactive_options,
    print_args,
    set_logging,
    yaml_load,
    yaml_save,
)
from utils.sources import IMG_FORMATS
from utils.torch_utils import select_device

# YOLOv5 v7.0's TensorFlow and TensorRT options: accepted so v7.0 command lines run, reported when set
INACTIVE = {
    "keras": ("--keras", False, "TensorFlow"),
    "nms": ("--nms", False, "TensorFlow"),
    "agnostic_nms": ("--agnostic-nms", False, "TensorFlow"),
    "topk_per_class": ("--topk-per-class", 100, "TensorFlow"),
    "topk_all": ("--topk-all", 100, "TensorFlow"),
    "iou_thres": ("--iou-thres", 0.45, "TensorFlow"),
    "conf_thres": ("--conf-thres", 0.25, "TensorFlow"),
    "workspace": ("--workspace", 4, "TensorRT"),
}


def file_size(path: str | Path) -> float:
    """Size of a file, or of everything inside a folder, in MB."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.glob("**/*") if f.is_file()) / 1e6
    return p.stat().st_size / 1e6 if p.is_file() else 0.0


@contextlib.contextmanager
def quiet_tracing():
    """Silence only the tracer's own warnings: torch.jit.trace/ONNX export are deprecated in torch>=2.9 but still
    work, and the TracerWarnings flag Python-side shape checks that are constant for a fixed-size export."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(trace|trace_method|script)`? is deprecated",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        yield


def export_torchscript(model, im: torch.Tensor, file: Path, metadata: dict, optimize: bool,
                       prefix: str = colorstr("TorchScript:")) -> Path:
    """Trace the model and save it with its metadata (shape, stride, names) as config.txt."""
    LOGGER.info(f"\n{prefix} starting export with torch {torch.__version__}...")
    f = export_path(file, format_of("torchscript"))
    with quiet_tracing():  # the tracer's own re-run check is skipped: check_export compares real outputs after
        ts = torch.jit.trace(model, im, strict=False, check_trace=False)
    extra_files = {"config.txt": json.dumps({"shape": list(im.shape), **metadata})}
    if optimize:  # https://pytorch.org/tutorials/recipes/mobile_interpreter.html
        from torch.utils.mobile_optimizer import optimize_for_mobile

        optimize_for_mobile(ts)._save_for_lite_interpreter(str(f), _extra_files=extra_files)
    else:
        ts.save(str(f), _extra_files=extra_files)
    return f


def export_onnx(model, im: torch.Tensor, file: Path, opset: int, dynamic: bool, simplify: bool, metadata: dict,
                prefix: str = colorstr("ONNX:"), n_outputs: int = 1) -> Path:
    """Export to ONNX (input 'images', outputs 'output0' and for segmentation the prototypes 'output1'), store
    stride/names as metadata, optionally simplify."""
    import onnx

    LOGGER.info(f"\n{prefix} starting export with onnx {onnx.__version__} opset {opset}...")
    f = export_path(file, format_of("onnx"))
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


def export_openvino(onnx_file: Path, file: Path, metadata: dict, half: bool, prefix: str = colorstr("OpenVINO:")):
    """Convert the ONNX export to OpenVINO IR (xml + bin) in <name>_openvino_model/, with <name>.yaml metadata."""
    try:
        import openvino as ov
    except ImportError as e:
        raise ImportError("OpenVINO export needs the 'openvino' package: pip install openvino") from e
    LOGGER.info(f"\n{prefix} starting export with openvino {ov.__version__}...")
    f = export_path(file, format_of("openvino"))
    f.mkdir(parents=True, exist_ok=True)
    xml = f / file.with_suffix(".xml").name
    ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=half)
    yaml_save(xml.with_suffix(".yaml"), metadata)
    return f


def export_layer(fmt: str, layer: torch.nn.Module, args: tuple, opset: int = 17) -> None:
    """Export one layer alone to fmt ('torchscript', 'onnx', 'openvino' or 'opencv' for OpenCV DNN reading ONNX)."""
    with quiet_tracing():
        if fmt == "torchscript":
            torch.jit.trace(layer, args, strict=False, check_trace=False)
            return
        buffer = io.BytesIO()
        torch.onnx.export(layer, args, buffer, opset_version=opset, do_constant_folding=True, dynamo=False)
    if fmt == "openvino":
        import openvino as ov

        ov.convert_model(io.BytesIO(buffer.getvalue()))
    elif fmt == "opencv":
        cv2.dnn.readNetFromONNX(np.frombuffer(buffer.getvalue(), dtype=np.uint8))


def unexportable_layer(model: torch.nn.Module, im: torch.Tensor, fmt: str, opset: int = 17) -> str | None:
    """'layer i (type)' for the first layer of model that cannot be exported to fmt on its own, with the error."""
    layers = list(getattr(model, "model", []))
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda _, args, i=i: inputs.setdefault(i, args)) for i, m in enumerate(layers)]
    try:
        with torch.no_grad():
            model(im)
    finally:
        for h in hooks:
            h.remove()
    for i, m in enumerate(layers):
        try:
            export_layer(fmt, m, inputs[i], opset)
        except Exception as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return f"layer {i} ({getattr(m, 'type', type(m).__name__)}): {reason}"
    return None


def export_openvino_int8(onnx_file: Path, file: Path, metadata: dict, data: str | Path, imgsz: list[int],
                         images: int = 300, prefix: str = colorstr("OpenVINO INT8:"), calibration=None) -> Path:
    """INT8 OpenVINO model in <name>_int8_openvino_model/: the ONNX export quantized by NNCF on `data` train images.

    calibration (an iterable of input arrays) replaces the detection images, e.g. a classifier's centre crops.
    """
    try:
        import openvino as ov
    except ImportError as e:
        raise ImportError("OpenVINO export needs the 'openvino' package: pip install openvino") from e
    from utils.quantize import CalibrationImages, quantize_openvino

    LOGGER.info(f"\n{prefix} starting export with openvino {ov.__version__}...")
    if imgsz[0] != imgsz[1]:
        raise ValueError(f"INT8 calibration letterboxes to a square as val.py does; got --imgsz {imgsz}")
    calibration = calibration or CalibrationImages(data, imgsz[0], int(metadata["stride"]), n=images)
    quantized = quantize_openvino(ov.convert_model(str(onnx_file)), calibration, prefix=prefix)
    f = int8_openvino_path(file)
    f.mkdir(parents=True, exist_ok=True)
    xml = f / file.with_suffix(".xml").name
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    yaml_save(xml.with_suffix(".yaml"), metadata)
    return f


def int8_openvino_path(weights: str | Path) -> Path:
    """Where the INT8 OpenVINO export of `weights` goes: best.pt -> best_int8_openvino_model/."""
    w = Path(weights)
    return w.parent / f"{w.stem}_int8{format_of('openvino').suffix}"


def check_image(shape: tuple[int, ...]) -> tuple[torch.Tensor, str]:
    """A real image from data/images, letterboxed to the export shape and batched; noise when there is none."""
    h, w = shape[2:]
    files = sorted(p for p in (ROOT / "data" / "images").glob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
    im0 = cv2.imread(str(files[0])) if files else None
    if im0 is None:
        LOGGER.warning("WARNING no image in data/images to check exports on; using random noise")
        im0, name = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8), "noise"
    else:
        name = files[0].name
    im = letterbox(im0, (h, w), auto=False)[0].transpose((2, 0, 1))[::-1]
    x = torch.from_numpy(np.ascontiguousarray(im)).float().div(255)[None]
    return x.expand(shape[0], -1, -1, -1).contiguous(), name


@torch.no_grad()
def check_export(f: Path, y_pt: torch.Tensor | tuple, im: torch.Tensor, dnn: bool = False) -> float:
    """Run an exported model through DetectMultiBackend and return its max abs difference from PyTorch's outputs.

    y_pt is the output tensor, or for segmentation the (predictions, prototypes) pair, compared one by one.
    """
    backend = DetectMultiBackend(f, device=torch.device("cpu"), dnn=dnn)
    y = backend(im.cpu().float())
    y = list(y) if isinstance(y, (list, tuple)) else [y]
    y_pt = list(y_pt) if isinstance(y_pt, (list, tuple)) else [y_pt]
    if len(y) < len(y_pt):
        raise RuntimeError(f"{f}: {len(y)} output(s), PyTorch has {len(y_pt)}")
    diff = 0.0
    for a, b in zip(y, y_pt):
        if a.shape != b.shape:
            raise RuntimeError(f"{f}: output shape {tuple(a.shape)} differs from PyTorch's {tuple(b.shape)}")
        diff = max(diff, float((a.float() - b.float().cpu()).abs().max()))
    return diff


def run(data: str | Path | None = None, weights: str | Path = ROOT / "yolov5s.pt", imgsz: tuple[int, int] = (640, 640),
        batch_size: int = 1, device: str = "cpu", include: tuple[str, ...] = ("torchscript", "onnx"),
        half: bool = False, inplace: bool = False, optimize: bool = False, dynamic: bool = False,
        simplify: bool = False, opset: int = 17, verbose: bool = False, keras: bool = False, workspace: int = 4,
        nms: bool = False, agnostic_nms: bool = False, topk_per_class: int = 100, topk_all: int = 100,
        iou_thres: float = 0.45, conf_thres: float = 0.25, int8: bool = False, int8_images: int = 300,
        **kwargs) -> list[str]:
    """Export weights to each format in include (OpenVINO as INT8 with int8); returns the written paths.

    keras ... conf_thres are v7.0's TensorFlow and TensorRT options: accepted, reported when set, otherwise unused.
    """
    t0 = time.time()
    given = dict(keras=keras, workspace=workspace, nms=nms, agnostic_nms=agnostic_nms, topk_per_class=topk_per_class,
                 topk_all=topk_all, iou_thres=iou_thres, conf_thres=conf_thres)
    unused = inactive_options(given, INACTIVE, f"this project exports only {', '.join(SUPPORTED)}")
    if unused:
        LOGGER.warning(unused)
    if kwargs:  # other YOLOv5 options for formats this project does not export
        LOGGER.warning(f"WARNING export options not used by the supported formats, ignored: {', '.join(kwargs)}")
    include = [x.lower() for x in include]
    for x in include:
        fmt = format_of(x)  # KeyError naming the known formats for a misspelt one
        if not fmt.supported:
            LOGGER.error(f"{fmt.name} export (--include {x}) is not supported by this project; supported: "
                         f"{', '.join(SUPPORTED)}")
    todo = [x for x in include if format_of(x).supported]
    if not todo:
        LOGGER.error(f"Nothing to export: choose --include from {', '.join(SUPPORTED)}")
        return []
    if int8:
        if not data:
            raise ValueError("--int8 needs --data dataset.yaml: INT8 quantization calibrates on images of its train "
                             "split (it never calibrates on random data)")
        if half:
            raise ValueError("--int8 and --half cannot be combined: choose one precision")
        if "openvino" not in todo:
            raise ValueError(f"--int8 quantizes OpenVINO exports only; add --include openvino (got {', '.join(todo)})")
        others = [x for x in todo if x != "openvino"]
        if others:
            LOGGER.info(f"--int8 applies to OpenVINO only; {', '.join(others)} exported in FP32")
    file = Path(weights)
    if not file.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    device = select_device(device)
    if half and device.type == "cpu":
        raise ValueError("--half exports need a GPU (--device 0); FP16 convolutions are not run on CPU")
    if half and dynamic:
        raise ValueError("--half and --dynamic cannot be combined")
    if optimize and device.type != "cpu":
        raise ValueError("--optimize (mobile TorchScript) needs --device cpu")

    model = attempt_load(str(file), device=device, inplace=True, fuse=True)
    classifier = isinstance(model, ClassificationModel) or type(model).__module__.startswith("torchvision.")
    if data and classifier:  # an ImageFolder's class folders replace the checkpoint's names
        model.names = check_cls_dataset(data)["names"]
    elif data:  # names from a dataset YAML replace the checkpoint's
        names = yaml_load(check_yaml(data))["names"]
        model.names = dict(enumerate(names)) if isinstance(names, list) else {int(k): v for k, v in names.items()}
    gs = max(int(model.stride.max()), 32)
    imgsz = list(imgsz) * (2 if len(imgsz) == 1 else 1)
    imgsz = [check_img_size(x, gs) for x in imgsz]
    im, image_name = check_image((batch_size, 3, *imgsz))
    im = im.to(device)

    model.eval()
    for m in model.modules():
        if isinstance(m, Detect):
            m.inplace, m.dynamic, m.export = inplace, dynamic, True
    with torch.no_grad():
        for _ in range(2):
            y = model(im)  # dry runs build the Detect grids, so tracing records constants, not their creation
    if half:
        im, model = im.half(), model.half()
        with torch.no_grad():
            y = model(im)
    # (predictions,), for segmentation (predictions, mask prototypes), for a classifier its (batch, nc) logits tensor
    outputs = tuple(y) if isinstance(y, (list, tuple)) else (y,)
    y = outputs[0]
    metadata = {"stride": gs, "names": model.names}
    LOGGER.info(f"\n{colorstr('PyTorch:')} starting from {file} with output shape {tuple(y.shape)} "
                f"({file_size(file):.1f} MB)")

    written, rows = [], []
    failed, done = [], set()
    for x in [f.argument for f in FORMATS if f.argument in todo]:  # table order: ONNX before OpenVINO needs it
        t = time.time()
        try:
            if x == "torchscript":
                f = export_torchscript(model, im, file, metadata, optimize)
            elif x == "onnx":
                f = export_onnx(model, im, file, opset, dynamic, simplify, metadata, n_outputs=len(outputs))
            elif x == "openvino":
                onnx_file = export_path(file, format_of("onnx"))
                if "onnx" not in done:
                    onnx_file = export_onnx(model, im, file, opset, dynamic, simplify, metadata,
                                            n_outputs=len(outputs))
                if int8:  # classifiers calibrate on centre crops of their ImageFolder, as classify/val.py reads it
                    images = calibration_images(data, imgsz[0], int8_images) if classifier else None
                    f = export_openvino_int8(onnx_file, file, metadata, data, imgsz, int8_images, calibration=images)
                else:
                    f = export_openvino(onnx_file, file, metadata, half)
        except Exception as e:  # name the block that cannot be exported to this format, then go on with the others
            where = unexportable_layer(model, im, "onnx" if x == "openvino" and "onnx" in failed else x, opset)
            name = format_of(x).name
            LOGGER.error(f"{name} export of {file} failed: " + (f"{where}; this block cannot be exported to {name}"
                         if where else f"{type(e).__name__}: {e}"))
            failed.append(x)
            continue
        dt = time.time() - t
        diff = check_export(f, outputs, im)
        line = f"{format_of(x).name:<12} {str(f):<60} {file_size(f):8.1f} MB {dt:7.1f} s   max|diff| {diff:.2e}"
        if x == "onnx" and not dynamic:
            try:
                line += f", OpenCV DNN {check_export(f, outputs, im, dnn=True):.2e}"
            except Exception:  # ONNX Runtime runs it; OpenCV DNN does not support every ONNX graph
                where = unexportable_layer(model, im, "opencv", opset)
                LOGGER.warning(f"WARNING {f}: OpenCV DNN (--dnn) cannot run it" + (f", {where}" if where else ""))
                line += ", OpenCV DNN cannot run it"
        tol = 1e-2 * max(float(y.abs().max()), 1.0) if half else 1e-3 * max(float(y.abs().max()), 1.0)
        if x == "openvino" and int8:  # quantization moves boxes by pixels: val.py's mAP is the check that counts
            line += " (INT8: compare top-1 with classify/val.py)" if classifier else " (INT8: compare mAP with val.py)"
        elif diff > tol:
            LOGGER.warning(f"WARNING {f}: output differs from PyTorch by {diff:.3g} (> {tol:.3g}) on {image_name}")
        rows.append(line)
        written.append(str(f))
        done.add(x)
    if not written:
        LOGGER.error(f"Nothing exported: {', '.join(format_of(x).name for x in failed)} failed (see above)")
        return []

    scripts = ("segment/predict.py", "segment/val.py") if len(outputs) > 1 else ("detect.py", "val.py")
    if classifier:
        scripts = ("classify/predict.py", "classify/val.py")
    LOGGER.info(f"\nExport complete ({time.time() - t0:.1f}s), checked on {image_name} at shape {tuple(im.shape)}\n"
                f"{'Format':<12} {'File':<60} {'Size':>11} {'Time':>9}   vs PyTorch\n" + "\n".join(rows) +
                f"\nResults saved to {colorstr('bold', str(file.parent.resolve()))}"
                f"\nDetect:          python {scripts[0]} --weights {written[-1]}"
                f"\nValidate:        python {scripts[1]} --weights {written[-1]}")
    return written


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags as YOLOv5 v7.0's export.py names them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data", type=str, default=None, help="dataset.yaml whose class names to embed (optional)")
    add("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt", help="PyTorch checkpoint(s) to export")
    add("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640, 640], help="input size: h w, or one side")
    add("--batch-size", type=int, default=1, help="batch dimension of the exported input")
    add("--device", default="cpu", help="device to trace on: cpu, or a CUDA id such as 0")
    add("--half", action="store_true", help="export FP16 weights (needs a CUDA --device)")
    add("--inplace", action="store_true", help="let Detect decode boxes in place (inplace=True)")
    add("--keras", action="store_true", help="TensorFlow: save as Keras (not exported here)")
    add("--optimize", action="store_true", help="TorchScript: prepare for PyTorch Mobile (CPU only)")
    add("--dynamic", action="store_true", help="ONNX: variable batch, height and width")
    add("--simplify", action="store_true", help="ONNX: slim the graph with onnxslim")
    add("--opset", type=int, default=17, help="ONNX opset to export with")
    add("--verbose", action="store_true", help="log more detail")
    add("--workspace", type=int, default=4, help="TensorRT builder memory in GB (not exported here)")
    add("--nms", action="store_true", help="TensorFlow: build NMS into the model (not exported here)")
    add("--agnostic-nms", action="store_true", help="TensorFlow: class-agnostic built-in NMS (not exported here)")
    add("--topk-per-class", type=int, default=100, help="TensorFlow NMS: boxes kept per class (not exported here)")
    add("--topk-all", type=int, default=100, help="TensorFlow NMS: boxes kept in all (not exported here)")
    add("--iou-thres", type=float, default=0.45, help="TensorFlow NMS: overlap limit (not exported here)")
    add("--conf-thres", type=float, default=0.25, help="TensorFlow NMS: lowest confidence (not exported here)")
    add("--int8", action="store_true", help="OpenVINO: INT8 quantization with NNCF, calibrated on --data")
    add("--int8-images", type=int, default=300, help="INT8: number of --data train images to calibrate on")
    add("--include", nargs="+", default=["torchscript"],
        help=f"formats: {', '.join(SUPPORTED)} (others of YOLOv5's list are not supported)")
    opt = parser.parse_args(argv)
    for x in opt.include:
        try:
            format_of(x)
        except KeyError:
            parser.error(f"unknown --include {x!r}; choose from {', '.join(f.argument for f in FORMATS[1:])}")
    return opt


def main(opt: argparse.Namespace) -> list[str]:
    """Echo the flags, then export each of --weights."""
    print_args(vars(opt))
    files = []
    for w in opt.weights if isinstance(opt.weights, list) else [opt.weights]:
        files += run(**{**vars(opt), "weights": w})
    return files


if __name__ == "__main__":
    set_logging()
    if not main(parse_opt()):
        raise SystemExit(1)  # nothing was exported (only unsupported formats requested): say so to shells and CI
