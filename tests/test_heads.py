"""Heads answer what they can do: a subclass of Detect builds, fuses, loads and predicts wherever Detect does."""

from __future__ import annotations

import io
import pickletools
import zipfile
from copy import deepcopy

import pytest
import torch

from models.blocks import BLOCKS
from models.experimental import attempt_load
from models.fused import DetectFused
from models.heads import Classify, Detect, Proto, Segment, detect_parser
from models.yolo import DetectionModel, SegmentationModel
from tests.conftest import randomize_bn
from utils.general import check_yaml, yaml_load


class TaggedDetect(Detect):
    """A subclass that adds an attribute and keeps Detect's decode."""

    def __init__(self, nc=80, anchors=(), ch=(), inplace=True):
        super().__init__(nc, anchors, ch, inplace)
        self.tag = "tagged"


class SoftDetect(Detect):
    """A subclass with its own output activation: Detect's fused decode must not stand in for it."""

    def _activate(self, p: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.hardsigmoid(p)


@pytest.fixture
def head_model(monkeypatch):
    """Build yolov5n (nc=3, tiny width) with the named Detect subclass as its head, registered for this test only."""

    def build(cls: type) -> DetectionModel:
        monkeypatch.setitem(BLOCKS, cls.__name__, (cls, detect_parser))
        cfg = yaml_load(check_yaml("yolov5n.yaml"))
        cfg["head"][-1][2] = cls.__name__
        cfg["width_multiple"] = 0.125
        torch.manual_seed(0)
        return randomize_bn(DetectionModel(cfg, nc=3)).eval()

    return build


def test_capabilities_of_the_project_heads():
    """Only heads whose inference is Detect's own decode say so (Segment's mask coefficients stay linear)."""
    assert Detect.decodes_as_detect() and TaggedDetect.decodes_as_detect()
    assert not Segment.decodes_as_detect() and not SoftDetect.decodes_as_detect()
    assert not DetectFused.decodes_as_detect()  # already the fused form: never replaced again


def test_detect_subclass_builds_and_fuses_exactly(head_model):
    """Strides and biases are set up for the subclass, and fuse() swaps in the faster decode with equal output."""
    model = head_model(TaggedDetect)
    head = model.model[-1]
    assert head.stride.tolist() == [8.0, 16.0, 32.0] and model.stride is head.stride
    x = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        y = model(x)[0]
        fused = deepcopy(model).fuse()
        yf = fused(x)[0]
    assert isinstance(fused.model[-1], DetectFused) and fused.model[-1].tag == "tagged"
    torch.testing.assert_close(yf, y, rtol=1e-4, atol=1e-4)


def test_detect_subclass_with_its_own_decode_is_kept(head_model):
    """A head that overrides the decode keeps its class through fuse(), and its own output."""
    model = head_model(SoftDetect)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = model(x)[0]
        fused = deepcopy(model).fuse()
        yf = fused(x)[0]
    assert type(fused.model[-1]) is SoftDetect
    torch.testing.assert_close(yf, y, rtol=1e-4, atol=1e-4)


def test_detect_subclass_checkpoint_loads_with_stale_grids(head_model, tmp_path):
    """attempt_load resets a subclass head's pickled grids (here a pre-v6.2 anchor_grid buffer) as it does Detect's."""
    model = head_model(TaggedDetect)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        y = model(x)[0]
    head = model.model[-1]
    # grids of the right size but wrong values: only a reset rebuilds them
    head.grid = [torch.zeros(1, head.na, 64 // s, 96 // s, 2) for s in (8, 16, 32)]
    del head.anchor_grid
    head.register_buffer("anchor_grid", torch.zeros(head.nl, 1, 3, 1, 1, 2))
    torch.save({"model": model}, tmp_path / "tagged.pt")
    for fuse in (False, True):
        loaded = attempt_load(tmp_path / "tagged.pt", fuse=fuse)
        assert "anchor_grid" not in loaded.model[-1]._buffers
        with torch.no_grad():
            torch.testing.assert_close(loaded(x)[0], y, rtol=1e-4, atol=1e-4)


def _pickled_globals(obj) -> set[str]:
    """The 'module.name' globals torch.save writes for obj."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(buf) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    out, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            out.add(f"{strings[-2]}.{strings[-1]}")
        elif op.name == "GLOBAL":
            out.add(arg.replace(" ", "."))
    return out


def test_checkpoints_name_classes_as_v7():
    """Blocks and heads moved to models/blocks.py and models/heads.py are still pickled under v7.0's module names."""
    seg = SegmentationModel("yolov5n-seg.yaml", nc=2)
    names = {n for n in _pickled_globals(seg) if n.startswith("models.")}
    assert {"models.yolo.SegmentationModel", "models.yolo.Segment", "models.common.Proto", "models.common.Conv",
            "models.common.C3", "models.common.SPPF", "models.common.Concat"} <= names
    assert all(n.split(".")[1] in ("common", "yolo") for n in names), names
    assert Classify.__module__ == "models.common" and Proto.__module__ == "models.common"
