"""Inference on any supported model format (DetectMultiBackend), and the AutoShape / Detections Python API."""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import torch
import torch.nn as nn

from models.formats import ExportFormat, export_formats, format_for
from utils import torch_utils
from utils.augmentations import letterbox
from utils.dataset_check import ImageError, header_size
from utils.general import (
    LOGGER,
    check_imshow,
    increment_path,
    make_divisible,
    non_max_suppression,
    scale_boxes,
    xyxy2xywh,
    yaml_load,
)
from utils.plots import Annotator, colors, save_one_box
from utils.sources import is_url, load_image_url
from utils.torch_utils import time_sync


def _parse_names(names) -> dict[int, str]:
    """Class names as {index: name} from a dict, a list, or the text of either (as export metadata stores them)."""
    if isinstance(names, str):
        names = ast.literal_eval(names)  # metadata holds a Python literal; literal_eval never runs code
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    return {int(k): str(v) for k, v in names.items()}


class DetectMultiBackend(nn.Module):
    """One interface to every format the registry can run (models/formats/): .pt, TorchScript, ONNX (ONNX Runtime or
    OpenCV DNN), OpenVINO, and any format registered later. The format's runner loads and runs the file; this class
    adds what is common: stride and names from its metadata, FP16/bf16, and tensors out."""

    def __init__(self, weights: str | Path | list = "yolov5s.pt", device: torch.device = torch.device("cpu"),
                 dnn: bool = False, data: str | Path | None = None, fp16: bool = False, fuse: bool = True):
        super().__init__()
        w = str(weights[0] if isinstance(weights, list) else weights)
        fmt = _format(w)
        bf16 = fp16 and device.type == "cpu" and _cpu_bf16(w, fmt.bf16)  # --half on CPU means bf16
        fp16 = fp16 and fmt.gpu and device.type != "cpu"
        self.runner = fmt.load(w, device, dnn=dnn, fp16=fp16, bf16=bf16, fuse=fuse, weights=weights)
        if isinstance(getattr(self.runner, "model", None), nn.Module):
            self.model = self.runner.model  # a submodule, so .to(), .half() and AutoShape reach the PyTorch model
        meta = self.runner.meta or {}
        names = meta.get("names")
        if names is None and data:  # a dataset YAML only fills in names the model does not carry
            names = yaml_load(data)["names"]
        if names is None:
            LOGGER.warning(f"WARNING {w} carries no class names; using class0, class1, ...")
            names = {i: f"class{i}" for i in range(999)}
        self.names = _parse_names(names)
        self.stride, self.fp16, self.bf16, self.device, self.dnn = int(meta.get("stride", 32)), fp16, bf16, device, dnn
        self.format = fmt
        for f in export_formats():  # v7.0's flags (pt, jit, onnx, xml, engine, ...): True for this model's format
            setattr(self, f.key, f is fmt)
        self.triton = False
        self.nhwc = False  # every supported format takes BCHW

    def __getattr__(self, name: str):
        """The runner's own attributes (session, ov_compiled, net ...) are reachable here, as v7.0 keeps them."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            runner = self.__dict__.get("runner")
            if runner is None or name.startswith("__"):
                raise
            return getattr(runner, name)

    def forward(self, im: torch.Tensor, augment: bool = False, visualize: bool = False):
        """Run the model on a BCHW batch; .pt returns the model's (pred, maps), exports the decoded pred tensor."""
        if self.fp16 and im.dtype != torch.float16:
            im = im.half()
        y = self.runner(im, augment=augment, visualize=visualize)
        if isinstance(y, (list, tuple)):
            if self.runner.raw_output:  # keep the PyTorch model's own output structure
                return y
            return self.from_numpy(y[0]) if len(y) == 1 else [self.from_numpy(x) for x in y]
        return self.from_numpy(y)

    def from_numpy(self, x) -> torch.Tensor:
        """A numpy array as a float32 tensor on the model's device; tensors pass through."""
        return torch.from_numpy(np.ascontiguousarray(x)).float().to(self.device) if isinstance(x, np.ndarray) else x

    def warmup(self, imgsz: tuple[int, int, int, int] = (1, 3, 640, 640)) -> None:
        """One forward pass on zeros so the first real image is not slowed by lazy initialisation (GPU only)."""
        if self.format.gpu and self.device.type != "cpu":
            im = torch.empty(*imgsz, dtype=torch.half if self.fp16 else torch.float, device=self.device)
            self.forward(im)


def _format(w: str) -> ExportFormat:
    """The registry entry that runs `w`; a clear error for a format not run here, an unknown name or no file."""
    fmt = format_for(w)
    runnable = [f for f in export_formats() if f.supported]
    if fmt is not None and not fmt.supported:
        raise NotImplementedError(f"{w}: {fmt.name} models are not supported ({fmt.name} needs {fmt.needs}); use "
                                  f"{_endings(runnable)}")
    if fmt is None:
        raise ValueError(f"{w}: unknown model format; expected {_endings(runnable)}")
    if not Path(w).exists():
        raise FileNotFoundError(f"weights not found: {w}")
    return fmt


def _endings(formats: list[ExportFormat]) -> str:
    """'.pt, .torchscript, .onnx or *_openvino_model': the file names the given formats are recognised by."""
    names = [f.suffix if f.suffix.startswith(".") else f"*{f.suffix}/" for f in formats]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


def _cpu_bf16(w: str, supported_format: bool) -> bool:
    """Whether --half on CPU runs `w` in bf16: only formats that run bf16 (.pt autocast, OpenVINO), only on CPUs
    with bf16."""
    if not supported_format:
        LOGGER.warning(f"WARNING --half on CPU means bf16, which runs for .pt and OpenVINO models only; running {w} "
                       f"in FP32")
        return False
    if not torch_utils.cpu_bf16_supported():
        LOGGER.warning(f"WARNING --half on CPU means bf16, but this CPU has no native bf16 "
                       f"({' or '.join(torch_utils.BF16_CPU_FLAGS)} flag); running FP32")
        return False
    LOGGER.info("Running bf16 on CPU (--half)")
    return True


class AutoShape(nn.Module):
    """Model wrapper for Python use: takes paths, URLs, PIL images or numpy arrays and returns Detections."""

    conf = 0.25  # NMS confidence threshold
    iou = 0.45  # NMS IoU threshold
    agnostic = False  # class-agnostic NMS
    multi_label = False  # several labels per box
    classes = None  # keep only these class indices, e.g. [0, 15, 16]
    max_det = 1000  # most detections per image
    amp = False  # CUDA automatic mixed precision

    def __init__(self, model: nn.Module, verbose: bool = True):
        super().__init__()
        if verbose:
            LOGGER.info("Adding AutoShape... ")
        self.dmb = isinstance(model, DetectMultiBackend)
        self.pt = not self.dmb or model.pt
        self.model = model.eval()
        self.names = model.names
        self.stride = int(model.stride) if self.dmb else max(int(model.stride.max()), 32)
        self.nm = 0  # mask coefficients per prediction (segmentation models): dropped, Detections hold boxes
        if self.pt:
            m = self.model.model.model[-1] if self.dmb else self.model.model[-1]
            m.inplace = False  # safe for multithreaded inference
            m.export = True  # return only the decoded predictions
            self.nm = getattr(m, "nm", 0)

    def _apply(self, fn):
        # to(), cpu(), cuda(), half() must also move the Detect head's non-buffer tensors
        self = super()._apply(fn)
        if self.pt:
            m = self.model.model.model[-1] if self.dmb else self.model.model[-1]
            m.stride = fn(m.stride)
            m.grid = list(map(fn, m.grid))
            if isinstance(m.anchor_grid, list):
                m.anchor_grid = list(map(fn, m.anchor_grid))
        return self

    @torch.no_grad()
    def forward(self, ims, size: int | tuple[int, int] = 640, augment: bool = False, profile: bool = False):
        """Detect on one input or a list: path, URL, PIL image, numpy HWC RGB array; a BCHW tensor: the raw output."""
        t = [time_sync()]
        p = next(self.model.parameters()) if self.pt else torch.empty(1, device=self.model.device)
        autocast = self.amp and p.device.type != "cpu"
        if isinstance(ims, torch.Tensor):  # the raw model output, as YOLOv5 returns it: the prediction tensor itself
            with torch.autocast("cuda", enabled=autocast):
                y = self.model(ims.to(p.device).type_as(p), augment=augment)
            return y[0] if isinstance(y, (list, tuple)) else y
        size = (size, size) if isinstance(size, int) else tuple(size)
        read = _read_inputs(list(ims) if isinstance(ims, (list, tuple)) else [ims])
        ims, files, n = [im for im, _ in read], [f for _, f in read], len(read)
        shape0 = [im.shape[:2] for im in ims]
        gains = [max(size) / max(s) for s in shape0]  # scale the long side to the requested size
        shape1 = [[int(y * g) for y in s] for s, g in zip(shape0, gains)]
        shape1 = [make_divisible(x, self.stride) for x in np.array(shape1).max(0)]  # one batch shape for all
        if not self.pt:  # exported models were traced at one square shape: fill it
            shape1 = [make_divisible(x, self.stride) for x in size]
        x = np.stack([letterbox(im, shape1, auto=False)[0] for im in ims]).transpose((0, 3, 1, 2))
        x = torch.from_numpy(np.ascontiguousarray(x)).to(p.device).type_as(p) / 255
        t.append(time_sync())
        with torch.autocast("cuda", enabled=autocast):
            y = self.model(x, augment=augment)
            t.append(time_sync())
            y = non_max_suppression(y if self.dmb else y[0], self.conf, self.iou, self.classes, self.agnostic,
                                    self.multi_label, max_det=self.max_det, nm=self.nm)
            y = [d[:, :6] for d in y]  # boxes, confidences, classes (a segmentation model's masks are not kept)
            for i in range(n):
                scale_boxes(shape1, y[i][:, :4], shape0[i])
            t.append(time_sync())
        return Detections(ims, y, files, t, self.names, x.shape)


def _read_inputs(ims: list) -> list[tuple[np.ndarray, str]]:
    """Every readable input as (array, file name); a file that cannot or must not be decoded is skipped, warned."""
    out = []
    for i, im in enumerate(ims):
        try:
            out.append(_read_input(im, i))
        except ImageError as e:
            if len(ims) == 1:
                raise
            LOGGER.warning(f"WARNING skipping {e}")
    if not out:
        raise ImageError("inputs", f"none of the {len(ims)} images could be read")
    return out


def _read_input(im, i: int) -> tuple[np.ndarray, str]:
    """One AutoShape input as a contiguous HWC RGB uint8 array, and a file name for saving it."""
    from PIL import Image, ImageOps

    f = f"image{i}"
    if isinstance(im, (str, Path)):
        f = Path(_url_path(str(im))).name or f
        if is_url(str(im)):
            im = load_image_url(str(im))[..., ::-1]  # BGR to RGB
        else:
            if not Path(im).is_file():
                raise FileNotFoundError(f"image not found: {im}")
            header_size(im)  # ImageError for a decompression bomb, before Pillow decodes a pixel
            try:
                with Image.open(im) as pil:
                    im = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
            except (OSError, SyntaxError, ValueError) as e:
                raise ImageError(im, f"not a readable image ({e})") from None
    elif isinstance(im, Image.Image):
        f = Path(getattr(im, "filename", "") or f).name
        im = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    elif not isinstance(im, np.ndarray):
        raise TypeError(f"input {i}: expected a path, URL, PIL image or numpy array, got {type(im).__name__}")
    if im.ndim == 3 and im.shape[0] < 5 and im.shape[2] >= 5:  # CHW to HWC
        im = im.transpose((1, 2, 0))
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)  # greyscale to 3 channels
    if im.ndim != 3 or im.shape[2] < 3:
        raise ValueError(f"input {i}: expected an HWC image with 3 channels, got shape {im.shape}")
    im = im[..., :3]  # drop alpha
    im = im if im.dtype == np.uint8 else im.clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(im), Path(f).with_suffix(".jpg").name


def _url_path(s: str) -> str:
    """The path part of a URL (a plain path is returned unchanged)."""
    return urlparse(s).path if "://" in s else s


class Detections:
    """AutoShape results: per-image boxes in four formats, and ways to print, draw, save, crop or tabulate them."""

    def __init__(self, ims: list[np.ndarray], pred: list[torch.Tensor], files: list[str], times=(0, 0, 0, 0),
                 names: dict | None = None, shape=None):
        d = pred[0].device
        gn = [torch.tensor([*(im.shape[i] for i in [1, 0, 1, 0]), 1, 1], device=d) for im in ims]  # normalisers
        self.ims, self.pred, self.names, self.files = ims, pred, names or {}, files
        self.times = times
        self.xyxy = pred  # pixels
        self.xywh = [_xyxy2xywh(x) for x in pred]
        self.xyxyn = [x / g for x, g in zip(self.xyxy, gn)]  # normalised by image size
        self.xywhn = [x / g for x, g in zip(self.xywh, gn)]
        self.n = len(self.pred)
        # ms per image for pre-process, inference and NMS
        self.t = tuple((times[i + 1] - times[i]) * 1000 / self.n for i in range(3)) if len(times) == 4 else (0,) * 3
        self.s = tuple(shape) if shape is not None else None  # inference BCHW shape

    def _summary(self, i: int, pred: torch.Tensor) -> str:
        s = f"image {i + 1}/{self.n}: {self.ims[i].shape[0]}x{self.ims[i].shape[1]} "
        if pred.shape[0]:
            counts = [(int((pred[:, 5] == c).sum()), self.names.get(int(c), str(int(c)))) for c in pred[:, 5].unique()]
            return s + ", ".join(f"{k} {name}{'s' * (k > 1)}" for k, name in counts)
        return s + "(no detections)"

    def _annotated(self, i: int, labels: bool = True) -> np.ndarray:
        """Image i (RGB) with its boxes drawn, as a new array."""
        annotator = Annotator(self.ims[i].copy())
        for *box, conf, cls in reversed(self.pred[i].tolist()):
            label = f"{self.names.get(int(cls), int(cls))} {conf:.2f}" if labels else ""
            annotator.box_label(box, label, color=colors(int(cls)))  # RGB palette on an RGB image
        return annotator.result()

    def print(self) -> None:
        """Log one line per image and the speed."""
        LOGGER.info(str(self))

    def show(self, labels: bool = True) -> None:
        """Display the annotated images in OpenCV windows (press a key for the next)."""
        if not check_imshow(warn=True):
            return
        for i, f in enumerate(self.files):
            cv2.imshow(f, self._annotated(i, labels)[..., ::-1])
            cv2.waitKey(0)

    def save(self, labels: bool = True, save_dir: str | Path = "runs/detect/exp", exist_ok: bool = False) -> Path:
        """Write the annotated images into a new (incremented) save_dir and return it."""
        save_dir = increment_path(save_dir, exist_ok, mkdir=True)
        for i, f in enumerate(self.files):
            cv2.imwrite(str(save_dir / f), self._annotated(i, labels)[..., ::-1])
        LOGGER.info(f"Saved {self.n} image{'s' * (self.n > 1)} to {save_dir}")
        return save_dir

    def crop(self, save: bool = True, save_dir: str | Path = "runs/detect/exp", exist_ok: bool = False) -> list[dict]:
        """Cut out every detection; with save, write them under save_dir/crops/<class>/. Returns dicts per crop."""
        save_dir = increment_path(save_dir, exist_ok, mkdir=True) if save else None
        crops = []
        for i, f in enumerate(self.files):
            for *box, conf, cls in reversed(self.pred[i]):
                name = self.names.get(int(cls), str(int(cls)))
                file = save_dir / "crops" / name / f if save else None
                # save_one_box expects BGR: hand it the BGR view and ask for the RGB crop back for the caller
                crop = save_one_box(box, self.ims[i][..., ::-1], file=file or Path(f), BGR=False, save=save)
                crops.append({"box": box, "conf": conf, "cls": cls, "label": f"{name} {conf:.2f}", "im": crop})
        if save:
            LOGGER.info(f"Saved results to {save_dir}")
        return crops

    def render(self, labels: bool = True) -> list[np.ndarray]:
        """Draw the boxes onto the stored images (in place) and return them."""
        self.ims = [self._annotated(i, labels) for i in range(self.n)]
        return self.ims

    def pandas(self) -> Detections:
        """A copy whose xyxy, xyxyn, xywh, xywhn are lists of pandas DataFrames (with confidence, class, name)."""
        import copy

        import pandas as pd

        new = copy.copy(self)
        ca = "xmin", "ymin", "xmax", "ymax", "confidence", "class", "name"
        cb = "xcenter", "ycenter", "width", "height", "confidence", "class", "name"
        for k, c in zip(("xyxy", "xyxyn", "xywh", "xywhn"), (ca, ca, cb, cb)):
            rows = [[[*x[:5], int(x[5]), self.names.get(int(x[5]), str(int(x[5])))] for x in p.tolist()]
                    for p in getattr(self, k)]
            setattr(new, k, [pd.DataFrame(r, columns=list(c)) for r in rows])
        return new

    def tolist(self) -> list[Detections]:
        """One Detections object per image."""
        return [Detections([self.ims[i]], [self.pred[i]], [self.files[i]], self.times, self.names, self.s)
                for i in range(self.n)]

    def __len__(self) -> int:
        return self.n

    def __str__(self) -> str:
        lines = [self._summary(i, p) for i, p in enumerate(self.pred)]
        speed = f"Speed: {self.t[0]:.1f}ms pre-process, {self.t[1]:.1f}ms inference, {self.t[2]:.1f}ms NMS per image"
        if self.s is not None:
            speed += f" at shape {self.s}"
        return "\n".join([*lines, speed])

    def __repr__(self) -> str:
        return f"YOLOv5 {self.__class__} instance\n" + self.__str__()


def _xyxy2xywh(x: torch.Tensor) -> torch.Tensor:
    """xyxy box columns to xywh, leaving conf and class columns as they are."""
    y = x.clone()
    y[:, :4] = xyxy2xywh(x[:, :4])
    return y
