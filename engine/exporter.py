"""The Exporter: export.py's work in named steps over the format registry (models/formats/), never naming a format.

    check the formats -> check the options -> load the model -> prepare it (dry runs, PyTorch's outputs)
    -> export each format and compare it with PyTorch -> report the table and the next step for the model's task
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from engine.int8_metric import ValMetric
from models.backends import DetectMultiBackend
from models.experimental import attempt_load
from models.formats import ExportContext, ExportFormat, NotRunnableHere, export_formats, exportable, format_of
from models.yolo import ClassificationModel, Detect
from utils.augmentations import letterbox
from utils.classify_data import check_cls_dataset
from utils.general import LOGGER, ROOT, check_img_size, check_yaml, colorstr, yaml_load
from utils.sources import IMG_FORMATS
from utils.torch_utils import select_device

# the scripts that predict with and validate an export, by the task of the model exported
NEXT_STEPS = {"detect": ("detect.py", "val.py"), "segment": ("segment/predict.py", "segment/val.py"),
              "classify": ("classify/predict.py", "classify/val.py")}


def file_size(path: str | Path) -> float:
    """Size of a file, or of everything inside a folder, in MB."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.glob("**/*") if f.is_file()) / 1e6
    return p.stat().st_size / 1e6 if p.is_file() else 0.0


def check_image(shape: tuple[int, ...]) -> tuple[torch.Tensor, str]:
    """A real image from data/images, letterboxed to the export shape and batched; noise when there is none."""
    h, w = shape[2:]
    files = sorted(p for p in (ROOT / "data" / "images").glob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
    im0 = cv2.imread(str(files[0])) if files else None
    if im0 is None:
        LOGGER.warning("WARNING no image in data/images to check exports on; using random noise")
        im0, name = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8), "noise"
    else:
        name = files[0].name
    im = letterbox(im0, (h, w), auto=False)[0].transpose((2, 0, 1))[::-1]
    x = torch.from_numpy(np.ascontiguousarray(im)).float().div(255)[None]
    return x.expand(shape[0], -1, -1, -1).contiguous(), name


@torch.no_grad()
def check_export(f: Path, y_pt: torch.Tensor | tuple, im: torch.Tensor, dnn: bool = False) -> float:
    """Run an exported model through DetectMultiBackend and return its max abs difference from PyTorch's outputs.

    y_pt is the output tensor, or for segmentation the (predictions, prototypes) pair, compared one by one.
    """
    backend = DetectMultiBackend(f, device=torch.device("cpu"), dnn=dnn)
    y = backend(im.cpu().float())
    y = list(y) if isinstance(y, (list, tuple)) else [y]
    y_pt = list(y_pt) if isinstance(y_pt, (list, tuple)) else [y_pt]
    if len(y) < len(y_pt):
        raise RuntimeError(f"{f}: {len(y)} output(s), PyTorch has {len(y_pt)}")
    diff = 0.0
    for a, b in zip(y, y_pt):
        if a.shape != b.shape:
            raise RuntimeError(f"{f}: output shape {tuple(a.shape)} differs from PyTorch's {tuple(b.shape)}")
        diff = max(diff, float((a.float() - b.float().cpu()).abs().max()))
    return diff


def _copy_lists(args: tuple) -> tuple:
    """args with each list replaced by a copy, so a layer that edits its input list leaves the saved one intact."""
    return tuple(list(a) if isinstance(a, list) else a for a in args)


def unexportable_layer(model: torch.nn.Module, im: torch.Tensor, check_layer: Callable, opset: int = 17) -> str | None:
    """'layer i (type): error' for the first layer of model that check_layer (a format's one-layer export) refuses."""
    layers = list(getattr(model, "model", []))
    inputs = {}
    # a copy of each list input (Detect replaces its entries in place), and None so the hook never replaces args
    hooks = [m.register_forward_pre_hook(lambda _, args, i=i: inputs.setdefault(i, _copy_lists(args)) and None)
             for i, m in enumerate(layers)]
    try:
        with torch.no_grad():
            model(im)
    finally:
        for h in hooks:
            h.remove()
    for i, m in enumerate(layers):
        try:
            check_layer(m, inputs[i], opset)
        except Exception as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return f"layer {i} ({getattr(m, 'type', type(m).__name__)}): {reason}"
    return None


def is_classifier(model: torch.nn.Module) -> bool:
    """A project or torchvision classification model (whose --data is an ImageFolder)."""
    return isinstance(model, ClassificationModel) or type(model).__module__.startswith("torchvision.")


def model_task(model: torch.nn.Module) -> str:
    """The task a model does: its own `task` where it says, else what its head can do (mask coefficients: segment)."""
    task = getattr(model, "task", None)
    if isinstance(task, str):
        return task
    if is_classifier(model):
        return "classify"
    head = model.model[-1] if isinstance(getattr(model, "model", None), torch.nn.Sequential) else None
    return "segment" if getattr(head, "nm", 0) else "detect"


class Exporter:
    """Exports one checkpoint to the requested formats; call it to run, it returns the written paths."""

    def __init__(self, weights: str | Path, include: tuple[str, ...] = ("torchscript", "onnx"), data=None,
                 imgsz: tuple[int, ...] = (640, 640), batch_size: int = 1, device: str = "cpu", half: bool = False,
                 inplace: bool = False, optimize: bool = False, dynamic: bool = False, simplify: bool = False,
                 opset: int = 17, int8: bool = False, int8_images: int = 300, int8_max_drop: float = 0.01):
        self.file, self.include, self.data, self.imgsz = Path(weights), include, data, imgsz
        self.batch_size = batch_size
        self.device, self.half, self.inplace, self.int8 = device, half, inplace, int8
        self.options = dict(optimize=optimize, dynamic=dynamic, simplify=simplify, opset=opset, half=half,
                            int8=int8, data=data, int8_images=int8_images, int8_max_drop=int8_max_drop)
        self.failed: list[str] = []

    def __call__(self) -> list[str]:
        """Every step in order; [] when nothing could be exported (said in the log)."""
        t0 = time.time()
        todo = self.formats_to_export()
        if not todo:
            return []
        self.check_options(todo)
        ctx, image_name = self.prepare(*self.load_model())
        rows = [row for row in (self.export_one(ctx, fmt, image_name) for fmt in todo) if row]
        if not rows:
            LOGGER.error(f"Nothing exported: {', '.join(format_of(x).name for x in self.failed)} failed (see above)")
            return []
        self.report(ctx, rows, image_name, time.time() - t0)
        return [str(f) for f in ctx.written.values()]

    def formats_to_export(self) -> list[ExportFormat]:
        """The requested formats this project exports, in table order; the others answered with a clear error."""
        supported = ", ".join(exportable())
        include = [x.lower() for x in self.include]
        for x in include:
            fmt = format_of(x)  # KeyError naming the known formats for a misspelt one
            if fmt.export is None:
                LOGGER.error(f"{fmt.name} export (--include {x}) is not supported by this project; supported: "
                             f"{supported}")
        # table order: a format converted from another (OpenVINO from ONNX) comes after it
        todo = [f for f in export_formats() if f.argument in include and f.export is not None]
        if not todo:
            LOGGER.error(f"Nothing to export: choose --include from {supported}")
        return todo

    def check_options(self, todo: list[ExportFormat]) -> None:
        """Refuse option combinations that cannot work, before anything is loaded or written."""
        if self.int8:
            quantized = [f for f in export_formats() if f.int8]
            if not self.data:
                raise ValueError("--int8 needs --data dataset.yaml: INT8 quantization calibrates on images of its "
                                 "train split (it never calibrates on random data)")
            if self.half:
                raise ValueError("--int8 and --half cannot be combined: choose one precision")
            if not self.options["int8_max_drop"] >= 0:
                raise ValueError(f"--int8-max-drop is the mAP50-95 INT8 may lose, 0 or more; got "
                                 f"{self.options['int8_max_drop']}")
            if not any(f.int8 for f in todo):
                raise ValueError(f"--int8 quantizes {' and '.join(f.name for f in quantized)} exports only; add "
                                 f"--include {' or '.join(f.argument for f in quantized)} "
                                 f"(got {', '.join(f.argument for f in todo)})")
            others = [f.argument for f in todo if not f.int8]
            if others:
                LOGGER.info(f"--int8 applies to {' and '.join(f.name for f in quantized)} only; {', '.join(others)} "
                            f"exported in FP32")
        if not self.file.is_file():
            raise FileNotFoundError(f"weights not found: {self.file}")
        self.device = select_device(self.device)
        gpu_only = [f.argument for f in todo if not f.half_on_cpu]
        if self.half and self.device.type == "cpu" and gpu_only:
            on_cpu = " ".join(f.argument for f in export_formats() if f.half_on_cpu)
            raise ValueError(f"--half exports of {' '.join(gpu_only)} need a GPU (--device 0): they are traced from an "
                             f"FP16 PyTorch model, whose convolutions are not run on CPU; --include {on_cpu} write "
                             f"FP16 from CPU themselves")
        if self.half and self.options["dynamic"]:
            raise ValueError("--half and --dynamic cannot be combined")
        if self.options["optimize"] and self.device.type != "cpu":
            raise ValueError("--optimize (mobile TorchScript) needs --device cpu")

    def load_model(self) -> tuple[torch.nn.Module, bool]:
        """The fused model in eval mode, with --data's class names where given; and whether it is a classifier."""
        model = attempt_load(str(self.file), device=self.device, inplace=True, fuse=True)
        classifier = is_classifier(model)
        if self.data and classifier:  # an ImageFolder's class folders replace the checkpoint's names
            model.names = check_cls_dataset(self.data)["names"]
        elif self.data:  # names from a dataset YAML replace the checkpoint's
            names = yaml_load(check_yaml(self.data))["names"]
            model.names = dict(enumerate(names)) if isinstance(names, list) else {int(k): v for k, v in names.items()}
        return model.eval(), classifier

    def prepare(self, model: torch.nn.Module, classifier: bool) -> tuple[ExportContext, str]:
        """Set the head for export, run the model on a real image at the export shape, and gather what exports need."""
        gs = max(int(model.stride.max()), 32)
        imgsz = list(self.imgsz) * (2 if len(self.imgsz) == 1 else 1)
        imgsz = [check_img_size(x, gs) for x in imgsz]
        im, image_name = check_image((self.batch_size, 3, *imgsz))
        im = im.to(self.device)
        for m in model.modules():
            if isinstance(m, Detect):  # Segment and any other subclass too
                m.inplace, m.dynamic, m.export = self.inplace, self.options["dynamic"], True
        with torch.no_grad():
            for _ in range(2):
                y = model(im)  # dry runs build the Detect grids, so tracing records constants, not their creation
        if self.half and self.device.type != "cpu":  # on CPU only formats that convert to FP16 themselves are asked
            im, model = im.half(), model.half()
            with torch.no_grad():
                y = model(im)
        # (predictions,), for segmentation (predictions, mask prototypes), for a classifier its (batch, nc) logits
        outputs = tuple(y) if isinstance(y, (list, tuple)) else (y,)
        LOGGER.info(f"\n{colorstr('PyTorch:')} starting from {self.file} with output shape {tuple(outputs[0].shape)} "
                    f"({file_size(self.file):.1f} MB)")
        ctx = ExportContext(model, im, self.file, {"stride": gs, "names": model.names}, outputs,
                            {**self.options, "imgsz": imgsz, "classifier": classifier})
        ctx.compare = lambda f, **kw: check_export(f, outputs, im, **kw)
        ctx.unexportable = lambda check: unexportable_layer(model, im, check, self.options["opset"])
        if self.int8 and model_task(model) == "detect":  # val mAP50-95 bounds the INT8 drop (--int8-max-drop)
            ctx.int8_metric = lambda: ValMetric(self.data, imgsz[0], gs, model.names).metric()
        return ctx, image_name

    def export_one(self, ctx: ExportContext, fmt: ExportFormat, image_name: str) -> str | None:
        """Export one format and compare it with PyTorch: its row of the table, or None when it failed (logged)."""
        missing = fmt.missing()
        if missing:  # say so before any work, and go on with the other formats
            LOGGER.error(f"{fmt.name} export of {self.file} needs {', '.join(missing)}: "
                         f"pip install {' '.join(missing)}")
            self.failed.append(fmt.argument)
            return None
        t = time.time()
        try:
            f = fmt.export(ctx)
        except Exception as e:  # name the block that cannot be exported to this format, then go on with the others
            self.log_failure(ctx, fmt, e)
            return None
        dt = time.time() - t
        line = f"{fmt.name:<12} {str(f):<60} {file_size(f):8.1f} MB {dt:7.1f} s   "
        try:
            diff = ctx.compare(f)
        except NotRunnableHere as e:  # written and checked by its converter, but nothing here runs it
            LOGGER.info(f"{fmt.name}: not compared with PyTorch: {e}")
            ctx.written[fmt.argument] = f
            return line + "not run here"
        line += f"max|diff| {diff:.2e}"
        if fmt.report:
            line += fmt.report(ctx, f)
        y = ctx.outputs[0]
        tol = (1e-2 if self.half else 1e-3) * max(float(y.abs().max()), 1.0)
        if self.int8 and fmt.int8:  # quantization moves boxes by pixels: val.py's mAP is the check that counts
            classifier = ctx.options["classifier"]
            line += " (INT8: compare top-1 with classify/val.py)" if classifier else " (INT8: compare mAP with val.py)"
        elif diff > tol:
            LOGGER.warning(f"WARNING {f}: output differs from PyTorch by {diff:.3g} (> {tol:.3g}) on {image_name}")
        ctx.written[fmt.argument] = f
        return line

    def log_failure(self, ctx: ExportContext, fmt: ExportFormat, e: Exception) -> None:
        """Say which layer cannot be exported (checked alone, layer by layer), or the error itself."""
        # a format converted from one that already failed here fails on the same layer: check with that one
        check = format_of(fmt.source).check_layer if fmt.source in self.failed else fmt.check_layer
        where = ctx.unexportable(check) if check and not isinstance(e, ImportError) else None  # a missing package
        LOGGER.error(f"{fmt.name} export of {self.file} failed: " + (f"{where}; this block cannot be exported to "
                     f"{fmt.name}" if where else f"{type(e).__name__}: {e}"))
        self.failed.append(fmt.argument)

    def report(self, ctx: ExportContext, rows: list[str], image_name: str, seconds: float) -> None:
        """The table of exports and, for the model's task, the commands that predict with and validate the last one."""
        last = list(ctx.written.values())[-1]
        steps = NEXT_STEPS.get(model_task(ctx.model))
        hint = (f"\nDetect:          python {steps[0]} --weights {last}"
                f"\nValidate:        python {steps[1]} --weights {last}") if steps else ""
        LOGGER.info(f"\nExport complete ({seconds:.1f}s), checked on {image_name} at shape {tuple(ctx.im.shape)}\n"
                    f"{'Format':<12} {'File':<60} {'Size':>11} {'Time':>9}   vs PyTorch\n" + "\n".join(rows) +
                    f"\nResults saved to {colorstr('bold', str(self.file.parent.resolve()))}" + hint)
