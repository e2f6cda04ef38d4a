"""The export-format registry: one ExportFormat entry per format, found by its --include argument or by a file name.

An entry says everything the project knows about a format: its names and suffix, how export.py writes it, the
packages that needs, and how DetectMultiBackend loads and runs it. export.py (through engine/exporter.py) and
models/backends.py only ever loop over the entries, so a new format is one module that calls register().
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch


class NotRunnableHere(RuntimeError):
    """A model that this machine cannot run (CoreML off macOS): export still writes it, nothing here checks it."""


class Runner(ABC):
    """A loaded model of one format: called on a BCHW float tensor; `meta` holds what its export stored
    (stride, names). A runner that returns the model's own output structure (PyTorch) sets raw_output."""

    meta: dict = {}
    raw_output = False

    @abstractmethod
    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> Any:
        """The model's output(s) for im: a tensor, an array, or a list of them."""


@dataclass
class ExportContext:
    """What an export function gets: the prepared model, its example input and outputs, the options of export.run,
    and the files written so far in this run (so OpenVINO reuses the ONNX export instead of writing it twice)."""

    model: torch.nn.Module
    im: torch.Tensor
    file: Path  # the .pt checkpoint being exported; each format derives its own path from it
    metadata: dict  # stride and names, stored in every export
    outputs: tuple  # PyTorch's outputs on im: (predictions,), segmentation (predictions, prototypes), or (logits,)
    options: dict  # export.run's options: opset, dynamic, simplify, half, optimize, int8, data, imgsz, ...
    written: dict[str, Path] = field(default_factory=dict)  # --include argument -> file, in this run
    compare: Callable[..., float] | None = None  # compare(file, **load_options): max |diff| from PyTorch's outputs
    unexportable: Callable[[str], str | None] | None = None  # unexportable(argument): the layer that fails, or None
    int8_metric: Callable[[], Any] | None = None  # builds the metric --int8 holds (detection: val mAP50-95)

    @property
    def task(self) -> str:
        """The exported model's task, from what export.py gathered: a classifier, two outputs (masks) or detection."""
        return "classify" if self.options.get("classifier") else "segment" if len(self.outputs) == 2 else "detect"

    def calibration_images(self):
        """The --data train images INT8 calibrates on (--int8-images of them), as the exported model is fed them:
        letterboxed as val.py feeds exports, or for a classifier centre-cropped as classify/val.py reads them."""
        o = self.options
        if o["classifier"]:
            from utils.classify_data import calibration_images

            return calibration_images(o["data"], o["imgsz"][0], o["int8_images"])
        from utils.quantize import CalibrationImages

        if o["imgsz"][0] != o["imgsz"][1]:
            raise ValueError(f"INT8 calibration letterboxes to a square as val.py does; got --imgsz {o['imgsz']}")
        return CalibrationImages(o["data"], o["imgsz"][0], int(self.metadata["stride"]), n=o["int8_images"])

    def need(self, argument: str) -> Path:
        """The file of another format that this one is converted from, exported now unless this run wrote it."""
        return self.written.get(argument) or format_of(argument).export(self)


@dataclass(frozen=True)
class ExportFormat:
    """One format. export and load are None where this project cannot write or run it; `needs` then says why."""

    name: str  # as YOLOv5 prints it: "ONNX", "OpenVINO"
    argument: str  # export.py --include argument; "-" for PyTorch itself
    suffix: str  # file suffix (".onnx") or folder ending ("_openvino_model")
    key: str  # DetectMultiBackend's v7.0 flag for it: pt, jit, onnx, xml, engine, coreml, ...
    export: Callable[[ExportContext], Path] | None = None  # writes the file and returns its path
    load: Callable[..., Runner] | None = None  # load(w, device, dnn=, fp16=, bf16=, fuse=, weights=) -> Runner
    requirements: tuple[str, ...] = ()  # pip packages export and load need
    needs: str = ""  # for a format not built here: what it would need (hardware, framework)
    also: tuple[str, ...] = ()  # other name endings it is recognised by (".xml" for an OpenVINO model file)
    source: str = ""  # the format it is converted from (OpenVINO from ONNX): its layer check runs when that failed
    check_layer: Callable[[torch.nn.Module, tuple, int], None] | None = None  # exports one layer alone, or raises
    report: Callable[[ExportContext, Path], str] | None = None  # extra text for its row of the export table
    gpu: bool = False  # runs on CUDA (and then in FP16 with --half)
    bf16: bool = False  # runs in bf16 on CPUs that have it (--half on CPU)
    int8: bool = False  # export.py --int8 quantizes it
    half_on_cpu: bool = False  # its converter writes FP16 from the float model: --half needs no GPU

    @property
    def supported(self) -> bool:
        """Whether this project runs models of this format."""
        return self.load is not None

    def path(self, weights: str | Path) -> Path:
        """Where an export of `weights` is written, named as YOLOv5 names it (yolov5s.onnx, yolov5s_openvino_model/)."""
        w = Path(weights)
        return w.with_suffix(self.suffix) if self.suffix.startswith(".") else w.parent / f"{w.stem}{self.suffix}"

    def missing(self) -> list[str]:
        """Its required packages that are not installed (found without importing them)."""
        return [p for p in self.requirements if importlib.util.find_spec(p) is None]

    def matches(self, name: str) -> int:
        """Length of the longest of its endings that `name` ends with (0: none), so _edgetpu.tflite beats .tflite."""
        return max((len(s) for s in (self.suffix, *self.also) if name.endswith(s)), default=0)


_FORMATS: dict[str, ExportFormat] = {}
# YOLOv5 v7.0's table order (export.py's list, DetectMultiBackend's flags); formats it lacks follow in the order added
V7_ORDER = ("-", "torchscript", "onnx", "openvino", "engine", "coreml", "saved_model", "pb", "tflite", "edgetpu",
            "tfjs", "paddle")


def register(fmt: ExportFormat) -> ExportFormat:
    """Add a format; one with the same argument is replaced (a v7.0 row keeps its position in the table)."""
    _FORMATS[fmt.argument] = fmt
    return fmt


def _position(fmt: ExportFormat) -> int:
    """Place in the table: v7.0's rows in v7.0's order, then the others."""
    return V7_ORDER.index(fmt.argument) if fmt.argument in V7_ORDER else len(V7_ORDER)


def unregister(argument: str) -> None:
    """Remove a format (tests that register a toy one)."""
    _FORMATS.pop(argument, None)


def export_formats() -> list[ExportFormat]:
    """Every registered format, in YOLOv5 v7.0's order, then the others in the order added."""
    return sorted(_FORMATS.values(), key=_position)  # stable: formats v7.0 lacks keep the order they were added


def exportable() -> list[str]:
    """The --include arguments this project exports."""
    return [f.argument for f in export_formats() if f.export is not None]


def format_of(argument: str) -> ExportFormat:
    """The entry for an --include argument (case-insensitive); KeyError listing the known ones otherwise."""
    fmt = _FORMATS.get(argument.lower())
    if fmt is None or argument == "-":
        known = ", ".join(f.argument for f in export_formats() if f.argument != "-")
        raise KeyError(f"unknown export format '{argument}'; known formats: {known}")
    return fmt


def format_for(path: str | Path) -> ExportFormat | None:
    """The format a weights path is, by its name's ending (the longest match wins); None when none matches."""
    name = Path(str(path)).name
    best = max(_FORMATS.values(), key=lambda f: f.matches(name), default=None)
    return best if best is not None and best.matches(name) else None


def model_type(path: str | Path) -> dict[str, bool]:
    """v7.0's flags for a weights path: {'pt': ..., 'jit': ..., 'onnx': ..., 'xml': ..., ...}, one True at most."""
    fmt = format_for(path)
    return {f.key: f is fmt for f in export_formats()}
