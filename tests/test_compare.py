"""benchmarks/compare.py end to end on tiny settings: the table, CSV and chart it writes, and its argument checks."""

import csv
import importlib.util
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from benchmarks import compare, mobile
from models.formats import ExportFormat, format_of, register, unregister
from models.yolo import DetectionModel

CFGS = ["yolov5n.yaml", "yolov5n-csppc.yaml"]


def _dataset(root: Path) -> Path:
    """Three 64x64 images with one coloured square each, labelled; returns the data YAML."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for i, (c, bgr) in enumerate([(0, (0, 0, 255)), (1, (0, 255, 0)), (2, (255, 0, 0))]):
        im = np.zeros((64, 64, 3), dtype=np.uint8)
        im[10 + 5 * i : 40 + 5 * i, 12:44] = bgr
        cv2.imwrite(str(root / "images" / "val" / f"{i}.png"), im)
        (root / "labels" / "val" / f"{i}.txt").write_text(f"{c} 0.4375 {(25 + 5 * i) / 64:.6f} 0.5 0.46875\n")
    data = {"path": str(root), "train": "images/val", "val": "images/val", "names": {0: "r", 1: "g", 2: "b"}}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def _checkpoint(cfg: str, path: Path) -> Path:
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=3)
    model.names = {0: "r", 1: "g", 2: "b"}
    torch.save({"epoch": -1, "model": model, "ema": None}, path)
    return path


def _read_csv(file: Path) -> list[dict]:
    with open(file, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_end_to_end_with_weights_and_data(tmp_path):
    data = _dataset(tmp_path / "ds")
    weights = [_checkpoint(c, tmp_path / f"{Path(c).stem}.pt") for c in CFGS]
    rows = compare.run(cfg=CFGS, weights=weights, data=str(data), imgsz=64, val_imgsz=96, runs=2, warmup=1,
                       threads=1, project=tmp_path / "runs", name="exp")
    out = tmp_path / "runs" / "exp"
    assert [r["model"] for r in rows] == ["yolov5n", "yolov5n-csppc"]
    for r in rows:
        assert r["params_fused"] <= r["params"] and 0 < r["gflops_fused"] < r["gflops"]
        assert r["pytorch_ms"] > 0 and r["onnxruntime_ms"] > 0
        assert r["pytorch_peak_mb"] > 0 and r["onnxruntime_peak_mb"] > 0
        assert 0.0 <= r["map50_95"] <= r["map50"] <= 1.0
    assert rows[0]["pytorch_ratio"] == 1.0 and rows[1]["pytorch_ratio"] == rows[1]["pytorch_ms"] / rows[0]["pytorch_ms"]
    # the CSPPC model is the smaller one, trained and fused
    assert rows[1]["params"] < rows[0]["params"] and rows[1]["gflops_fused"] < rows[0]["gflops_fused"]

    md = (out / "compare.md").read_text()
    assert md.startswith("| Model | Batch |") and "| yolov5n-csppc | 1 |" in md
    assert "Machine:" in md and f"torch {torch.__version__}" in md and "onnxruntime" in md and "1 threads" in md
    assert "64x64" in md and "at 96 px" in md and "median of 2 runs" in md
    table = _read_csv(out / "compare.csv")
    assert [t["model"] for t in table] == ["yolov5n", "yolov5n-csppc"]
    assert float(table[1]["params_fused"]) == rows[1]["params_fused"]
    assert float(table[0]["map50"]) == pytest.approx(rows[0]["map50"])
    png = cv2.imread(str(out / "compare.png"))
    assert png is not None and png.shape[0] > 100 and png.shape[1] > 400
    assert (out / "yolov5n-csppc-b1.onnx").is_file()


def test_cfg_only_several_batch_sizes(tmp_path):
    rows = compare.run(cfg=CFGS, imgsz=64, batch_size=(1, 2), runs=2, warmup=0, threads=1, memory=False,
                       project=tmp_path, name="b", runtimes=())
    assert [(r["model"], r["batch"]) for r in rows] == [(m, b) for b in (1, 2) for m in ("yolov5n", "yolov5n-csppc")]
    assert [r["pytorch_ratio"] for r in rows if r["model"] == "yolov5n"] == [1.0, 1.0]
    assert all(r["map50"] is None and r["pytorch_peak_mb"] is None for r in rows)
    assert "| - | - |" in (tmp_path / "b" / "compare.md").read_text()  # no mAP without weights and data


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="one checkpoint per YAML"):
        compare.run(cfg=CFGS, weights=["a.pt"], project=tmp_path)
    with pytest.raises(ValueError, match="add --weights"):
        compare.run(cfg=CFGS, data="shapes.yaml", project=tmp_path)
    with pytest.raises(ValueError, match="--half needs a CUDA device"):
        compare.run(cfg=CFGS, half=True, device="cpu", project=tmp_path)
    with pytest.raises(SystemExit):
        compare.parse_opt(["--runs", "0", "--cfg", "yolov5n.yaml"])
    assert compare.parse_opt(["--cfg", *CFGS, "--batch-size", "1", "32"]).batch_size == [1, 32]


def test_time_interleaved_burst_times_the_last_call_of_each_burst():
    """--burst: each model is called burst times per round and only the last call counts (the warm one)."""
    count = {"a": 0, "b": 0}

    def call(k):
        count[k] += 1
        if count[k] % 3 == 1:  # the first call of each burst of 3 is the slow, cold one
            time.sleep(0.05)

    ms = compare.time_interleaved({k: (lambda k=k: call(k)) for k in count}, runs=4, warmup=1, cuda=False, burst=3)
    assert count == {"a": 15, "b": 15}  # (1 warm-up + 4 runs) x 3
    assert ms["a"] < 25 and ms["b"] < 25  # the 50 ms first calls are never the timed ones
    count.update(a=0, b=0)
    ms = compare.time_interleaved({k: (lambda k=k: call(k)) for k in count}, runs=3, warmup=0, cuda=False)
    assert count == {"a": 3, "b": 3} and ms["a"] >= 0  # burst 1: one timed call per round, as before


def test_onnx_runtime_checked_against_pytorch(tmp_path):
    """Folded from benchmarks/inference.py: the timed ONNX export's largest difference from PyTorch, per model."""
    rows = compare.run(cfg=CFGS, imgsz=64, runs=1, warmup=0, threads=1, memory=False, project=tmp_path, name="d",
                       runtimes=())
    assert all(0 <= r["onnxruntime_diff"] < 1e-3 for r in rows)
    md = (tmp_path / "d" / "compare.md").read_text()
    assert f"ONNX Runtime max|diff| from PyTorch: yolov5n {rows[0]['onnxruntime_diff']:.1e}" in md
    assert "thread wait" in md
    assert float(_read_csv(tmp_path / "d" / "compare.csv")[1]["onnxruntime_diff"]) == pytest.approx(
        rows[1]["onnxruntime_diff"])


def _installed(*packages: str) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in packages)


@pytest.mark.skipif(not _installed("ncnn", "pnnx", "MNN"), reason="needs ncnn, pnnx and MNN")
def test_mobile_columns(tmp_path):
    """ncnn, MNN and LiteRT columns: each model's latency through DetectMultiBackend and its ratio to the first
    model; LiteRT without its converter says what it needs instead of a figure."""
    rows = compare.run(cfg=CFGS, imgsz=64, runs=2, warmup=1, threads=1, memory=False, project=tmp_path, name="m")
    for key in ("ncnn", "mnn"):
        assert rows[0][f"{key}_ms"] > 0 and rows[0][f"{key}_ratio"] == 1.0
        assert rows[1][f"{key}_ratio"] == pytest.approx(rows[1][f"{key}_ms"] / rows[0][f"{key}_ms"])
    out = tmp_path / "m"
    assert (out / "exports" / "ncnn" / "yolov5n-csppc-b1_ncnn_model").is_dir()
    assert (out / "exports" / "mnn" / "yolov5n-csppc-b1.mnn").is_file()
    md = (out / "compare.md").read_text()
    assert "| Model | Batch | ncnn ms | ratio | MNN ms | ratio | TensorFlow Lite ms | ratio |" in md
    table = _read_csv(out / "compare.csv")
    assert float(table[1]["ncnn_ratio"]) == pytest.approx(rows[1]["ncnn_ratio"])
    if not _installed("litert_torch"):
        assert rows[1]["tflite_ms"] is None and table[1]["tflite_ms"] == ""
        assert "| yolov5n-csppc | 1 |" in md and "needs litert-torch" in md
    else:
        assert rows[1]["tflite_ms"] > 0


def test_mobile_columns_come_from_the_registry():
    """A format whose registry entry quantizes (int8=True) gets an INT8 column beside its FP32 one; a column that
    cannot be measured says why."""
    register(ExportFormat("Toy", "toy", ".toy", "toy", export=lambda ctx: ctx.file, load=lambda *a, **k: None,
                           requirements=("no_such_package_xyz",), int8=True))
    try:
        vs = mobile.variants(("ncnn", "toy"))
        assert [v.key for v in vs] == ["ncnn"] + (["ncnn_int8"] if format_of("ncnn").int8 else []) + ["toy", "toy_int8"]
        assert [v.title for v in vs][-2:] == ["Toy", "Toy INT8"]
        assert mobile.columns(("toy",)) == ["toy_ms", "toy_ratio", "toy_int8_ms", "toy_int8_ratio"]
        assert mobile.unavailable(vs[-1], None, False) == "needs no-such-package-xyz"
    finally:
        unregister("toy")
    int8 = mobile.Variant(format_of("onnx"), True)  # installed requirements: only the missing --data is said
    assert mobile.unavailable(int8, None, False) == "needs --int8 --data"
    assert mobile.unavailable(int8, "data.yaml", True) == "CPU runtime"
    assert mobile.unavailable(int8, "data.yaml", False) is None


@pytest.mark.slow
@pytest.mark.skipif(not _installed("openvino", "nncf"), reason="needs openvino and nncf")
def test_int8_variant_is_exported_quantized_and_timed(tmp_path):
    """An INT8 column is exported by export.py's --int8 path (calibrated on --data) from its own checkpoint copy and
    timed beside FP32: OpenVINO is the registry entry that quantizes on every install."""
    data = _dataset(tmp_path / "ds")
    torch.manual_seed(0)
    models = [DetectionModel(c, nc=3).eval() for c in CFGS]
    rows, notes = mobile.measure(models, ["a", "b"], torch.rand(1, 3, 64, 64), tmp_path / "exports", runs=2, warmup=1,
                                 data=str(data), int8_images=3, arguments=("openvino",))
    assert notes == {"openvino": None, "openvino_int8": None}
    assert rows[0]["openvino_int8_ratio"] == 1.0 and rows[1]["openvino_int8_ms"] > 0
    assert (tmp_path / "exports" / "openvino_int8" / "b-b1_int8_openvino_model").is_dir()
    assert (tmp_path / "exports" / "openvino" / "b-b1_openvino_model").is_dir()
