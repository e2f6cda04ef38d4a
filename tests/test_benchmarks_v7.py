"""benchmarks.py (YOLOv5 v7.0's command): a row per registered format, --test exports and loads, --pt-only validates."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import yaml

from models.formats import export_formats
from tests.fixtures.inference import NAMES, make_checkpoint
from utils.general import ROOT
from utils.shapes import generate_shapes_dataset


@pytest.fixture(scope="module")
def benchmarks_script():
    """benchmarks.py loaded by its path: `import benchmarks` finds the benchmarks/ package beside it."""
    spec = importlib.util.spec_from_file_location("benchmarks_v7", ROOT / "benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_test_mode_exports_and_loads_every_format_or_says_why(benchmarks_script, tmp_path, caplog):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    with caplog.at_level(logging.INFO, logger="yolov5"):
        rows = benchmarks_script.run(weights=weights, imgsz=64, test=True, project=tmp_path / "runs")
    formats = export_formats()
    assert [r["Format"] for r in rows] == [f.name for f in formats]
    for fmt, row in zip(formats, rows):
        if not fmt.supported:
            assert row["note"] == f"not here: needs {fmt.needs}" and row["Size (MB)"] is None
        elif row["note"].startswith("exported, not run here"):  # CoreML off macOS
            assert fmt.argument == "coreml" and "only on macOS" in row["note"] and row["Size (MB)"] > 0
        elif row["note"] != "exported and loaded":  # a runtime whose optional package is absent: the row says so
            assert row["note"].startswith("failed: ") and "pip install" in row["note"], row
        else:
            assert row["Size (MB)"] > 0
    assert rows[0]["note"] == "exported and loaded"  # PyTorch itself
    assert "Benchmarks complete" in caplog.text and "Inference time (ms)" in caplog.text


def test_pt_only_validates_with_val(benchmarks_script, tmp_path):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    root = generate_shapes_dataset(tmp_path / "shapes", train=1, val=2, imgsz=64, seed=2)
    data = tmp_path / "shapes.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": NAMES}))
    (row,) = benchmarks_script.run(weights=weights, imgsz=64, data=data, pt_only=True, project=tmp_path / "runs")
    assert row["Format"] == "PyTorch" and 0 <= row["mAP50-95"] <= 1 and row["Inference time (ms)"] > 0
    assert benchmarks_script.parse_opt(["--weights", "a.pt", "--img", "320", "--pt-only"]).imgsz == 320
