"""Run YOLOv5 detection on images, videos, folders, globs, .txt lists, webcams and streams.

Usage - sources:
    python detect.py --weights yolov5s.pt --source 0                 # webcam
                                                   img.jpg           # image
                                                   vid.mp4           # video
                                                   path/             # directory
                                                   list.txt          # list of images
                                                   'path/*.jpg'      # glob
                                                   'rtsp://example.com/media.mp4'  # RTSP, RTMP, HTTP stream

Usage - formats:
    python detect.py --weights yolov5s.pt                 # PyTorch
                               yolov5s.torchscript        # TorchScript
                               yolov5s.onnx               # ONNX Runtime or OpenCV DNN with --dnn
                               yolov5s_openvino_model     # OpenVINO
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from models.backends import DetectMultiBackend
from models.experimental import strip_optimizer
from utils.general import LOGGER, ROOT, print_args, set_logging
from utils.predictor import DetectionPredictor, PredictOptions, Predictor
from utils.torch_utils import select_device, smart_inference_mode


@smart_inference_mode()
def run(weights: str | Path = ROOT / "yolov5s.pt", source: str | Path = ROOT / "data/images",
        data: str | Path | None = None, imgsz: tuple[int, int] = (640, 640), conf_thres: float = 0.25,
        iou_thres: float = 0.45, max_det: int = 1000, device: str = "", view_img: bool = False,
        save_txt: bool = False, save_conf: bool = False, save_crop: bool = False, nosave: bool = False,
        classes: list[int] | None = None, agnostic_nms: bool = False, augment: bool = False,
        visualize: bool = False, project: str | Path = ROOT / "runs/detect", name: str = "exp",
        exist_ok: bool = False, line_thickness: int = 3, hide_labels: bool = False, hide_conf: bool = False,
        half: bool = False, dnn: bool = False, vid_stride: int = 1, update: bool = False, cam: str | None = None,
        cam_layer: int | None = None, prefetch: bool = True) -> Path:
    """Detect objects in source with the model in weights; returns the run folder.

    prefetch (image sources): read and letterbox the next images while the model runs, and draw and write results
    on a background thread in the same order; the outputs are the same as without it.
    """
    return predict(DetectionPredictor, locals())


def predict(task: type[Predictor], args: dict[str, Any]) -> Path:
    """Load args['weights'] and run the task's predictor with args (a run()'s arguments); then --update."""
    model = DetectMultiBackend(args["weights"], device=select_device(args["device"]), dnn=args["dnn"],
                               data=args["data"], fp16=args["half"])
    save_dir = task(model, PredictOptions.pick(args))()
    if args["update"]:
        update_weights(args["weights"])
    return save_dir


def update_weights(weights) -> None:
    """v7.0's --update: rewrite .pt weights without their optimizer, the FP16 EMA as the model; exports are kept."""
    for w in weights if isinstance(weights, (list, tuple)) else [weights]:
        if Path(w).suffix == ".pt":
            strip_optimizer(w)
        else:
            LOGGER.warning(f"WARNING --update only applies to .pt checkpoints; {w} left unchanged")


def build_parser(description: str = __doc__.split("\n")[0]) -> argparse.ArgumentParser:
    """Command-line flags as YOLOv5 v7.0's detect.py names them; segment/predict.py adds to them."""
    parser = argparse.ArgumentParser(description=description)
    add = parser.add_argument
    add("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt",
        help="model file(s): .pt, .torchscript, .onnx or an _openvino_model folder")
    add("--source", type=str, default=ROOT / "data/images",
        help="image, video, folder, glob, .txt list or stream URL; 0 is the webcam")
    add("--data", type=str, default=None, help="dataset YAML for class names the model does not carry (optional)")
    add("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640], help="input size: one side, or h w")
    add("--conf-thres", type=float, default=0.25, help="lowest confidence a kept detection may have")
    add("--iou-thres", type=float, default=0.45, help="overlap (IoU) above which NMS drops the weaker box")
    add("--max-det", type=int, default=1000, help="keep at most this many detections per image")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--view-img", action="store_true", help="show each annotated frame in a window")
    add("--save-txt", action="store_true", help="write detections as YOLO label files under labels/")
    add("--save-conf", action="store_true", help="add the confidence to each --save-txt line")
    add("--save-crop", action="store_true", help="save each detected box as an image under crops/<class>/")
    add("--nosave", action="store_true", help="write no annotated images or videos")
    add("--classes", nargs="+", type=int, help="keep only these class indices, e.g. --classes 0 2")
    add("--agnostic-nms", action="store_true", help="suppress overlaps across classes, not within each class")
    add("--augment", action="store_true", help="test-time augmentation: merge flipped and rescaled passes")
    add("--visualize", action="store_true", help="save the feature maps of every layer")
    add("--update", action="store_true", help="afterwards, drop the optimizer state from the .pt weights file(s)")
    add("--project", default=ROOT / "runs/detect", help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--line-thickness", default=3, type=int, help="box thickness at 640 px (scales with image)")
    add("--hide-labels", default=False, action="store_true", help="draw boxes without class names")
    add("--hide-conf", default=False, action="store_true", help="draw class names without confidences")
    add("--half", action="store_true", help="FP16 inference on CUDA; bf16 on CPUs that have it")
    add("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    add("--vid-stride", type=int, default=1, help="read every Nth video frame")
    add("--cam", choices=["eigen", "gradcam"], help="also save a <name>_cam.jpg class-activation heatmap per image")
    add("--cam-layer", type=int, help="layer index whose activations --cam maps (default: the last before Detect)")
    return parser


def parse_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse detect.py's flags (or those of parser); a single --weights becomes a plain string."""
    opt = (parser or build_parser()).parse_args(argv)
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then run detection with them."""
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
