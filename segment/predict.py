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
    increment_path,
    non_max_suppression,
    print_args,
    scale_boxes,
    set_logging,
)
from utils.plots import Annotator, colors  # noqa: E402
from utils.segment.general import (  # noqa: E402
    masks2segments,
    process_mask,
    process_mask_native,
    scale_image,
    scale_segments,
)
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
    m = scale_image(input_shape, masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8), im0_shape)
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
        half: bool = False, dnn: bool = False, vid_stride: int = 1, retina_masks: bool = False, update: bool = False,
        cam: str | None = None, cam_layer: int | None = None) -> Path:
    """Segment objects in source with the model in weights; returns the run folder."""
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
    if augment:
        raise ValueError("--augment (test-time augmentation) is not supported for segmentation models")
    if cam:
        LOGGER.warning("WARNING --cam heatmaps are made for detection models only; ignored by segment/predict.py")
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
            p, im0, frame, tag = detect.source_item(dataset, path, im0s, i, webcam)
            s += tag
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
            detect.draw_detections(annotator, det, names, save_img or save_crop or view_img, hide_labels, hide_conf,
                                   save_dir / "crops" if save_crop else None, imc, p.stem)
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
    detect.finish(dt, seen, imgsz, save_dir, save_txt, save_img, weights if update else None)
    return save_dir


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """detect.py's flags with a segmentation model and run folder by default, plus --retina-masks."""
    parser = detect.build_parser(__doc__.split("\n")[0])
    parser.set_defaults(weights=ROOT / "yolov5s-seg.pt", project=ROOT / "runs/predict-seg")
    parser.add_argument("--retina-masks", action="store_true", help="compute masks at the original image resolution")
    return detect.parse_opt(argv, parser)


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then run segmentation with them."""
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
