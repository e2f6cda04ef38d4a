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

from engine.options import parse_predict_opt, predict_parser
from engine.predictor import predict, update_weights  # noqa: F401  update_weights: detect.update_weights
from engine.tasks.detect_predict import DetectionPredictor
from utils.general import ROOT, print_args, set_logging
from utils.torch_utils import smart_inference_mode


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


def build_parser(description: str = __doc__.split("\n")[0]) -> argparse.ArgumentParser:
    """Command-line flags as YOLOv5 v7.0's detect.py names them."""
    return predict_parser(description)


def parse_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse detect.py's flags (or those of parser); a single --weights becomes a plain string."""
    return parse_predict_opt(argv, parser)


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then run detection with them."""
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
