"""The predict loop every task shares, and detection's hooks into it.

detect.py, segment/predict.py and classify/predict.py load a model and hand it, with their options, to a Predictor
subclass. The loop lives here once: the source, warmup, the prefetch thread and the ordered writer, the three timers,
the per-image paths, showing and saving images and videos, the log line and the closing summary. A task overrides
only what differs: how the model's output becomes per-image results (NMS, masks, class probabilities), what the log
line says about them, and what is drawn and written for each image.

Per image, the main thread keeps what the log line and the order of results depend on (NMS, boxes scaled to the
image, the description); drawing and writing labels, crops and the annotated image is one job, run on the ordered
writer thread when prefetching, so the next image's inference does not wait for it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from utils.cam import DetectionCAM, overlay_cam, unletterbox
from utils.general import (
    LOGGER,
    check_img_size,
    check_imshow,
    colorstr,
    increment_path,
    non_max_suppression,
    scale_boxes,
    xyxy2xywh,
)
from utils.pipeline import OrderedWriter, Prefetcher
from utils.plots import Annotator, colors, save_one_box
from utils.sources import LoadImages, LoadStreams, is_stream_source
from utils.torch_utils import time_sync


@dataclasses.dataclass
class PredictOptions:
    """What the predictors read from a script's run() arguments (model loading and --update stay in the script)."""

    weights: str | Path | list = ""  # named in messages only; the script loads the model
    source: str | Path = "data/images"
    imgsz: int | tuple[int, ...] | list[int] = (640, 640)
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 1000
    view_img: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_crop: bool = False
    nosave: bool = False
    classes: list[int] | None = None
    agnostic_nms: bool = False
    augment: bool = False
    visualize: bool = False
    project: str | Path = "runs/detect"
    name: str = "exp"
    exist_ok: bool = False
    line_thickness: int = 3
    hide_labels: bool = False
    hide_conf: bool = False
    vid_stride: int = 1
    cam: str | None = None
    cam_layer: int | None = None
    retina_masks: bool = False
    prefetch: bool = True

    @classmethod
    def pick(cls, kwargs: dict[str, Any]) -> PredictOptions:
        """The options among kwargs (a run()'s locals); model loading's (device, half, update ...) are left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names})


class ImageDest(NamedTuple):
    """Where one image's outputs go."""

    source: Path  # the image or video it came from
    image: Path  # annotated image (or video, for video and stream frames)
    labels: Path  # --save-txt file
    mode: str  # 'image', 'video' or 'stream'


def source_item(dataset, path, im0s, i: int, webcam: bool) -> tuple[Path, np.ndarray, int, str]:
    """Image i of a batch from LoadImages or LoadStreams: (path, the original image, frame, log prefix).

    Both loaders hand out a new array per call (LoadStreams copies its frames), so it is drawn on without a copy.
    """
    if webcam:  # a stream batch holds one frame per stream
        return Path(path[i]), im0s[i], dataset.count, f"{i}: "
    return Path(path), im0s, getattr(dataset, "frame", 0), ""


class VideoSink:
    """The annotated-video writer of each output path, opened at the source's fps and frame size."""

    def __init__(self):
        self.writers: dict[str, cv2.VideoWriter] = {}

    def write(self, path: Path, frame: np.ndarray, cap: cv2.VideoCapture | None) -> None:
        """Append frame to the video at path (opened on its first frame)."""
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
        """Close every video file."""
        for w in self.writers.values():
            w.release()
        self.writers.clear()


class Predictor:
    """Run a loaded model (DetectMultiBackend-like: stride, names, pt, fp16, device, warmup) over a source.

    Subclasses implement postprocess, prepare and render; the rest of the loop is shared.
    """

    post_stage = "NMS"  # the third timed stage, as the Speed line names it

    def __init__(self, model, opt: PredictOptions):
        self.model, self.opt, self.names = model, opt, model.names
        imgsz = [opt.imgsz] if isinstance(opt.imgsz, int) else list(opt.imgsz)  # run(imgsz=640) from Python too
        self.imgsz = check_img_size(imgsz * (2 if len(imgsz) == 1 else 1), s=model.stride)
        self.view_img = opt.view_img and check_imshow(warn=True)
        self.save_img = not opt.nosave
        self.save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok)

    # Hooks ----------------------------------------------------------------------------------------------------------

    def load_source(self, source: str, webcam: bool):
        """The dataset: .pt models take the smallest stride-multiple rectangle, exports their traced shape."""
        loader = LoadStreams if webcam else LoadImages
        return loader(source, img_size=self.imgsz, stride=self.model.stride, auto=self.model.pt,
                      vid_stride=self.opt.vid_stride)

    def preprocess(self, im: np.ndarray) -> torch.Tensor:
        """A loader's CHW (or BCHW) image to a BCHW tensor on the model's device; uint8 pixels scaled to [0, 1]."""
        x = torch.as_tensor(im).to(self.model.device)
        scale = x.dtype == torch.uint8  # float inputs (classification transforms) are already normalised
        x = x.half() if self.model.fp16 else x.float()
        x = x / 255 if scale else x
        return x[None] if x.ndim == 3 else x

    def infer(self, x: torch.Tensor, visualize: Path | bool) -> Any:
        """The model's raw output for a batch."""
        return self.model(x, augment=self.opt.augment, visualize=visualize)

    def postprocess(self, out: Any, x: torch.Tensor) -> list:
        """Per-image results from the model's output (the third timed stage)."""
        raise NotImplementedError

    def after_batch(self, results: list, x: torch.Tensor, mode: str) -> None:
        """Work on a batch's results outside the timed stages; nothing by default."""

    def prepare(self, result: Any, x: torch.Tensor, shape: tuple[int, ...]) -> str:
        """Bring result to the original image of this shape (main thread); return its part of the log line."""
        raise NotImplementedError

    def empty_note(self, result: Any) -> str:
        """What the log line adds after the batch's last result when it is empty."""
        return ""

    def render(self, result: Any, im: np.ndarray, dest: ImageDest, draw: bool) -> np.ndarray:
        """Write result's labels and crops, then return the image annotated (drawn on in place) when draw."""
        raise NotImplementedError

    # The loop -------------------------------------------------------------------------------------------------------

    def outputs(self, result: Any, im: np.ndarray, dest: ImageDest) -> np.ndarray:
        """One image's files (labels, crops, the annotated image); a writer-thread job when prefetching."""
        im = self.render(result, im, dest, draw=self.save_img or self.view_img)
        if self.save_img and dest.mode == "image":
            cv2.imwrite(str(dest.image), im)
        return im

    def __call__(self) -> Path:
        """Predict every image or frame of the source; returns the run folder."""
        opt, save_dir = self.opt, self.save_dir
        source = str(opt.source)
        webcam = is_stream_source(source)
        (save_dir / "labels" if opt.save_txt else save_dir).mkdir(parents=True, exist_ok=True)
        dataset = self.load_source(source, webcam)
        self.model.warmup(imgsz=(1 if self.model.pt else len(dataset) if webcam else 1, 3, *self.imgsz))

        videos, seen, dt = VideoSink(), 0, [0.0, 0.0, 0.0]
        pipelined = opt.prefetch and not webcam and not any(dataset.video_flag)  # videos keep their reader here
        items, writer = dataset, None
        if pipelined:  # the prefetch thread also turns each letterboxed image into the input tensor
            items = Prefetcher((p, self.preprocess(im), im0, cap, s) for p, im, im0, cap, s in dataset)
            writer = OrderedWriter()
        inline = writer is None or self.view_img  # windows are shown from this thread, so drawn here
        try:
            for path, im, im0s, vid_cap, s in items:
                t1 = time_sync()
                x = im if pipelined else self.preprocess(im)
                t2 = time_sync()
                vis_dir = increment_path(save_dir / Path(path).stem, mkdir=True) if opt.visualize else False
                out = self.infer(x, vis_dir)
                t3 = time_sync()
                results = self.postprocess(out, x)
                t4 = time_sync()
                self.after_batch(results, x, dataset.mode)
                dt = [dt[0] + t2 - t1, dt[1] + t3 - t2, dt[2] + t4 - t3]

                for i, result in enumerate(results):  # per image
                    seen += 1
                    p, im0, frame, tag = source_item(dataset, path, im0s, i, webcam)
                    s += f"{tag}{x.shape[2]}x{x.shape[3]} "
                    s += self.prepare(result, x, im0.shape)
                    stem = p.stem + ("" if dataset.mode == "image" else f"_{frame}")
                    dest = ImageDest(p, save_dir / p.name if not webcam else save_dir / f"{p.stem}_{i}",
                                     save_dir / "labels" / f"{stem}.txt", dataset.mode)
                    if not inline:
                        writer.submit(self.outputs, result, im0, dest)
                        continue
                    im0 = self.outputs(result, im0, dest)
                    if self.view_img:
                        cv2.imshow(str(p), im0)
                        cv2.waitKey(1)
                    if self.save_img and dataset.mode != "image":  # video or stream: one writer per output file
                        videos.write(dest.image, im0, vid_cap)
                LOGGER.info(f"{s}{self.empty_note(result)}{(t3 - t2) * 1e3:.1f}ms")
        finally:
            videos.release()
            if writer:
                writer.close()  # every file is on disk before the summary counts them
        self.summary(dt, seen)
        return save_dir

    def summary(self, dt: list[float], seen: int) -> None:
        """Log the time per image of each stage and where the results went."""
        t = tuple(x / max(seen, 1) * 1e3 for x in dt)
        LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms {self.post_stage} per "
                    f"image at shape {(1, 3, *self.imgsz)}")
        if self.opt.save_txt or self.save_img:
            n = len(list(self.save_dir.glob("labels/*.txt")))
            extra = f"\n{n} label{'s' * (n != 1)} saved to {self.save_dir / 'labels'}" if self.opt.save_txt else ""
            LOGGER.info(f"Results saved to {colorstr('bold', str(self.save_dir))}{extra}")


# Detection ------------------------------------------------------------------------------------------------------------


def describe(det: torch.Tensor, names: dict) -> str:
    """Counts per class in class order, as '2 circles, 1 square, '."""
    counts = Counter(int(c) for c in det[:, 5].tolist())  # plain Python: cheaper than tensor ops for a few boxes
    return "".join(f"{n} {names[c]}{'s' * (n > 1)}, " for c, n in sorted(counts.items()))


def write_labels(txt_file: Path, det: torch.Tensor, shape: tuple[int, ...], save_conf: bool) -> None:
    """Append one 'class x y w h [conf]' line per detection, normalised by the image width/height."""
    gn = torch.tensor(shape)[[1, 0, 1, 0]]
    xywh = (xyxy2xywh(det[:, :4].float().cpu()) / gn).tolist()  # elementwise: the same floats as box by box
    with open(txt_file, "a") as f:
        for b, (conf, cls) in zip(xywh, det[:, 4:6].tolist()):
            line = (int(cls), *b, conf) if save_conf else (int(cls), *b)
            f.write(("%g " * len(line)).rstrip() % line + "\n")


@dataclasses.dataclass
class Detections:
    """One image's detections on their way through the hooks."""

    det: torch.Tensor  # (n, 6 + extra): xyxy, conf, cls; xyxy in input pixels until prepare() scales them
    heat: torch.Tensor | None = None  # (h, w) --cam heatmap at the input size, in [0, 1]


class DetectionPredictor(Predictor):
    """Boxes: NMS, the class counts in the log line, boxes and labels drawn, YOLO label lines, crops, --cam."""

    def __init__(self, model, opt: PredictOptions):
        super().__init__(model, opt)
        self.check_options()

    def check_options(self) -> None:
        """Warn about options this model cannot honour, and turn them off."""
        opt, pt = self.opt, self.model.pt
        if (opt.augment or opt.visualize) and not pt:
            LOGGER.warning(f"WARNING --augment and --visualize need a PyTorch .pt model; ignored for {opt.weights}")
            opt.augment = opt.visualize = False
        if opt.cam and not pt:
            LOGGER.warning(f"WARNING --cam needs a PyTorch .pt model; ignored for {opt.weights}")
        self.cammer = DetectionCAM(self.model.model, opt.cam, opt.cam_layer, opt.conf_thres) if opt.cam and pt else None

    def nms(self, pred: torch.Tensor, nm: int = 0) -> list[torch.Tensor]:
        """non_max_suppression with the run's thresholds, classes and limits."""
        o = self.opt
        return non_max_suppression(pred, o.conf_thres, o.iou_thres, o.classes, o.agnostic_nms, max_det=o.max_det,
                                   nm=nm)

    def postprocess(self, out: Any, x: torch.Tensor) -> list[Detections]:
        """NMS."""
        return [Detections(det) for det in self.nms(out)]

    def after_batch(self, results: list[Detections], x: torch.Tensor, mode: str) -> None:
        """--cam: one heatmap per image of the batch."""
        if self.cammer and mode == "image":
            for r, heat in zip(results, self.cammer(x)):
                r.heat = heat

    def prepare(self, result: Detections, x: torch.Tensor, shape: tuple[int, ...]) -> str:
        """Boxes scaled from the letterboxed input to the original image; the class counts."""
        det = result.det
        if not len(det):
            return ""
        det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], shape).round()
        return describe(det, self.names)

    def empty_note(self, result: Detections) -> str:
        """'(no detections), ' after an image without any."""
        return "" if len(result.det) else "(no detections), "

    def write_txt(self, result: Detections, file: Path, shape: tuple[int, ...]) -> None:
        """--save-txt: one label line per detection."""
        write_labels(file, result.det, shape, self.opt.save_conf)

    def draw(self, result: Detections, annotator: Annotator) -> None:
        """Box and label of each detection, the least confident first (the best on top)."""
        o = self.opt
        for *xyxy, conf, cls in reversed(result.det[:, :6].tolist()):
            c = int(cls)
            label = None if o.hide_labels else (self.names[c] if o.hide_conf else f"{self.names[c]} {conf:.2f}")
            annotator.box_label(xyxy, label or "", color=colors(c, True))

    def render(self, result: Detections, im: np.ndarray, dest: ImageDest, draw: bool) -> np.ndarray:
        """Label lines, crops cut from the undrawn image, then the boxes drawn and --cam's overlay saved."""
        det = result.det
        if self.opt.save_txt and len(det):
            self.write_txt(result, dest.labels, im.shape)
        if self.opt.save_crop:  # in v7.0's order, so that increment_path numbers the crops alike
            for *xyxy, _, cls in reversed(det[:, :6].tolist()):
                save_one_box(xyxy, im, file=self.save_dir / "crops" / self.names[int(cls)] / f"{dest.source.stem}.jpg",
                             BGR=True)
        if not draw:
            return im
        lw = max(round(self.opt.line_thickness * max(im.shape[:2]) / 640), 1)  # --line-thickness is for 640 px
        annotator = Annotator(im, line_width=lw, example=str(self.names))
        self.draw(result, annotator)
        im = annotator.result()
        if result.heat is not None and self.save_img:
            heat = unletterbox(result.heat, im.shape)
            cv2.imwrite(str(dest.image.with_name(f"{dest.source.stem}_cam.jpg")), overlay_cam(im, heat))
        return im
