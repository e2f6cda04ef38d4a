"""The predict loop every task shares: one Predictor, and predict() that loads the model and runs a task's Predictor.

detect.py, segment/predict.py and classify/predict.py hand their run() arguments and their task's Predictor subclass
(engine/tasks/<task>_predict.py) to predict(). The loop lives here once: the source, warmup, the prefetch thread and
the ordered writer, the three timers, the per-image paths, showing and saving images and videos, the log line and the
closing summary. A task overrides only what differs: how the model's output becomes per-image results (NMS, masks,
class probabilities), what the log line says about them, and what is drawn and written for each image.

Per image, the main thread keeps what the log line and the order of results depend on (NMS, boxes scaled to the
image, the description); drawing and writing labels, crops and the annotated image is one job, run on the ordered
writer thread when prefetching, so the next image's inference does not wait for it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from models.backends import DetectMultiBackend
from models.experimental import strip_optimizer
from utils.general import LOGGER, check_img_size, check_imshow, colorstr, increment_path
from utils.pipeline import OrderedWriter, Prefetcher
from utils.sources import LoadImages, LoadStreams, is_stream_source
from utils.torch_utils import select_device, time_sync


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
