"""The model zoo end to end: one model of each kind trained a step, saved as v7.0 saves, fused, exported, run."""

from __future__ import annotations

import logging
from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detect
import export
from models.backends import DetectMultiBackend
from models.experimental import attempt_load, torch_safe_load
from models.extra_blocks import C3TR, GhostConv
from models.yolo import Detect, DetectionModel
from tests.conftest import randomize_bn
from tests.fixtures.inference import NAMES, shapes_image
from utils.autoanchor import check_anchors
from utils.general import ROOT, yaml_load
from utils.loss import ComputeLoss

HYP = {"box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0}

# kind: (config, (depth, width) to shrink the big ones to test size, or None; image size)
KINDS = {
    "p2": ("yolov5-p2.yaml", (0.33, 0.125), 64),
    "p6": ("yolov5n6.yaml", None, 128),
    "p7": ("yolov5-p7.yaml", (0.33, 0.125), 128),
    "ghost": ("yolov5s-ghost.yaml", None, 64),
    "transformer": ("yolov5s-transformer.yaml", None, 64),
    "yolov3-tiny": ("yolov3-tiny.yaml", None, 64),
}
SLOW_KINDS = {"p7", "transformer", "ghost"}


def build(cfg: str, scale: tuple[float, float] | None = None, nc: int = len(NAMES), seed: int = 0) -> DetectionModel:
    """A model of cfg with nc classes, optionally with smaller depth/width multiples (same layout of layers)."""
    d = yaml_load(next(ROOT.glob(f"models/**/{cfg}")))
    if scale:
        d["depth_multiple"], d["width_multiple"] = scale
    torch.manual_seed(seed)
    return DetectionModel(d, nc=nc)


def save_v7_checkpoint(model: DetectionModel, path: Path) -> Path:
    """The layout YOLOv5 v7.0's strip_optimizer leaves: an FP16 pickled model, no EMA or optimizer, epoch -1."""
    model.names = dict(NAMES)
    ckpt = {"epoch": -1, "best_fitness": None, "model": deepcopy(model).half(), "ema": None, "updates": None,
            "optimizer": None, "opt": {"imgsz": 640}, "git": None, "date": "2022-11-22T00:00:00"}
    torch.save(ckpt, path)
    return path


def training_step(model: DetectionModel, imgsz: int) -> float:
    """One SGD step with ComputeLoss on two images with four boxes; returns the loss before the step."""
    model.train()
    model.hyp = dict(HYP)
    loss_fn = ComputeLoss(model)
    imgs = torch.rand(2, 3, imgsz, imgsz)
    targets = torch.tensor([[0, 0, 0.3, 0.3, 0.2, 0.3], [0, 1, 0.7, 0.6, 0.5, 0.4],
                            [1, 2, 0.5, 0.5, 0.9, 0.8], [1, 0, 0.2, 0.8, 0.05, 0.08]])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss, items = loss_fn(model(imgs), targets)
    opt.zero_grad()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"
    det = model.model[-1]
    assert all(float(c.weight.grad.abs().sum()) > 0 for c in det.m)  # every output level is trained
    # clipped as train.py does: BatchNorm over a batch of two 1x1 maps (P7 at 128 px) gives huge raw gradients
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    opt.step()
    assert items.shape == (3,) and torch.isfinite(loss)
    return loss.item()


def _cases(kinds):
    return [pytest.param(k, marks=pytest.mark.slow) if k in SLOW_KINDS else k for k in kinds]


@pytest.mark.parametrize("kind", _cases(KINDS))
def test_kind_end_to_end(kind, tmp_path):
    cfg, scale, imgsz = KINDS[kind]
    model = build(cfg, scale)
    nl = model.model[-1].nl
    training_step(model, imgsz)
    model.eval()
    randomize_bn(model)  # fusing then has real statistics to fold
    weights = save_v7_checkpoint(model, tmp_path / f"{kind}.pt")

    im = torch.from_numpy(shapes_image(imgsz, imgsz)[..., ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    with torch.no_grad():
        ref = model.float()(im)[0]
        fused = attempt_load(str(weights), fuse=True)
        assert not any(hasattr(m, "bn") for m in fused.modules() if type(m).__name__ == "Conv")
        got = fused(im)[0]
    assert got.shape == ref.shape == (1, 3 * sum((imgsz // int(s)) ** 2 for s in model.stride), 5 + len(NAMES))
    scale_ref = float(ref.abs().max())
    assert float((got - ref).abs().max()) < 2e-3 * scale_ref  # FP16 checkpoint, fused: small relative error only

    onnx_file = Path(export.run(weights=str(weights), include=("onnx",), imgsz=(imgsz, imgsz))[0])
    backend = DetectMultiBackend(onnx_file)
    assert backend.onnx and backend.stride == int(model.stride.max()) and backend.names == NAMES
    y = backend(im)
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert tuple(y.shape) == tuple(got.shape)
    assert float((y - got).abs().max()) < 1e-3 * scale_ref

    src = tmp_path / "images"
    src.mkdir()
    cv2.imwrite(str(src / "shapes.jpg"), shapes_image(imgsz + 16, imgsz, seed=1))
    for w in (weights, onnx_file):
        save_dir = detect.run(weights=w, source=src, imgsz=(imgsz, imgsz), conf_thres=0.0, max_det=5, device="cpu",
                              project=tmp_path / "detect", name=w.suffix[1:], save_txt=True)
        out = cv2.imread(str(save_dir / "shapes.jpg"))
        assert out is not None and out.shape == (imgsz + 16, imgsz, 3)
        rows = np.loadtxt(save_dir / "labels" / "shapes.txt", ndmin=2)
        assert rows.shape == (5, 5) and set(rows[:, 0].astype(int)) <= set(NAMES)
    assert nl == {"p2": 4, "p6": 4, "p7": 5, "yolov3-tiny": 2}.get(kind, 3)


# P6 models at 640 and 1280, in the loss, AutoAnchor and val -----------------------------------------------------


@pytest.mark.parametrize("imgsz", [640, pytest.param(1280, marks=pytest.mark.slow)])
def test_p6_runs_at_640_and_1280(imgsz):
    model = build("yolov5n6.yaml", nc=80).eval()
    with torch.no_grad():
        pred, maps = model(torch.zeros(1, 3, imgsz, imgsz))
    assert [tuple(m.shape[2:4]) for m in maps] == [(imgsz // s, imgsz // s) for s in (8, 16, 32, 64)]
    assert pred.shape == (1, 3 * sum((imgsz // s) ** 2 for s in (8, 16, 32, 64)), 85)


def test_p6_loss_balances_four_levels():
    model = build("yolov5n6.yaml")
    model.hyp = dict(HYP)
    loss_fn = ComputeLoss(model)
    assert loss_fn.nl == 4 and loss_fn.balance[:4] == [4.0, 1.0, 0.25, 0.06]  # v7.0's P6 gains
    assert training_step(model, 128) > 0


class _LabelledSizes:
    """What check_anchors reads from a dataset: image shapes (w, h) and labels [cls, x, y, w, h] normalised."""

    def __init__(self, wh: np.ndarray, n_images: int = 8):
        rng = np.random.default_rng(0)
        self.shapes = np.full((n_images, 2), 640.0)
        self.labels = [np.column_stack([np.zeros(len(wh)), rng.random((len(wh), 2)), wh / 640])
                       for _ in range(n_images)]


def test_autoanchor_on_a_p6_model():
    model = build("yolov5n6.yaml")
    det = model.model[-1]
    before = (det.anchors * det.stride.view(-1, 1, 1)).clone()
    check_anchors(_LabelledSizes(np.array([[20.0, 30.0], [60.0, 50.0], [150.0, 200.0], [400.0, 350.0]])), model)
    assert torch.allclose(det.anchors * det.stride.view(-1, 1, 1), before)  # P6 anchors fit these sizes: kept
    # sizes no anchor fits (very thin boxes): AutoAnchor evolves 12 anchors, in 4 levels, smallest on P3
    torch.manual_seed(0)
    np.random.seed(0)
    thin = np.array([[2.0, 200.0], [3.0, 300.0], [4.0, 150.0], [600.0, 5.0], [500.0, 4.0], [5.0, 500.0]])
    check_anchors(_LabelledSizes(np.repeat(thin, 3, 0), n_images=20), model)
    after = det.anchors * det.stride.view(-1, 1, 1)
    assert after.shape == (4, 3, 2) and not torch.allclose(after, before)
    area = after.prod(-1).view(-1)
    assert torch.equal(area.argsort(), torch.arange(12))  # anchor order follows stride order


def test_val_on_a_p6_checkpoint(tmp_path):
    import val

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), shapes_image(128, 160, seed=i))
        (root / "labels" / f"{i}.txt").write_text(f"{i % 3} 0.5 0.5 0.3 0.4\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images\nval: images\nnames: {list(NAMES.values())}\n")
    weights = save_v7_checkpoint(build("yolov5n6.yaml").eval(), tmp_path / "n6.pt")
    results, maps, _ = val.run(str(root / "data.yaml"), weights=str(weights), imgsz=128, batch_size=2, device="cpu",
                               workers=0, plots=False, project=tmp_path / "val")
    assert len(results) == 7 and maps.shape == (3,) and all(0.0 <= x <= 1.0 for x in results[:4])


# v7.0-format checkpoints of the new blocks load with the safe loader ---------------------------------------------


@pytest.mark.parametrize("cfg,block", [("yolov5s-ghost.yaml", GhostConv), ("yolov5s-transformer.yaml", C3TR),
                                       ("yolov5n6.yaml", Detect)])
def test_v7_checkpoint_loads_safely_and_runs(cfg, block, tmp_path):
    model = build(cfg, (0.33, 0.25)).eval()
    randomize_bn(model)
    weights = save_v7_checkpoint(model, tmp_path / "v7.pt")
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(weights))
    expected_common = {"models.common.GhostConv", "models.common.C3Ghost", "models.common.GhostBottleneck"} \
        if block is GhostConv else {"models.common.C3TR", "models.common.TransformerBlock",
                                    "models.common.TransformerLayer"} if block is C3TR else set()
    assert expected_common <= set(names)  # pickled under the names v7.0 writes
    assert torch_safe_load(weights)["epoch"] == -1
    loaded = attempt_load(str(weights), fuse=False)
    assert any(isinstance(m, block) for m in loaded.modules())
    im = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(loaded(im)[0], model.half().float()(im)[0], atol=1e-4, rtol=1e-4)


def test_safe_loader_still_refuses_other_globals(tmp_path):
    import pickle

    model = build("yolov5s-ghost.yaml", (0.33, 0.25))
    model.evil = print  # a callable global that is not a model or metadata type
    weights = save_v7_checkpoint(model, tmp_path / "bad.pt")
    with pytest.raises(pickle.UnpicklingError, match=r"global '(builtins\.)?print'"):
        torch_safe_load(weights)


# hub entry points --------------------------------------------------------------------------------------------------


@pytest.fixture
def _restore_logger():
    """hubconf configures the project logger (set_logging); put it back so later tests' caplog still sees it."""
    logger = logging.getLogger("yolov5")
    state = logger.level, logger.propagate, list(logger.handlers)
    yield
    logger.setLevel(state[0])
    logger.propagate = state[1]
    logger.handlers[:] = state[2]


@pytest.mark.parametrize("name,nl", [("yolov5n6", 4), ("yolov5n6_csppc", 4), ("yolov5m_csppc", 3),
                                     pytest.param("yolov5s6", 4, marks=pytest.mark.slow)])
def test_hub_entry_points_build_without_download(name, nl, _restore_logger):
    model = torch.hub.load(str(ROOT), name, pretrained=False, classes=2, autoshape=False, source="local",
                           _verbose=False)
    det = model.model[-1]
    assert det.nc == 2 and det.nl == nl
    assert ("csppc" in name) == any(type(m).__name__ == "CSPPC" for m in model.modules())


def test_every_hub_config_has_an_entry_point():
    import hubconf

    for cfg in ["yolov5n6", "yolov5s6", "yolov5m6", "yolov5l6", "yolov5x6"] + \
            [p.stem.replace("-", "_") for p in (ROOT / "models" / "hub").glob("*-csppc.yaml")]:
        assert callable(getattr(hubconf, cfg, None)), cfg


# export: every block to every supported format; a block a format cannot take is named ----------------------------

ALL_BLOCKS = {"nc": 3, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": [[10, 13, 16, 30, 33, 23]] * 3,
              "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "MixConv2d", [32, [1, 3, 5], 2]],
                           [-1, 1, "C3x", [32]], [-1, 1, "CrossConv", [64, 3, 2]], [-1, 1, "C3SPP", [64, [5, 9]]],
                           [-1, 1, "Contract", [2]], [-1, 1, "Expand", [2]], [-1, 1, "DWConvTranspose2d", [64, 2, 2]],
                           [-1, 1, "Conv", [64, 3, 2]], [-1, 1, "GhostBottleneck", [64, 3, 2]],
                           [-1, 1, "GhostConv", [64, 3, 2]], [-1, 1, "C3Ghost", [64]], [-1, 1, "C3TR", [64]]],
              "head": [[[8, 9, 12], 1, "Detect", ["nc", "anchors"]]]}


@pytest.mark.parametrize("cfg", ["all-blocks", pytest.param("yolov5s-transformer.yaml", marks=pytest.mark.slow)])
def test_every_block_exports_to_every_supported_format(cfg, tmp_path, caplog):
    torch.manual_seed(0)
    model = (DetectionModel(deepcopy(ALL_BLOCKS)) if cfg == "all-blocks" else build(cfg, (0.33, 0.25))).eval()
    weights = save_v7_checkpoint(randomize_bn(model), tmp_path / "m.pt")
    with caplog.at_level("WARNING", logger="yolov5"):
        written = export.run(weights=str(weights), include=("torchscript", "onnx", "openvino"), imgsz=(64, 64))
    assert [Path(w).name for w in written] == ["m.torchscript", "m.onnx", "m_openvino_model"]
    # no failure, no output differing from PyTorch, and OpenCV DNN runs the ONNX file
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    im = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = attempt_load(str(weights))(im)[0]
    for w in written:
        with torch.no_grad():
            y = DetectMultiBackend(w)(im)
        y = y[0] if isinstance(y, (list, tuple)) else y
        assert float((y - ref).abs().max()) < 1e-3 * float(ref.abs().max()), w


def test_export_names_the_block_a_format_cannot_take(tmp_path, caplog):
    model = build("yolov3-tiny.yaml", (1.0, 0.25)).eval()
    pool = torch.nn.FractionalMaxPool2d(2, output_ratio=0.5)  # same output size as the 2x2 max-pool it replaces
    pool.i, pool.f, pool.type = 1, -1, "torch.nn.FractionalMaxPool2d"
    model.model[1] = pool
    weights = save_v7_checkpoint(model, tmp_path / "frac.pt")
    with caplog.at_level("INFO", logger="yolov5"):
        written = export.run(weights=str(weights), include=("torchscript", "onnx", "openvino"), imgsz=(64, 64))
    assert [Path(w).name for w in written] == ["frac.torchscript"]  # TorchScript takes it; the others go on failing
    for fmt in ("ONNX", "OpenVINO"):
        assert f"{fmt} export of {weights} failed: layer 1 (torch.nn.FractionalMaxPool2d): " in caplog.text
        assert f"this block cannot be exported to {fmt}" in caplog.text
    assert "fractional_max_pool2d" in caplog.text
    with caplog.at_level("INFO", logger="yolov5"):
        assert export.run(weights=str(weights), include=("onnx",), imgsz=(64, 64)) == []
    assert "Nothing exported: ONNX failed" in caplog.text


ZOO_CFGS = sorted(p.name for p in (ROOT / "models" / "hub").glob("*.yaml") if p.name != "anchors.yaml")
QUICK_CFGS = {"yolov5n6.yaml", "yolov5s-ghost.yaml", "yolov5s-transformer.yaml", "yolov3-tiny.yaml",
              "yolov5-p34.yaml", "yolov5n6-csppc.yaml"}  # the rest of the hub is marked slow


@pytest.mark.parametrize("cfg", [c if c in QUICK_CFGS else pytest.param(c, marks=pytest.mark.slow) for c in ZOO_CFGS])
def test_every_config_fuses_and_exports(cfg, tmp_path):
    """Each hub config, at depth 0.33 / width 0.125 (same layers, fewer channels): fused = unfused, ONNX = PyTorch."""
    model = build(cfg, (0.33, 0.125)).eval()
    weights = save_v7_checkpoint(randomize_bn(model), tmp_path / "m.pt")
    imgsz = max(64, int(model.stride.max()))
    im = torch.rand(1, 3, imgsz, imgsz)
    with torch.no_grad():
        ref = model.half().float()(im)[0]  # the weights as the FP16 checkpoint holds them
        fused = attempt_load(str(weights), fuse=True)
        got = fused(im)[0]
    assert float((got - ref).abs().max()) < 1e-3 * float(ref.abs().max())
    onnx_file = export.run(weights=str(weights), include=("onnx",), imgsz=(imgsz, imgsz))[0]
    y = DetectMultiBackend(onnx_file)(im)
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert float((y - got).abs().max()) < 1e-3 * float(got.abs().max())
