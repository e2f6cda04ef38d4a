"""One served model: loaded by DetectMultiBackend, its task read from its output, and images in, records out.

The records are those of v7.0's REST API (`results.pandas().xyxy[0]`): xmin, ymin, xmax, ymax, confidence, class,
name; segmentation adds each instance's polygon (segments, in image pixels); classification answers its top-5.
Images go through detect.py's steps (letterbox to a stride multiple, NMS, boxes scaled back and rounded), so the
boxes equal detect.py's for the same image and size.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.backends import DetectMultiBackend
from utils.augmentations import letterbox
from utils.classify_data import classify_transforms
from utils.general import check_img_size, make_divisible, non_max_suppression, scale_boxes
from utils.segment.general import masks2segments, process_mask, scale_segments

TASKS = ("detect", "segment", "classify")


@dataclasses.dataclass(frozen=True)
class Options:
    """One request's inference options (the endpoint's query parameters)."""

    size: int | None = None  # None: the model's --imgsz
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 1000
    classes: tuple[int, ...] | None = None


def fixed_input(backend: DetectMultiBackend, weights: str) -> tuple[int | None, int | None, int | None]:
    """(batch, height, width) an exported model was built for; None where it takes any (dynamic or PyTorch)."""
    shape: list = []
    if backend.onnx and not backend.dnn:
        shape = list(backend.input_shape)
    elif backend.xml:
        shape = [d.get_length() if d.is_static else None for d in backend.ov_compiled.input(0).partial_shape]
    elif backend.jit:  # a traced model bakes in its input shape; export.py records it in config.txt
        with zipfile.ZipFile(weights) as z:
            config = next((n for n in z.namelist() if n.endswith("extra/config.txt")), None)
            shape = json.loads(z.read(config)).get("shape", []) if config else []
    elif backend.onnx:  # OpenCV DNN: the shape stored in the file
        import onnx

        dims = onnx.load(weights, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    return tuple((dims + [None] * 4)[i] for i in (0, 2, 3)) if dims else (None, None, None)


class ServedModel:
    """A model behind the API: its name (the file stem), task, class names and input size, and its inference steps."""

    def __init__(self, weights: str | Path, device: torch.device, imgsz: int | None = None, half: bool = False,
                 dnn: bool = False, data: str | Path | None = None):
        self.weights = str(weights)
        self.name = Path(weights).stem
        self.backend = DetectMultiBackend(self.weights, device=device, dnn=dnn, data=data, fp16=half)
        self.batch, h, w = fixed_input(self.backend, self.weights)
        self.fixed = (h, w) if h and w else None
        self.names = self.backend.names
        self.task = self.probe()
        default = 224 if self.task == "classify" else 640  # detect.py's and classify/predict.py's defaults
        self.imgsz = self.fixed[0] if self.fixed else check_img_size(imgsz or default, s=self.backend.stride)

    @torch.inference_mode()
    def probe(self) -> str:
        """The task, from the output on one blank image: class scores, boxes, or boxes with mask prototypes."""
        side = max(64, int(self.backend.stride))  # small: the output's form does not depend on the size
        h, w = self.fixed or (side, side)
        out = self.forward(torch.zeros(self.batch or 1, 3, h, w))
        if isinstance(out, torch.Tensor) and out.ndim == 2:
            return "classify"
        if isinstance(out, (list, tuple)) and len(out) > 1 and isinstance(out[1], torch.Tensor) and out[1].ndim == 4:
            return "segment"
        return "detect"

    def describe(self) -> dict:
        """What GET /v1/models says about this model."""
        return {"name": self.name, "task": self.task, "classes": {str(k): v for k, v in self.names.items()},
                "imgsz": self.imgsz, "fixed_size": list(self.fixed) if self.fixed else None,
                "max_batch": self.batch, "weights": Path(self.weights).name}

    def input_size(self, size: int) -> int:
        """The side an image is letterboxed to: the export's own, else size rounded up to a stride multiple."""
        # rounded up without check_img_size's warning: a request's size is no --img-size flag to correct
        return self.fixed[0] if self.fixed else make_divisible(size, int(self.backend.stride))

    def preprocess(self, im0: np.ndarray, size: int | None = None) -> torch.Tensor:
        """A BGR image as the model's CHW input, as detect.py (or classify/predict.py) makes it; size: imgsz."""
        size = size or self.imgsz
        if self.task == "classify":
            return classify_transforms(self.input_size(size))(im0)
        shape = self.fixed or self.input_size(size)
        im = letterbox(im0, shape, stride=self.backend.stride, auto=self.backend.pt and not self.fixed)[0]
        x = torch.from_numpy(np.ascontiguousarray(im.transpose((2, 0, 1))[::-1]))  # HWC BGR to CHW RGB
        return x.float() / 255

    def forward(self, x: torch.Tensor):
        """The model's output for a batch (B, 3, h, w)."""
        x = x.to(self.backend.device)
        return self.backend(x.half() if self.backend.fp16 else x)

    def records(self, out, i: int, x_shape: tuple[int, int], im0_shape: tuple[int, ...], opt: Options) -> list[dict]:
        """Image i's records from the batch output out; x_shape is the input (h, w), im0_shape the image's."""
        if self.task == "classify":
            return top5_records(out[i], self.names)
        pred = out[0] if isinstance(out, (list, tuple)) else out
        nm = out[1].shape[1] if self.task == "segment" else 0
        classes = list(opt.classes) if opt.classes else None
        det = non_max_suppression(pred[i:i + 1], opt.conf, opt.iou, classes, max_det=opt.max_det, nm=nm)[0]
        polygons = self.polygons(out[1][i], det, x_shape, im0_shape) if nm else None
        det[:, :4] = scale_boxes(x_shape, det[:, :4], im0_shape).round()
        return box_records(det, self.names, polygons)

    @staticmethod
    def polygons(proto: torch.Tensor, det: torch.Tensor, x_shape: tuple[int, int],
                 im0_shape: tuple[int, ...]) -> list[list[list[float]]]:
        """Each detection's mask outline, traced at the input size and scaled to the image, in pixels."""
        if not len(det):
            return []
        masks = process_mask(proto, det[:, 6:], det[:, :4], x_shape, upsample=True)
        return [scale_segments(x_shape, s, im0_shape).round(1).tolist() if len(s) else []
                for s in masks2segments(masks)]


def box_records(det: torch.Tensor, names: dict[int, str], polygons: list | None = None) -> list[dict]:
    """v7.0's records, most confident first: xmin, ymin, xmax, ymax, confidence, class, name (and segments)."""
    rows = []
    for k, (x1, y1, x2, y2, conf, cls) in enumerate(det[:, :6].tolist()):
        c = int(cls)
        row = {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2, "confidence": conf, "class": c, "name": names[c]}
        if polygons is not None:
            row["segments"] = polygons[k]
        rows.append(row)
    return rows


def top5_records(logits: torch.Tensor, names: dict[int, str]) -> list[dict]:
    """The five most probable classes, most probable first, as class, name and confidence."""
    prob = F.softmax(logits.float(), dim=0)
    return [{"class": int(j), "name": names[int(j)], "confidence": float(prob[j])}
            for j in prob.argsort(descending=True)[:5].tolist()]


@dataclasses.dataclass
class Job:
    """One request's work for the batcher: its input tensor, its image's shape and its options."""

    x: torch.Tensor  # (3, h, w)
    shape: tuple[int, ...]  # the original image's (h, w, c)
    opt: Options


@dataclasses.dataclass
class Answer:
    """One request's records, the forward pass's time and the size of the batch it ran in."""

    records: list[dict]
    ms: float
    batch: int


@torch.inference_mode()
def run_jobs(model: ServedModel, jobs: list[Job]) -> list[Answer]:
    """One forward pass over jobs of one input shape, then each job's records (NMS with its own options)."""
    x = torch.stack([j.x for j in jobs])
    if model.batch and len(jobs) < model.batch:  # an export with a fixed batch takes exactly that many images
        x = torch.cat([x, x.new_zeros(model.batch - len(jobs), *x.shape[1:])])
    t = time.perf_counter()
    out = model.forward(x)
    ms = (time.perf_counter() - t) * 1e3
    return [Answer(model.records(out, i, tuple(x.shape[2:]), j.shape, j.opt), ms, len(jobs))
            for i, j in enumerate(jobs)]
