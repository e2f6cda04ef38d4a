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
from models.experimental import strip_optimizer
from utils.cam import DetectionCAM, overlay_cam, unletterbox
from utils.general import (
    LOGGER,
    ROOT,
    check_img_size,
    check_imshow,
    colorstr,
    increment_path,
    non_max_suppression,
    print_args,
    scale_boxes,
    set_logging,
    xyxy2xywh,
)
from utils.pipeline import OrderedWriter, Prefetcher
from utils.plots import Annotator, colors, save_one_box
from utils.sources import LoadImages, LoadStreams, is_stream_source
from utils.torch_utils import select_device, smart_inference_mode, time_sync


def preprocess(im: np.ndarray | torch.Tensor, model: DetectMultiBackend) -> torch.Tensor:
    """uint8 CHW (or BCHW) RGB image to a float BCHW tensor in [0, 1] on the model's device; tensors pass through."""
    if isinstance(im, torch.Tensor):  # already converted on the prefetch thread
        return im
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


def draw_detections(annotator: Annotator, det: torch.Tensor, names: dict, draw: bool, hide_labels: bool = False,
                    hide_conf: bool = False, crop_dir: Path | None = None, imc: np.ndarray | None = None,
                    stem: str = "") -> None:
    """Box and label of each detection, the least confident first (the best on top); crops into crop_dir/<class>/."""
    for *xyxy, conf, cls in reversed(det[:, :6].tolist()):
        c = int(cls)
        if draw:
            label = None if hide_labels else (names[c] if hide_conf else f"{names[c]} {conf:.2f}")
            annotator.box_label(xyxy, label or "", color=colors(c, True))
        if crop_dir is not None:
            save_one_box(xyxy, imc, file=crop_dir / names[c] / f"{stem}.jpg", BGR=True)


def source_item(dataset, path, im0s, i: int, webcam: bool) -> tuple[Path, np.ndarray, int, str]:
    """Image i of a batch from LoadImages or LoadStreams: (path, a copy of the original image, frame, log prefix)."""
    if webcam:  # a stream batch holds one frame per stream
        return Path(path[i]), im0s[i].copy(), dataset.count, f"{i}: "
    return Path(path), im0s.copy(), getattr(dataset, "frame", 0), ""


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
        half: bool = False, dnn: bool = False, vid_stride: int = 1, update: bool = False, cam: str | None = None,
        cam_layer: int | None = None, prefetch: bool = True) -> Path:
    """Detect objects in source with the model in weights; returns the run folder.

    prefetch (image sources): read and letterbox the next images while the model runs, and write results on a
    background thread in the same order; the outputs are the same as without it.
    """
    source = str(source)
    save_img = not nosave
    webcam = is_stream_source(source)

    save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
    (save_dir / "labels" if save_txt else save_dir).mkdir(parents=True, exist_ok=True)

    device = select_device(device)
    model = DetectMultiBackend(weights, device=device, dnn=dnn, data=data, fp16=half)
    stride, names, pt = model.stride, model.names, model.pt
    imgsz = [imgsz] if isinstance(imgsz, int) else list(imgsz)  # run(imgsz=640) from Python, as well as (h, w)
    imgsz = check_img_size(imgsz * (2 if len(imgsz) == 1 else 1), s=stride)
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
    pipelined = prefetch and not webcam and not any(dataset.video_flag)  # videos keep their reader on this thread
    items, writer = dataset, None
    if pipelined:  # the prefetch thread also turns each letterboxed image into the input tensor
        items = Prefetcher((p, preprocess(im, model), im0, cap, s) for p, im, im0, cap, s in dataset)
        writer = OrderedWriter()
    write = writer.submit if writer else (lambda fn, *args: fn(*args))
    for path, im, im0s, vid_cap, s in items:
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
            p, im0, frame, tag = source_item(dataset, path, im0s, i, webcam)
            s += tag
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
                    write(write_labels, txt_file, det, im0.shape, save_conf)
                draw_detections(annotator, det, names, save_img or save_crop or view_img, hide_labels, hide_conf,
                                save_dir / "crops" if save_crop else None, imc, p.stem)
            im0 = annotator.result()
            if view_img:
                cv2.imshow(str(p), im0)
                cv2.waitKey(1)
            if save_img:
                if dataset.mode == "image":
                    write(cv2.imwrite, str(save_path), im0)
                    if heats is not None:
                        heat = unletterbox(heats[i], im0.shape)
                        cv2.imwrite(str(save_path.with_name(f"{p.stem}_cam.jpg")), overlay_cam(im0, heat))
                else:  # video or stream: one writer per output file
                    videos.write(save_path if not webcam else save_dir / f"{p.stem}_{i}", im0, vid_cap)
        LOGGER.info(f"{s}{'' if len(det) else '(no detections), '}{(t3 - t2) * 1e3:.1f}ms")
    videos.release()
    if writer:
        writer.close()  # every file is on disk before finish() counts them
    finish(dt, seen, imgsz, save_dir, save_txt, save_img, weights if update else None)
    return save_dir


def finish(dt: list[float], seen: int, imgsz: list[int], save_dir: Path, save_txt: bool, save_img: bool,
           update_weights=None, post: str = "NMS") -> None:
    """Log the per-image speed and where results went; with update_weights, strip their optimizer (--update).

    post names the third timed stage: NMS for detection, the softmax for classification ('post-process').
    """
    t = tuple(x / max(seen, 1) * 1e3 for x in dt)
    LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms {post} per image "
                f"at shape {(1, 3, *imgsz)}")
    if save_txt or save_img:
        n = len(list(save_dir.glob("labels/*.txt")))
        extra = f"\n{n} label{'s' * (n != 1)} saved to {save_dir / 'labels'}" if save_txt else ""
        LOGGER.info(f"Results saved to {colorstr('bold', str(save_dir))}{extra}")
    if update_weights is not None:  # v7.0's --update: rewrite the weights without their optimizer, FP16 EMA as model
        for w in update_weights if isinstance(update_weights, (list, tuple)) else [update_weights]:
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
