"""YOLOv5 v7.0's benchmarks.py: export a detection model to every format, validate each and time its inference.

Usage:
    python benchmarks.py --weights yolov5n.pt --imgsz 640 --data data/coco128.yaml
    python benchmarks.py --weights yolov5n.pt --imgsz 160 --test       # only export and load each format
    python benchmarks.py --weights yolov5n.pt --pt-only                 # PyTorch alone

Prints one row per format of the export registry (models/formats/): Format, Size (MB), mAP50-95, Inference time
(ms) and the speed ratio against PyTorch. A format that cannot run here gets a row saying why.

This file sits beside the benchmarks/ package: `python benchmarks.py` runs it as v7.0 does, while `import benchmarks`
finds the package; tests load this file by its path.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from engine.exporter import Exporter, file_size
from engine.tasks.detect_val import DetectionValidator, val_args
from models.backends import DetectMultiBackend
from models.formats import ExportFormat, NotRunnableHere, export_formats
from utils.general import LOGGER, ROOT, print_args, set_logging


class ErrorLog(logging.Handler):
    """Keeps the project logger's first error, so a format whose export fails gets that reason in its row."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        """Remember the first message (the cause; later ones only summarise it)."""
        self.first = self.first or record.getMessage()


def export_file(weights: Path, fmt: ExportFormat, imgsz: int, batch_size: int, device: str, half: bool) -> Path:
    """The format's export of weights (the weights themselves for PyTorch); raises with the logged reason."""
    if fmt.argument == "-":
        return weights
    handler = ErrorLog()
    LOGGER.addHandler(handler)
    try:
        written = Exporter(weights, (fmt.argument,), imgsz=(imgsz, imgsz), batch_size=batch_size, device=device,
                           half=half)()
    finally:
        LOGGER.removeHandler(handler)
    if not written:
        raise RuntimeError(handler.first or "export failed (see the log above)")
    return Path(written[-1])


def validate(w: Path, data: str, imgsz: int, batch_size: int, device: str, half: bool, save_dir: Path) -> tuple:
    """val.py's detection validation of w: (mAP50-95, inference ms per image)."""
    args = val_args(data, weights=str(w), batch_size=batch_size, imgsz=imgsz, device=device, workers=0,
                    project=save_dir, name=w.name, exist_ok=True, half=half, plots=False)
    results, _, times = DetectionValidator(args)(DetectMultiBackend)
    return results[3], times[1]


def load_and_run(w: Path, imgsz: int, batch_size: int, device: str) -> None:
    """--test: load the export and run it once on zeros (raises where it cannot)."""
    model = DetectMultiBackend(w, device=torch.device("cpu") if device in ("", "cpu") else torch.device(device))
    with torch.no_grad():
        model(torch.zeros(batch_size, 3, imgsz, imgsz, device=model.device))


def benchmark_one(fmt: ExportFormat, o: argparse.Namespace) -> dict:
    """One row: the format's size, mAP50-95 and inference ms, or why it has none."""
    row = {"Format": fmt.name, "Size (MB)": None, "mAP50-95": None, "Inference time (ms)": None, "note": ""}
    if not fmt.supported:
        row["note"] = f"not here: needs {fmt.needs}"
        return row
    try:
        f = export_file(Path(o.weights), fmt, o.imgsz, o.batch_size, o.device, o.half)
        row["Size (MB)"] = round(file_size(f), 1)
        if o.test:
            load_and_run(f, o.imgsz, o.batch_size, o.device)
            row["note"] = "exported and loaded"
        else:
            m, ms = validate(f, o.data, o.imgsz, o.batch_size, o.device, o.half, Path(o.project))
            row["mAP50-95"], row["Inference time (ms)"] = round(float(m), 4), round(float(ms), 2)
    except NotRunnableHere as e:  # exported, but this machine cannot run it (CoreML off macOS)
        row["note"] = f"exported, not run here: {str(e).split(': ', 1)[-1]}"
    except Exception as e:  # the row says why; the other formats still run
        row["note"] = f"failed: {(str(e).strip().splitlines() or [type(e).__name__])[0]}"
    return row


def report(rows: list[dict], seconds: float) -> None:
    """v7.0's table, with the speed ratio against PyTorch."""
    pt_ms = rows[0]["Inference time (ms)"] if rows and rows[0]["Format"] == "PyTorch" else None
    lines = [f"{'':>3} {'Format':<22} {'Size (MB)':>9} {'mAP50-95':>9} {'Inference time (ms)':>20} {'vs PyTorch':>11}"]
    for i, r in enumerate(rows):
        size, m, ms = r["Size (MB)"], r["mAP50-95"], r["Inference time (ms)"]
        ratio = f"{ms / pt_ms:.2f}x" if ms and pt_ms else ""
        lines.append(f"{i:>3} {r['Format']:<22} {'' if size is None else size:>9} {'' if m is None else m:>9} "
                     f"{'' if ms is None else ms:>20} {ratio:>11}  {r['note']}".rstrip())
    LOGGER.info(f"\nBenchmarks complete ({seconds:.1f}s)\n" + "\n".join(lines))


def run(weights: str | Path = ROOT / "yolov5s.pt", imgsz: int = 640, batch_size: int = 1,
        data: str | Path = ROOT / "data/coco128.yaml", device: str = "cpu", half: bool = False, test: bool = False,
        pt_only: bool = False, project: str | Path = ROOT / "runs/benchmarks") -> list[dict]:
    """Benchmark weights in every format of the registry (PyTorch alone with pt_only); returns the table's rows."""
    t0 = time.time()
    o = argparse.Namespace(weights=weights, imgsz=imgsz, batch_size=batch_size, data=str(data), device=device,
                           half=half, test=test, project=project)
    formats = [f for f in export_formats() if f.argument == "-" or not pt_only]
    rows = [benchmark_one(fmt, o) for fmt in formats]
    report(rows, time.time() - t0)
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """YOLOv5 v7.0's benchmarks.py flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", type=str, default=ROOT / "yolov5s.pt", help="PyTorch checkpoint to benchmark")
    add("--imgsz", "--img", "--img-size", type=int, default=640, help="inference size (pixels)")
    add("--batch-size", type=int, default=1, help="batch size")
    add("--data", type=str, default=ROOT / "data/coco128.yaml", help="dataset.yaml to validate on")
    add("--device", default="cpu", help="cuda device, i.e. 0, or cpu")
    add("--half", action="store_true", help="use FP16 half-precision inference")
    add("--test", action="store_true", help="test exports only: export and load each format")
    add("--pt-only", action="store_true", help="test PyTorch only")
    add("--project", default=ROOT / "runs/benchmarks", help="where val.py's run folders go")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    print_args(vars(opt))
    run(**vars(opt))
