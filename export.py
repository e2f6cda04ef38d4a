"""Export a YOLOv5 PyTorch model to TorchScript, ONNX, OpenVINO, TFLite, MNN or ncnn; check each against PyTorch.

Formats (models/formats/ registers one entry per format; YOLOv5's others answer "not supported"):
    Format        --include      Model
    PyTorch       -              yolov5s.pt
    TorchScript   torchscript    yolov5s.torchscript
    ONNX          onnx           yolov5s.onnx
    OpenVINO      openvino       yolov5s_openvino_model/
    TFLite        tflite         yolov5s.tflite            (litert-torch: pip install -r requirements-export.txt)
    MNN           mnn            yolov5s.mnn
    ncnn          ncnn           yolov5s_ncnn_model/

Usage:
    python export.py --weights yolov5s.pt --include torchscript onnx openvino
    python export.py --weights yolov5s.pt --include openvino --int8 --data shapes.yaml   # yolov5s_int8_openvino_model/
    python export.py --weights yolov5s.pt --include tflite --half                       # yolov5s-fp16.tflite, on CPU
    python export.py --weights yolov5s.pt --include tflite --int8 --data shapes.yaml     # yolov5s-int8.tflite
    python export.py --weights yolov5s.pt --include openvino --int8 --data shapes.yaml --int8-max-drop 0.005

Inference:
    python detect.py --weights yolov5s.onnx        # or .torchscript, _openvino_model, and --dnn for OpenCV DNN
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.exporter import Exporter, check_export, check_image, file_size, unexportable_layer  # noqa: F401
from models.formats import export_formats, exportable, format_of
from models.formats.onnx import export_onnx  # noqa: F401  (export.py's v7.0-style names stay importable)
from models.formats.openvino import export_openvino, export_openvino_int8, int8_openvino_path  # noqa: F401
from models.formats.torchscript import export_torchscript  # noqa: F401
from utils.general import LOGGER, ROOT, inactive_options, print_args, set_logging

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


def run(data: str | Path | None = None, weights: str | Path = ROOT / "yolov5s.pt", imgsz: tuple[int, int] = (640, 640),
        batch_size: int = 1, device: str = "cpu", include: tuple[str, ...] = ("torchscript", "onnx"),
        half: bool = False, inplace: bool = False, optimize: bool = False, dynamic: bool = False,
        simplify: bool = False, opset: int = 17, verbose: bool = False, keras: bool = False, workspace: int = 4,
        nms: bool = False, agnostic_nms: bool = False, topk_per_class: int = 100, topk_all: int = 100,
        iou_thres: float = 0.45, conf_thres: float = 0.25, int8: bool = False, int8_images: int = 300,
        int8_max_drop: float = 0.01, **kwargs) -> list[str]:
    """Export weights to each format in include (OpenVINO and TFLite as INT8 with int8); returns the written paths.

    keras ... conf_thres are v7.0's TensorFlow and TensorRT options: accepted, reported when set, otherwise unused.
    """
    given = dict(keras=keras, workspace=workspace, nms=nms, agnostic_nms=agnostic_nms, topk_per_class=topk_per_class,
                 topk_all=topk_all, iou_thres=iou_thres, conf_thres=conf_thres)
    unused = inactive_options(given, INACTIVE, f"this project exports only {', '.join(exportable())}")
    if unused:
        LOGGER.warning(unused)
    if kwargs:  # other YOLOv5 options for formats this project does not export
        LOGGER.warning(f"WARNING export options not used by the supported formats, ignored: {', '.join(kwargs)}")
    return Exporter(weights, include, data=data, imgsz=imgsz, batch_size=batch_size, device=device, half=half,
                    inplace=inplace, optimize=optimize, dynamic=dynamic, simplify=simplify, opset=opset, int8=int8,
                    int8_images=int8_images, int8_max_drop=int8_max_drop)()


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags as YOLOv5 v7.0's export.py names them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data", type=str, default=None, help="dataset.yaml whose class names to embed (optional)")
    add("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt", help="PyTorch checkpoint(s) to export")
    add("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640, 640], help="input size: h w, or one side")
    add("--batch-size", type=int, default=1, help="batch dimension of the exported input")
    add("--device", default="cpu", help="device to trace on: cpu, or a CUDA id such as 0")
    add("--half", action="store_true", help="FP16 weights (tflite, openvino on CPU; others need a CUDA --device)")
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
    add("--int8", action="store_true", help="OpenVINO and TFLite: INT8 quantization, calibrated on --data")
    add("--int8-images", type=int, default=300, help="INT8: number of --data train images to calibrate on")
    add("--int8-max-drop", type=float, default=0.01,
        help="INT8: most val mAP50-95 to lose; above it OpenVINO returns the layers that cost it to "
             "float, TFLite falls back to dynamic-range INT8")
    add("--include", nargs="+", default=["torchscript"],
        help=f"formats: {', '.join(exportable())} (others of YOLOv5's list are not supported)")
    opt = parser.parse_args(argv)
    for x in opt.include:
        try:
            format_of(x)
        except KeyError:
            known = ", ".join(f.argument for f in export_formats() if f.argument != "-")
            parser.error(f"unknown --include {x!r}; choose from {known}")
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
