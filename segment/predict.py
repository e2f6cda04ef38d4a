"""Run YOLOv5 instance segmentation on images, videos, folders, globs, .txt lists, webcams and streams.

Usage:
    python segment/predict.py --weights yolov5n-seg.pt --source data/images          # masks and boxes drawn
    python segment/predict.py --weights best.pt --source img.jpg --save-txt          # + polygons in labels/*.txt
    python segment/predict.py --weights best.onnx --source vid.mp4 --retina-masks    # full-resolution masks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: `import val` / `import train` must find the root scripts, not this folder's
    sys.path.insert(0, str(ROOT))

import detect  # noqa: E402
from models.backends import DetectMultiBackend  # noqa: E402
from utils.general import (  # noqa: E402
    LOGGER,
    check_img_size,
    check_imshow,
    colorstr,
    increment_path,
    non_max_suppression,
    print_args,
    scale_boxes,
    set_logging,
)
from utils.plots import Annotator, colors, save_one_box  # noqa: E402
from utils.segment.general import masks2segments, process_mask, process_mask_native, scale_segments  # noqa: E402
from utils.segment.plots import overlay_masks  # noqa: E402
from utils.sources import LoadImages, LoadStreams, is_stream_source  # noqa: E402
from utils.torch_utils import select_device, smart_inference_mode, time_sync  # noqa: E402


def masks_for_image(proto: torch.Tensor, det: torch.Tensor, input_shape: tuple[int, int], im0_shape: tuple[int, ...],
                    retina_masks: bool) -> torch.Tensor:
    """Binary masks of an image's detections at the original image size; det's boxes are scaled to it in place."""
    if retina_masks:
        det[:, :4] = scale_boxes(input_shape, det[:, :4], im0_shape).round()
        return process_mask_native(proto, det[:, 6:], det[:, :4], im0_shape[:2])
    masks = process_mask(proto, det[:, 6:], det[:, :4], input_shape, upsample=True)  # at the input size
    det[:, :4] = scale_boxes(input_shape, det[:, :4], im0_shape).round()
    m = masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8)
    gain = min(input_shape[0] / im0_shape[0], input_shape[1] / im0_shape[1])
    top, left = int((input_shape[0] - im0_shape[0] * gain) / 2), int((input_shape[1] - im0_shape[1] * gain) / 2)
    m = m[top : top + round(im0_shape[0] * gain), left : left + round(im0_shape[1] * gain)]
    m = cv2.resize(m, (im0_shape[1], im0_shape[0]), interpolation=cv2.INTER_LINEAR)
    m = m[:, :, None] if m.ndim == 2 else m
    return torch.from_numpy(m).permute(2, 0, 1).to(det.device)


def write_polygons(txt_file: Path, det: torch.Tensor, masks: torch.Tensor, shape: tuple[int, ...],
                   save_conf: bool) -> None:
    """Append one 'class x1 y1 x2 y2 ... [conf]' line per detection: its mask's outline, normalised."""
    with open(txt_file, "a") as f:
        for seg, (*_, conf, cls) in zip(masks2segments(masks), det[:, :6].tolist()):
            if not len(seg):
                continue  # a mask emptied by its box crop has no outline to write
            xy = scale_segments(shape[:2], seg, shape, normalize=True).reshape(-1).tolist()
            line = (int(cls), *xy, conf) if save_conf else (int(cls), *xy)
            f.write(("%g " * len(line)).rstrip() % line + "\n")


@smart_inference_mode()
def run(weights: str | Path = ROOT / "yolov5s-seg.pt", source: str | Path = ROOT / "data/images",
        data: str | Path | None = None, imgsz: tuple[int, int] = (640, 640), conf_thres: float = 0.25,
        iou_thres: float = 0.45, max_det: int = 1000, device: str = "", view_img: bool = False,
        save_txt: bool = False, save_conf: bool = False, save_crop: bool = False, nosave: bool = False,
        classes: list[int] | None = None, agnostic_nms: bool = False, augment: bool = False,
        visualize: bool = False, project: str | Path = ROOT / "runs/predict-seg", name: str = "exp",
        exist_ok: bool = False, line_thickness: int = 3, hide_labels: bool = False, hide_conf: bool = False,
        half: bool = False, dnn: bool = False, vid_stride: int = 1, retina_masks: bool = False) -> Path:
    """Segment objects in source with the model in weights; returns the run folder."""
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
    if augment:
        raise ValueError("--augment (test-time augmentation) is not supported for segmentation models")
    if visualize and not pt:
        LOGGER.warning(f"WARNING --visualize needs a PyTorch .pt model; ignored for {weights}")
        visualize = False
    loader = LoadStreams if webcam else LoadImages
    dataset = loader(source, img_size=imgsz, stride=stride, auto=pt, vid_stride=vid_stride)
    model.warmup(imgsz=(1 if pt else len(dataset) if webcam else 1, 3, *imgsz))

    videos, seen, dt = detect.VideoSink(), 0, [0.0, 0.0, 0.0]
    for path, im, im0s, vid_cap, s in dataset:
        t1 = time_sync()
        x = detect.preprocess(im, model)
        t2 = time_sync()
        vis_dir = increment_path(save_dir / Path(path).stem, mkdir=True) if visualize else False
        out = model(x, visualize=vis_dir)
        if not isinstance(out, (list, tuple)) or len(out) < 2 or out[1].ndim != 4:
            raise ValueError(f"{weights} is not a segmentation model (no mask prototypes); use detect.py for it")
        pred, proto = out[0], out[1]
        t3 = time_sync()
        pred = non_max_suppression(pred, conf_thres, iou_thres, classes, agnostic_nms, max_det=max_det, nm=32)
        t4 = time_sync()
        dt = [dt[0] + t2 - t1, dt[1] + t3 - t2, dt[2] + t4 - t3]

        for i, det in enumerate(pred):
            seen += 1
            if webcam:
                p, im0, frame = Path(path[i]), im0s[i].copy(), dataset.count
                s += f"{i}: "
            else:
                p, im0, frame = Path(path), im0s.copy(), getattr(dataset, "frame", 0)
            save_path = save_dir / p.name
            txt_file = save_dir / "labels" / (p.stem + ("" if dataset.mode == "image" else f"_{frame}") + ".txt")
            s += f"{x.shape[2]}x{x.shape[3]} "
            imc = im0.copy() if save_crop else im0
            lw = max(round(line_thickness * max(im0.shape[:2]) / 640), 1)
            if len(det):
                masks = masks_for_image(proto[i], det, x.shape[2:], im0.shape, retina_masks)
                s += detect.describe(det, names)
                if save_txt:
                    write_polygons(txt_file, det, masks, im0.shape, save_conf)
                if save_img or view_img:
                    mask_colors = [colors(int(c), True) for c in det[:, 5]]
                    overlay_masks(im0, masks.cpu().numpy()[::-1], mask_colors[::-1])
            annotator = Annotator(im0, line_width=lw, example=str(names))
            for *xyxy, conf, cls in reversed(det[:, :6].tolist()):
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
                else:
                    videos.write(save_path if not webcam else save_dir / f"{p.stem}_{i}", im0, vid_cap)
        LOGGER.info(f"{s}{'' if len(det) else '(no detections), '}{(t3 - t2) * 1e3:.1f}ms")
    videos.release()

    t = tuple(v / max(seen, 1) * 1e3 for v in dt)
    LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms NMS per image "
                f"at shape {(1, 3, *imgsz)}")
    if save_txt or save_img:
        n = len(list(save_dir.glob("labels/*.txt")))
        extra = f"\n{n} label{'s' * (n != 1)} saved to {save_dir / 'labels'}" if save_txt else ""
        LOGGER.info(f"Results saved to {colorstr('bold', str(save_dir))}{extra}")
    return save_dir


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """detect.py's flags (YOLOv5 v7.0's segment/predict.py names), plus --retina-masks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", nargs="+", type=str, default=ROOT / "yolov5s-seg.pt",
        help="segmentation model: .pt, .torchscript, .onnx or an _openvino_model folder")
    add("--source", type=str, default=ROOT / "data/images",
        help="image, video, folder, glob, .txt list or stream URL; 0 is the webcam")
    add("--data", type=str, default=None, help="dataset YAML for class names the model does not carry (optional)")
    add("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640], help="input size: one side, or h w")
    add("--conf-thres", type=float, default=0.25, help="lowest confidence a kept detection may have")
    add("--iou-thres", type=float, default=0.45, help="overlap (IoU) above which NMS drops the weaker box")
    add("--max-det", type=int, default=1000, help="keep at most this many detections per image")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--view-img", action="store_true", help="show each annotated frame in a window")
    add("--save-txt", action="store_true", help="write each instance's outline as a polygon label line")
    add("--save-conf", action="store_true", help="add the confidence to each --save-txt line")
    add("--save-crop", action="store_true", help="save each detected box as an image under crops/<class>/")
    add("--nosave", action="store_true", help="write no annotated images or videos")
    add("--classes", nargs="+", type=int, help="keep only these class indices, e.g. --classes 0 2")
    add("--agnostic-nms", action="store_true", help="suppress overlaps across classes, not within each class")
    add("--augment", action="store_true", help="test-time augmentation (not available for segmentation)")
    add("--visualize", action="store_true", help="save the feature maps of every layer")
    add("--project", default=ROOT / "runs/predict-seg", help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--line-thickness", default=3, type=int, help="box thickness at 640 px (scales with image)")
    add("--hide-labels", default=False, action="store_true", help="draw boxes without class names")
    add("--hide-conf", default=False, action="store_true", help="draw class names without confidences")
    add("--half", action="store_true", help="FP16 inference (CUDA only)")
    add("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    add("--vid-stride", type=int, default=1, help="read every Nth video frame")
    add("--retina-masks", action="store_true", help="compute masks at the original image resolution")
    opt = parser.parse_args(argv)
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then run segmentation with them."""
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
