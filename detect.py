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

import cv2
import numpy as np
import torch

from models.backends import DetectMultiBackend
from utils.cam import DetectionCAM, overlay_cam, unletterbox
from utils.general import (
    LOGGER,
    ROOT,
    check_img_size,
    check_imshow,
    colorstr,
    increment_path,
    non_max_suppression,
    scale_boxes,
    set_logging,
    xyxy2xywh,
)
from utils.plots import Annotator, colors, save_one_box
from utils.sources import LoadImages, LoadStreams, is_stream_source
from utils.torch_utils import select_device, smart_inference_mode, time_sync


def preprocess(im: np.ndarray, model: DetectMultiBackend) -> torch.Tensor:
    """uint8 CHW (or BCHW) RGB image to a float BCHW tensor in [0, 1] on the model's device."""
    x = torch.from_numpy(im).to(model.device)
    x = (x.half() if model.fp16 else x.float()) / 255
    return x[None] if x.ndim == 3 else x


def describe(det: torch.Tensor, names: dict) -> str:
    """Counts per class, as '2 circles, 1 square, '."""
    s = ""
    for c in det[:, 5].unique():
        n = int((det[:, 5] == c).sum())
        s += f"{n} {names[int(c)]}{'s' * (n > 1)}, "
    return s


def write_labels(txt_file: Path, det: torch.Tensor, shape: tuple[int, ...], save_conf: bool) -> None:
    """Append one 'class x y w h [conf]' line per detection, normalised by the image width/height."""
    gn = torch.tensor(shape)[[1, 0, 1, 0]]
    with open(txt_file, "a") as f:
        for *xyxy, conf, cls in det.tolist():
            xywh = (xyxy2xywh(torch.tensor(xyxy).view(1, 4)) / gn).view(-1).tolist()
            line = (int(cls), *xywh, conf) if save_conf else (int(cls), *xywh)
            f.write(("%g " * len(line)).rstrip() % line + "\n")


class VideoSink:
    """The annotated-video writer of each output path, opened at the source's fps and frame size."""

    def __init__(self):
        self.writers: dict[str, cv2.VideoWriter] = {}

    def write(self, path: Path, frame: np.ndarray, cap: cv2.VideoCapture | None) -> None:
        key = str(path)
        if key not in self.writers:
            fps = cap.get(cv2.CAP_PROP_FPS) if cap is not None else 0
            fps = fps if fps and np.isfinite(fps) and fps > 0 else 30  # streams may report no rate
            h, w = frame.shape[:2]
            # mp4v is in every OpenCV build; the suffix is forced to .mp4 so players recognise the container
            self.writers[key] = cv2.VideoWriter(str(path.with_suffix(".mp4")), cv2.VideoWriter_fourcc(*"mp4v"),
                                                fps, (w, h))
        self.writers[key].write(frame)

    def release(self) -> None:
        for w in self.writers.values():
            w.release()
        self.writers.clear()


@smart_inference_mode()
def run(weights: str | Path = ROOT / "yolov5s.pt", source: str | Path = ROOT / "data/images",
        data: str | Path | None = None, imgsz: tuple[int, int] = (640, 640), conf_thres: float = 0.25,
        iou_thres: float = 0.45, max_det: int = 1000, device: str = "", view_img: bool = False,
        save_txt: bool = False, save_conf: bool = False, save_crop: bool = False, nosave: bool = False,
        classes: list[int] | None = None, agnostic_nms: bool = False, augment: bool = False,
        visualize: bool = False, project: str | Path = ROOT / "runs/detect", name: str = "exp",
        exist_ok: bool = False, line_thickness: int = 3, hide_labels: bool = False, hide_conf: bool = False,
        half: bool = False, dnn: bool = False, vid_stride: int = 1, cam: str | None = None,
        cam_layer: int | None = None) -> Path:
    """Detect objects in source with the model in weights; returns the run folder."""
    source = str(source)
    save_img = not nosave
    webcam = is_stream_source(source)

    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
    (save_dir / "labels" if save_txt else save_dir).mkdir(parents=True, exist_ok=True)

    device = select_device(device)
    model = DetectMultiBackend(weights, device=device, dnn=dnn, data=data, fp16=half)
    stride, names, pt = model.stride, model.names, model.pt
    imgsz = check_img_size(list(imgsz) * (2 if len(imgsz) == 1 else 1), s=stride)
    view_img = view_img and check_imshow(warn=True)
    if (augment or visualize) and not pt:
        LOGGER.warning(f"WARNING --augment and --visualize need a PyTorch .pt model; ignored for {weights}")
        augment = visualize = False
    if cam and not pt:
        LOGGER.warning(f"WARNING --cam needs a PyTorch .pt model; ignored for {weights}")
    cammer = DetectionCAM(model.model, cam, cam_layer, conf_thres) if cam and pt else None

    # .pt models take the smallest stride-multiple rectangle (auto); exports were traced at one fixed shape
    if webcam:
        dataset = LoadStreams(source, img_size=imgsz, stride=stride, auto=pt, vid_stride=vid_stride)
    else:
        dataset = LoadImages(source, img_size=imgsz, stride=stride, auto=pt, vid_stride=vid_stride)
    model.warmup(imgsz=(1 if pt else len(dataset) if webcam else 1, 3, *imgsz))

    videos, seen, dt = VideoSink(), 0, [0.0, 0.0, 0.0]
    for path, im, im0s, vid_cap, s in dataset:
        t1 = time_sync()
        x = preprocess(im, model)
        t2 = time_sync()
        vis_dir = increment_path(save_dir / Path(path).stem, mkdir=True) if visualize else False
        pred = model(x, augment=augment, visualize=vis_dir)
        t3 = time_sync()
        pred = non_max_suppression(pred, conf_thres, iou_thres, classes, agnostic_nms, max_det=max_det)
        t4 = time_sync()
        heats = cammer(x) if cammer and dataset.mode == "image" else None  # (B, h, w) in [0, 1] at input size
        dt = [dt[0] + t2 - t1, dt[1] + t3 - t2, dt[2] + t4 - t3]

        for i, det in enumerate(pred):  # per image
            seen += 1
            if webcam:
                p, im0, frame = Path(path[i]), im0s[i].copy(), dataset.count
                s += f"{i}: "
            else:
                p, im0, frame = Path(path), im0s.copy(), getattr(dataset, "frame", 0)
            save_path = save_dir / p.name
            txt_file = save_dir / "labels" / (p.stem + ("" if dataset.mode == "image" else f"_{frame}") + ".txt")
            s += f"{x.shape[2]}x{x.shape[3]} "
            imc = im0.copy() if save_crop else im0  # crops are cut from the undrawn image
            lw = max(round(line_thickness * max(im0.shape[:2]) / 640), 1)  # --line-thickness is for 640 px
            annotator = Annotator(im0, line_width=lw, example=str(names))
            if len(det):
                det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], im0.shape).round()
                s += describe(det, names)
                if save_txt:
                    write_labels(txt_file, det, im0.shape, save_conf)
                for *xyxy, conf, cls in reversed(det.tolist()):
                    c = int(cls)
                    if save_img or save_crop or view_img:
                        label = None if hide_labels else (names[c] if hide_conf else f"{names[c]} {conf:.2f}")
                        annotator.box_label(xyxy, label or "", color=colors(c, True))
                    if save_crop:
                        save_one_box(xyxy, imc, file=save_dir / "crops" / names[c] / f"{p.stem}.jpg", BGR=True)
            im0 = annotator.result()
            if view_img:
                cv2.imshow(str(p), im0)
                cv2.waitKey(1)
            if save_img:
                if dataset.mode == "image":
                    cv2.imwrite(str(save_path), im0)
                    if heats is not None:
                        heat = unletterbox(heats[i], im0.shape)
                        cv2.imwrite(str(save_path.with_name(f"{p.stem}_cam.jpg")), overlay_cam(im0, heat))
                else:  # video or stream: one writer per output file
                    videos.write(save_path if not webcam else save_dir / f"{p.stem}_{i}", im0, vid_cap)
        LOGGER.info(f"{s}{'' if len(det) else '(no detections), '}{(t3 - t2) * 1e3:.1f}ms")
    videos.release()

    t = tuple(x / max(seen, 1) * 1e3 for x in dt)
    LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms NMS per image "
                f"at shape {(1, 3, *imgsz)}")
    if save_txt or save_img:
        n = len(list(save_dir.glob("labels/*.txt")))
        extra = f"\n{n} label{'s' * (n != 1)} saved to {save_dir / 'labels'}" if save_txt else ""
        LOGGER.info(f"Results saved to {colorstr('bold', str(save_dir))}{extra}")
    return save_dir


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags as YOLOv5 v7.0's detect.py names them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt", help="model path(s)")
    parser.add_argument("--source", type=str, default=ROOT / "data/images", help="file/dir/glob/.txt/URL, 0 for webcam")
    parser.add_argument("--data", type=str, default=None, help="(optional) dataset.yaml for names the model lacks")
    parser.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640], help="inference size h,w")
    parser.add_argument("--conf-thres", type=float, default=0.25, help="confidence threshold")
    parser.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--max-det", type=int, default=1000, help="maximum detections per image")
    parser.add_argument("--device", default="", help="cuda device, i.e. 0 or 0,1,2,3 or cpu")
    parser.add_argument("--view-img", action="store_true", help="show results")
    parser.add_argument("--save-txt", action="store_true", help="save results to *.txt")
    parser.add_argument("--save-conf", action="store_true", help="save confidences in --save-txt labels")
    parser.add_argument("--save-crop", action="store_true", help="save cropped prediction boxes")
    parser.add_argument("--nosave", action="store_true", help="do not save images/videos")
    parser.add_argument("--classes", nargs="+", type=int, help="filter by class: --classes 0, or --classes 0 2 3")
    parser.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    parser.add_argument("--augment", action="store_true", help="augmented inference")
    parser.add_argument("--visualize", action="store_true", help="visualize features")
    parser.add_argument("--project", default=ROOT / "runs/detect", help="save results to project/name")
    parser.add_argument("--name", default="exp", help="save results to project/name")
    parser.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    parser.add_argument("--line-thickness", default=3, type=int, help="box thickness at 640 px (scales with image)")
    parser.add_argument("--hide-labels", default=False, action="store_true", help="hide labels")
    parser.add_argument("--hide-conf", default=False, action="store_true", help="hide confidences")
    parser.add_argument("--half", action="store_true", help="use FP16 half-precision inference")
    parser.add_argument("--dnn", action="store_true", help="use OpenCV DNN for ONNX inference")
    parser.add_argument("--vid-stride", type=int, default=1, help="video frame-rate stride")
    parser.add_argument("--cam", choices=["eigen", "gradcam"], help="save a <name>_cam.jpg heatmap beside each image")
    parser.add_argument("--cam-layer", type=int, help="layer index for --cam (default: the last before Detect)")
    opt = parser.parse_args(argv)
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


def main(opt: argparse.Namespace) -> Path:
    """Run detection with the parsed flags."""
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
