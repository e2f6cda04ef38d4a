"""Fingerprint export.py's behaviour: the bytes of every exported file and the lines it logs, for a tiny detection,
segmentation and classification model, so a refactor of the exporter can be shown to change nothing.

Usage (a fixed PYTHONHASHSEED: onnxslim's graph, as written, follows Python's set order):
    PYTHONHASHSEED=0 python benchmarks/export_parity.py --out /tmp/parity --save before.txt  # old code
    PYTHONHASHSEED=0 python benchmarks/export_parity.py --out /tmp/parity --save after.txt   # new code
    diff before.txt after.txt   # empty: same files, same lines

Timings are masked in the logged lines (they change from run to run); sizes, paths and differences are kept.
A TorchScript archive is fingerprinted member by member without its *.debug_pkl files (the Python call stack of the
tracer, file names and line numbers of the exporting code included) and its serialization_id: the code, constants
and weights it runs are compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from models.yolo import ClassificationModel, DetectionModel, SegmentationModel  # noqa: E402

NAMES = {0: "circle", 1: "square", 2: "triangle"}
CASES = {"detect": (DetectionModel, "yolov5n-csppc.yaml"), "segment": (SegmentationModel, "yolov5n-seg.yaml"),
         "classify": (ClassificationModel, "yolov5n.yaml")}
TIME = re.compile(r"\d+\.\d+ ?s\b")


def checkpoint(path: Path, task: str) -> Path:
    """A seeded random-weight checkpoint of the task's model in the project's layout (FP16 model, names set)."""
    torch.manual_seed(0)
    cls, cfg = CASES[task]
    model = cls(model=DetectionModel(cfg), nc=len(NAMES)) if task == "classify" else cls(cfg, nc=len(NAMES))
    model.names = dict(NAMES)
    torch.save({"epoch": -1, "model": model.eval().half(), "ema": None, "optimizer": None}, path)
    return path


def digest(path: Path) -> list[str]:
    """'sha256  name' for a file, or for each file inside a folder (sorted)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [f"{_sha(f)}  {f.relative_to(path.parent)}" for f in files]


def _sha(f: Path) -> str:
    """sha256 of a file's bytes; of a TorchScript archive, of its members but the debug info and serialization id."""
    h = hashlib.sha256()
    if f.suffix != ".torchscript":
        h.update(f.read_bytes())
        return h.hexdigest()[:16]
    with zipfile.ZipFile(f) as z:
        for name in sorted(z.namelist()):
            if not name.endswith((".debug_pkl", "serialization_id")):
                h.update(name.encode() + z.read(name))
    return h.hexdigest()[:16]


class Lines(logging.Handler):
    """Collects the project logger's messages."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(record.getMessage().splitlines())


def fingerprint(export_run, out: Path, task: str, include: tuple[str, ...], **kwargs) -> list[str]:
    """Export one task's model to `include` and return the masked log lines and the digests of what was written."""
    folder = out / task
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    weights = checkpoint(folder / f"{task}.pt", task)
    logger, handler = logging.getLogger("yolov5"), Lines()
    logger.addHandler(handler)
    try:
        written = export_run(weights=weights, imgsz=(64, 64), include=include, **kwargs)
    finally:
        logger.removeHandler(handler)
    lines = [f"== {task} {' '.join(include)} {kwargs or ''}"]
    lines += [TIME.sub("<t>", x) for x in handler.lines]
    for f in written:
        lines += digest(Path(f))
    return lines


def run(out: str | Path = "/tmp/export_parity", save: str | Path = "export_parity.txt") -> list[str]:
    """Every case's fingerprint, written to `save` one line each; returns the lines."""
    from export import run as export_run  # the exporter under test (old or new code)

    if os.environ.get("PYTHONHASHSEED") is None:
        logging.getLogger("yolov5").warning("WARNING PYTHONHASHSEED is not set: the --simplify ONNX file's bytes vary")

    out = Path(out).resolve()
    lines = []
    for task in CASES:
        lines += fingerprint(export_run, out, task, ("torchscript", "onnx", "openvino"))
    lines += fingerprint(export_run, out, "detect", ("onnx",), dynamic=True, simplify=True, opset=16)
    lines += fingerprint(export_run, out, "detect", ("engine", "tflite", "onnx"), nms=True)
    Path(save).write_text("\n".join(lines) + "\n")
    logging.getLogger("yolov5").info(f"{len(lines)} fingerprint lines saved to {save}")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="/tmp/export_parity", help="folder for the checkpoints and exports")
    parser.add_argument("--save", default="export_parity.txt", help="text file for the fingerprint lines")
    run(**vars(parser.parse_args()))
