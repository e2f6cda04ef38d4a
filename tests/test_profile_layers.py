"""benchmarks/profile_layers.py and benchmarks/layer_profile.py: every runtime's ops land in the right block rows, the
rows add up to the profiled pass, and ncnn's layers are tied to the YOLOv5 layers they compute."""

from __future__ import annotations

import importlib.util
import logging
from collections import Counter

import numpy as np
import pytest
import torch

from benchmarks import layer_profile as lp
from benchmarks import profile_layers as pl
from benchmarks.mobile import MODELS, exported, random_checkpoint
from models.experimental import attempt_load

IMGSZ = 64
NEEDS = {"pytorch": (), "onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "ncnn": ("ncnn", "pnnx"),
         "mnn": ("MNN",)}
AVAILABLE = [r for r, pkgs in NEEDS.items() if all(importlib.util.find_spec(p) for p in pkgs)]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Random-weight yolov5n and yolov5n-csppc checkpoints, as profile_layers builds them."""
    folder = tmp_path_factory.mktemp("profile")
    return [random_checkpoint(cfg, folder) for cfg in MODELS]


@pytest.fixture(scope="module")
def results(checkpoints):
    """One profile of both models in every runtime installed here, at 64 px."""
    torch.manual_seed(0)
    return pl.run(weights=tuple(map(str, checkpoints)), runtimes=tuple(AVAILABLE), imgsz=IMGSZ, threads=1, runs=3,
                  warmup=1)


def test_category_rows():
    """Hand-picked op names of each runtime, and the row each belongs in."""
    assert pl.category("CSPPC", "m.0/Conv", "Conv") == pl.INNER  # ONNX name of a PConv's partial conv
    assert pl.category("C3", "m/m.0/cv1/conv/Conv", "Conv") == pl.INNER  # a Bottleneck's 1x1 conv is inner too
    assert pl.category("C3", "m", "Sequential") == pl.INNER  # PyTorch times C3's m as one module
    assert pl.category("CSPPC", "cv1/Conv", "Conv") == pl.CSP
    assert pl.category("CSPPC", "act_1/Mul", "QuickGelu") == pl.CSP  # the SiLU after cv2
    assert pl.category("CSPPC", "Conv_1", "Conv") == pl.CSP  # the export's second 1x1 conv of cv2
    assert pl.category("CSPPC", "m.0/Conv_output_0_raster_0", "Raster") == pl.SPLIT  # MNN's slice before a PConv
    assert pl.category("C3", "", "Concat") == pl.SPLIT
    assert pl.category("Conv", "conv/Conv", "ReorderOutput") == "layout reorders"
    assert pl.category("Upsample", "Resize", "Resize") == pl.category("Concat", "", "Concat") == "Upsample + Concat"
    assert pl.category("SPPF", "m/MaxPool", "MaxPool") == "SPPF"
    assert pl.category(None, "images", "Reorder") == "layout reorders"
    assert pl.category(None, "images", "Convert") == "other ops"


def test_onnx_names_give_layers():
    """'/model.<i>/<path>' gives layer i; an op the runtime inserted is counted in the layer before it."""
    assert lp.onnx_layer("/model.12/Concat", None) == (12, "Concat")
    assert lp.onnx_layer("/model.2/m.0/Conv_output_0_nchwc", 1) == (2, "m.0/Conv_output_0_nchwc")
    assert lp.onnx_layer("ReorderOutput_token_176", 2) == (2, "ReorderOutput_token_176")


def test_rows_add_up_to_the_profiled_pass(results):
    """Every runtime profiles both models; its rows (with 'between ops') sum to the profiled pass, the ops never
    exceed the pass they were timed in, and every op finds its YOLOv5 layer. How large the ops' share of the pass is
    depends on the machine's load (a runtime's fixed cost per run weighs as much as its ops at 64 px), so it is
    printed by profile_layers.py, not asserted here."""
    assert list(results) == AVAILABLE
    for runtime, models in results.items():
        for m in models:
            rows = m["rows"]
            ops = sum(rows[k] for k in pl.CATEGORIES)
            assert ops + rows["between ops"] == pytest.approx(rows["profiled pass"], rel=1e-9)
            assert rows["other ops"] == 0.0, runtime  # no op was left without its layer
            # OpenVINO's per-pass times are differences of its running means, which other jobs' load can push below
            # zero; the other runtimes time each op of each pass, so every block type has a positive time there
            for k in ("Conv", pl.CSP, pl.INNER, "SPPF", "Detect"):
                assert k in rows and np.isfinite(rows[k]), (runtime, k)
                assert runtime == "openvino" or rows[k] > 0, (runtime, k)
            assert m["latency"] > 0


def test_gflops_rows(results):
    """CSPPC saves its FLOPs in the inner blocks: the stand-alone convolutions, SPPF and Detect are the same."""
    a, b = next(iter(results.values()))
    ga, gb = a["gflops"], b["gflops"]
    for k in ("Conv", "SPPF", "Detect"):
        assert ga[k] == pytest.approx(gb[k])
    assert gb[pl.INNER] < 0.2 * ga[pl.INNER]
    assert ga[pl.SPLIT] == gb[pl.SPLIT] == 0.0  # no convolution moves channels


def test_floor_and_table():
    """The floor removes the second model's inner blocks and channel moves from its pass; the table shows it."""
    a = {**dict.fromkeys(pl.CATEGORIES, 0.0), "between ops": 0.0, "profiled pass": 100.0}
    b = {**a, pl.INNER: 10.0, pl.SPLIT: 5.0, "profiled pass": 80.0}
    assert pl.floor(a, b) == pytest.approx(0.65)
    models = [{"rows": a, "gflops": dict.fromkeys(pl.CATEGORIES, 1.0), "latency": 50.0},
              {"rows": b, "gflops": dict.fromkeys(pl.CATEGORIES, 0.5), "latency": 40.0}]
    text = pl.table("ncnn", models, ["yolov5n", "yolov5n-csppc"], 1.5)
    assert "ncnn (one extract per layer), load 1.5" in text
    assert "latency without profiler (ratio 0.80)" in text and "profiled ratio 0.80; floor 0.65" in text


@pytest.mark.skipif("ncnn" not in AVAILABLE, reason="needs ncnn and pnnx")
def test_ncnn_layers_matched_by_value(checkpoints):
    """Each YOLOv5 layer gets exactly the ncnn convolutions PyTorch runs in it, so the values found every layer's
    end; and the ncnn convolutions get their module paths back (a CSPPC's partial convs are its 'm.k')."""
    im = torch.rand(1, 3, IMGSZ, IMGSZ)
    for f in checkpoints:
        model = attempt_load(str(f), device=torch.device("cpu"), inplace=True, fuse=True).eval()
        param = next(exported(f, "ncnn", IMGSZ).glob("*.param"))
        owner = lp.ncnn_layer_of(param, im.numpy(), pl.layer_outputs(model, im), 1)
        layers = lp.ncnn_layers(param)
        ncnn_convs = Counter(i for layer, i in zip(layers, owner) if layer["type"] == "Convolution")
        convs = lp.conv_calls(model, im)
        assert ncnn_convs == Counter(i for i, _, _ in convs)
        paths = lp._ncnn_paths(layers, owner, convs)
        conv_paths = [p for layer, p in zip(layers, paths) if layer["type"] == "Convolution"]
        assert conv_paths == [p for _, p, _ in convs]
        swish = [p for layer, p in zip(layers, paths) if layer["type"] == "Swish"]
        assert swish and all(swish)  # every activation took its convolution's path


@pytest.mark.skipif("ncnn" not in AVAILABLE, reason="needs ncnn and pnnx")
def test_ncnn_unmatched_outputs_warn(checkpoints, caplog):
    """Outputs that no blob holds (another model's) are said in a warning, not silently misattributed."""
    im = torch.rand(1, 3, IMGSZ, IMGSZ)
    other = attempt_load(str(checkpoints[0]), device=torch.device("cpu"), fuse=True).eval()
    param = next(exported(checkpoints[1], "ncnn", IMGSZ).glob("*.param"))
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        owner = lp.ncnn_layer_of(param, im.numpy(), pl.layer_outputs(other, im), 1)
    assert "no ncnn blob holds layer" in caplog.text
    assert len(owner) == len(lp.ncnn_layers(param))


def test_cli_flags():
    """--weights takes two checkpoints; --runtimes only the profiled ones."""
    opt = pl.parse_opt(["--runtimes", "pytorch", "ncnn", "--imgsz", "128"])
    assert opt.runtimes == ["pytorch", "ncnn"] and opt.imgsz == 128
    with pytest.raises(SystemExit):
        pl.parse_opt(["--weights", "a.pt"])
    with pytest.raises(SystemExit):
        pl.parse_opt(["--runtimes", "tflite"])
