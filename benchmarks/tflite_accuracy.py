"""LiteRT (TFLite) accuracy: val.py mAP50-95 of each checkpoint in PyTorch and as FP32 and FP16 .tflite, in one run.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/tflite_accuracy.py --weights a.pt b.pt --data shapes.yaml --imgsz 160

Each checkpoint is exported by the Exporter (as export.py --include tflite, then with --half, on CPU), and the
checkpoint and both exports are validated by val.py's detection validator on the same images at batch 1. The table
gives each mAP50-95 and its difference from PyTorch's (targets: 0.002 for FP32, 0.005 for FP16).

The PyTorch reference is validated on the square letterboxed batches every export gets: val.py gives a .pt model
rectangular batches padded by half a stride instead (192 px for 160), a different input. That figure is printed too,
as "val.py .pt", to show how far the input alone moves mAP50-95.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.timing import loadavg  # noqa: E402
from engine.exporter import Exporter  # noqa: E402
from engine.tasks.detect_val import DetectionValidator, val_args  # noqa: E402
from models.backends import DetectMultiBackend  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402

TARGETS = {"FP32": 0.002, "FP16": 0.005}  # the largest mAP50-95 difference from PyTorch each precision may have


class SquareBatches(DetectionValidator):
    """val.py's detection validator with the square letterboxed batches of the exports, for a .pt model too."""

    def build_dataloader(self, path: str, stride: int, pad: float, rect: bool, **kwargs):
        """The dataloader without rectangular batches."""
        return super().build_dataloader(path, stride, pad, False, **kwargs)


def map50_95(w: Path, data: str, imgsz: int, project: Path, square: bool = True) -> float:
    """val.py's mAP50-95 of w at batch 1 on data's val split (FP32 for a .pt, whatever precision a file holds)."""
    args = val_args(data, weights=str(w), batch_size=1, imgsz=imgsz, device="cpu", workers=0, project=project,
                    name=f"{w.name}-{'square' if square else 'rect'}", exist_ok=True, plots=False)
    validator = SquareBatches if square else DetectionValidator
    return float(validator(args)(DetectMultiBackend)[0][3])


def measure(w: Path, data: str, imgsz: int, project: Path) -> dict:
    """One row: PyTorch's mAP50-95 and the FP32 and FP16 LiteRT exports'."""
    row = {"weights": w, "PyTorch": map50_95(w, data, imgsz, project),
           "val.py .pt": map50_95(w, data, imgsz, project, square=False)}
    for precision, half in (("FP32", False), ("FP16", True)):
        written = Exporter(w, ("tflite",), imgsz=(imgsz, imgsz), half=half)()
        if not written:
            raise RuntimeError(f"{w}: LiteRT {precision} export failed (see the log above)")
        row[precision] = map50_95(Path(written[-1]), data, imgsz, project)
    row["load"] = loadavg()
    return row


def report(rows: list[dict], imgsz: int) -> str:
    """The table, with each export's difference from PyTorch and whether it is within its target."""
    lines = [f"LiteRT mAP50-95 at {imgsz} px, val.py batch 1 (targets: FP32 within {TARGETS['FP32']}, FP16 within "
             f"{TARGETS['FP16']} of PyTorch)",
             f"{'weights':<44} {'PyTorch':>8} {'FP32':>8} {'diff':>8} {'FP16':>8} {'diff':>8} {'val.py .pt':>10} "
             f"{'load':>5}"]
    for r in rows:
        d32, d16 = r["FP32"] - r["PyTorch"], r["FP16"] - r["PyTorch"]
        ok = abs(d32) <= TARGETS["FP32"] and abs(d16) <= TARGETS["FP16"]
        verdict = "within targets" if ok else "OUTSIDE targets"
        lines.append(f"{str(r['weights'])[-44:]:<44} {r['PyTorch']:8.4f} {r['FP32']:8.4f} {d32:+8.4f} {r['FP16']:8.4f} "
                     f"{d16:+8.4f} {r['val.py .pt']:10.4f} {r['load']:5.1f}  {verdict}")
    return "\n".join(lines)


def run(weights: tuple[str, ...] = (), data: str = "shapes.yaml", imgsz: int = 160,
        project: str = "runs/tflite_accuracy") -> list[dict]:
    """Validate every checkpoint and its two LiteRT exports; log the table and return its rows."""
    if not weights:
        raise ValueError("--weights: give one or more trained detection checkpoints")
    rows = [measure(Path(w), data, imgsz, Path(project)) for w in weights]
    LOGGER.info("\n" + report(rows, imgsz))
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", nargs="+", default=(), help="trained detection checkpoints (.pt)")
    add("--data", default="shapes.yaml", help="dataset YAML whose val split is validated")
    add("--imgsz", type=int, default=160, help="export and validation size")
    add("--project", default="runs/tflite_accuracy", help="where val.py's run folders go")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
