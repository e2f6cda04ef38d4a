"""The mobile runtimes' latency (ncnn, MNN, LiteRT), shared by benchmarks/runtimes.py and compare.py's columns.

A model is exported by the export registry (engine.exporter.Exporter, as export.py does), loaded by
DetectMultiBackend and timed interleaved with the other models. compare.py's columns come from the registry: every
format of MOBILE gets an FP32 column, and an INT8 one where its registry entry says --int8 quantizes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks.timing import time_interleaved
from engine.exporter import Exporter
from models.backends import DetectMultiBackend
from models.formats import ExportFormat, format_of
from models.yolo import DetectionModel
from utils.general import LOGGER

MOBILE = ("ncnn", "mnn", "tflite")  # the runtimes a nano model ships on, as export.py --include names them
MODELS = ("yolov5n.yaml", "yolov5n-csppc.yaml")  # the baseline first, CSPPC second: the ratio is second / first


@dataclass(frozen=True)
class Variant:
    """One latency column: a format in one precision."""

    fmt: ExportFormat
    int8: bool

    @property
    def key(self) -> str:
        """The CSV column stem: ncnn, ncnn_int8, ..."""
        return self.fmt.argument + ("_int8" if self.int8 else "")

    @property
    def title(self) -> str:
        """The markdown column title."""
        return self.fmt.name + (" INT8" if self.int8 else "")


def variants(arguments: tuple[str, ...] = MOBILE) -> list[Variant]:
    """FP32 of each format, then INT8 where the registry says export.py --int8 quantizes it."""
    out = []
    for a in arguments:
        fmt = format_of(a)
        out += [Variant(fmt, False)] + ([Variant(fmt, True)] if fmt.int8 else [])
    return out


def columns(arguments: tuple[str, ...] = MOBILE) -> list[str]:
    """compare.csv's columns for these runtimes: <key>_ms and <key>_ratio per variant."""
    return [f"{v.key}_{s}" for v in variants(arguments) for s in ("ms", "ratio")]


def unavailable(v: Variant, data: str | None, cuda: bool) -> str | None:
    """Why a column cannot be measured here (the table's cell), or None when it can."""
    if v.fmt.export is None or v.fmt.load is None:
        return f"{v.fmt.name} not supported"
    missing = v.fmt.missing()
    if missing:
        return "needs " + ", ".join(p.replace("_", "-") for p in missing)
    if cuda:
        return "CPU runtime"
    if v.int8 and not data:
        return "needs --int8 --data"
    return None


def random_checkpoint(cfg: str, folder: Path, nc: int = 6) -> Path:
    """A checkpoint of cfg with random weights, as export.py reads it."""
    torch.manual_seed(0)
    return save_checkpoint(DetectionModel(cfg, nc=nc).eval(), folder / Path(cfg).with_suffix(".pt").name)


def save_checkpoint(model: torch.nn.Module, f: Path) -> Path:
    """The (unfused) model saved as export.py reads a checkpoint."""
    f.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "ema": None, "epoch": -1, "optimizer": None}, f)
    return f


def exported(weights: Path, fmt: str, imgsz: int, batch_size: int = 1, **options) -> Path | None:
    """weights exported to fmt (the checkpoint itself for 'pt'); None, logged, when the export fails.

    options go to the Exporter (int8=True, data=..., int8_images=... for an INT8 export).
    """
    if fmt == "pt":
        return weights
    written = Exporter(weights, (fmt,), imgsz=(imgsz, imgsz), batch_size=batch_size, **options)()
    return Path(written[-1]) if written else None


def backend_calls(files: list[Path], im: torch.Tensor) -> list[Callable]:
    """One call per file: its model in DetectMultiBackend on im (the pre- and post-processing a user gets)."""
    return [lambda m=DetectMultiBackend(f): m(im) for f in files]


def time_files(files: list[Path], im: torch.Tensor, runs: int, warmup: int, burst: int = 1) -> list[float]:
    """Median ms of each file's model on im, interleaved."""
    calls = dict(enumerate(backend_calls(files, im)))
    with torch.no_grad():
        ms = time_interleaved(calls, runs, warmup, burst=burst)
    return [ms[i] for i in range(len(files))]


def measure(models: list[torch.nn.Module], labels: list[str], im: torch.Tensor, folder: Path, runs: int, warmup: int,
            burst: int = 1, data: str | None = None, int8_images: int = 300,
            arguments: tuple[str, ...] = MOBILE) -> tuple[list[dict], dict[str, str]]:
    """Each model's row of <key>_ms and <key>_ratio (to the first model), and why a column is empty where it is.

    models are the trained forms; each is saved as a checkpoint in folder and exported once per variant (INT8 from its
    own copy, so that no export overwrites another).
    """
    rows, notes = [{} for _ in models], {}
    bs, imgsz = im.shape[0], im.shape[-1]
    for v in variants(arguments):
        notes[v.key] = unavailable(v, data, im.device.type == "cuda")
        if notes[v.key]:
            continue
        options = dict(int8=True, data=data, int8_images=int8_images) if v.int8 else {}
        ckpts = [save_checkpoint(m, folder / v.key / f"{lb}-b{bs}.pt") for m, lb in zip(models, labels)]
        files = [exported(c, v.fmt.argument, imgsz, bs, **options) for c in ckpts]
        if None in files:
            notes[v.key] = "export failed (see log)"
            continue
        ms = time_files(files, im.cpu(), runs, warmup, burst)
        for r, t in zip(rows, ms):
            r[f"{v.key}_ms"], r[f"{v.key}_ratio"] = t, t / ms[0]
    return rows, notes


def mobile_table(rows: list[dict], notes: dict[int, dict[str, str]], arguments: tuple[str, ...] = MOBILE) -> str:
    """The mobile columns as a markdown table; an empty column says why in its cells (notes: per batch size)."""
    vs = variants(arguments)
    head = ["Model", "Batch"] + [t for v in vs for t in (f"{v.title} ms", "ratio")]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        note = notes.get(r["batch"], {})
        cells = [r["model"], str(r["batch"])]
        for v in vs:
            ms = r.get(f"{v.key}_ms")
            cells += ([f"{ms:.1f}", f"{r[f'{v.key}_ratio']:.3f}"] if ms is not None else
                      [note.get(v.key) or "-", "-"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def log_unavailable(notes: dict[str, str]) -> None:
    """One line per column that could not be measured."""
    for k, why in notes.items():
        if why:
            LOGGER.info(f"compare: {k} column empty: {why}")
