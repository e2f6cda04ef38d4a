"""Checkpoint loading: upstream YOLOv5 v7 round trip, allowlisted metadata, refusal of unsafe pickles."""

import argparse
import os
import pickle
import struct
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pytest
import torch

from models.experimental import Ensemble, attempt_load, torch_safe_load
from models.yolo import DetectionModel
from tests.conftest import FIXTURES, randomize_bn

UPSTREAM = FIXTURES / "upstream_v7_yolov5n_nc3.pt"


def _upstream_io():
    x = torch.from_numpy(np.load(FIXTURES / "upstream_v7_input.npy"))
    return x, np.load(FIXTURES / "upstream_v7_output.npy")


@pytest.mark.parametrize("fuse", [False, True])
def test_upstream_checkpoint_round_trip(fuse):
    x, expected = _upstream_io()
    model = attempt_load(UPSTREAM, fuse=fuse)
    assert model.names == {0: "circle", 1: "square", 2: "triangle"}
    assert model.stride.tolist() == [8.0, 16.0, 32.0] and not model.training
    with torch.no_grad():
        y = model(x)[0].numpy()
    assert y.shape == expected.shape == (1, 5040, 8)
    diff = np.abs(y - expected).max()
    assert diff <= 1e-3 * np.abs(expected).max(), f"max abs diff {diff} vs output scale {np.abs(expected).max()}"


def _save(tmp_path, obj, name="ckpt.pt"):
    f = tmp_path / name
    torch.save(obj, f)
    return f


class _Payload:
    """Unpickling this runs os.system: the loader must refuse it before anything runs."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    f = _save(tmp_path, {"model": _Payload(marker), "epoch": -1})
    with pytest.raises(pickle.UnpicklingError, match=r"'(posix|os|nt)\.system'"):
        torch_safe_load(f)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        attempt_load(f)
    assert not marker.exists()


def test_unknown_class_refused(tmp_path):
    f = _save(tmp_path, {"model": torch.nn.Module(), "extra": _Payload(tmp_path / "x")})
    with pytest.raises(pickle.UnpicklingError, match="system"):
        torch_safe_load(f)


def test_project_checkpoint_with_metadata_loads(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(DetectionModel("yolov5n-csppc.yaml", nc=2)).eval()
    model.names = {0: "a", 1: "b"}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y0 = model(x)[0]
    ckpt = {
        "epoch": 3, "best_fitness": np.float64(0.5), "model": model.half(), "ema": None, "updates": 10,
        "optimizer": None, "date": "2026-11-28",
        "opt": argparse.Namespace(save_dir=Path("runs/train/exp"), hyp=PurePosixPath("data/hyps/x.yaml")),
        "win": PureWindowsPath("C:/data/x.yaml"), "arr": np.arange(4, dtype=np.int64),
        "dtype": np.dtype("float32"), "scalar": np.float32(1.5), "ints": {1, 2},
    }
    f = _save(tmp_path, ckpt)
    loaded = torch_safe_load(f)
    assert loaded["opt"].save_dir == Path("runs/train/exp") and loaded["best_fitness"] == 0.5
    assert loaded["arr"].tolist() == [0, 1, 2, 3] and loaded["dtype"] == np.float32
    m = attempt_load(f, fuse=False)
    with torch.no_grad():
        y1 = m(x)[0]
    assert (y1 - y0).abs().max() <= 2e-3 * y0.abs().max()  # FP16 storage


def test_older_yolov5_blocks_load(tmp_path):
    d = DetectionModel("yolov5n.yaml", nc=1).yaml
    d["backbone"][0] = [-1, 1, "Focus", [64, 3]]
    d["backbone"][2] = [-1, 3, "BottleneckCSP", [128]]
    d["backbone"][9] = [-1, 1, "SPP", [1024, [5, 9, 13]]]
    model = DetectionModel(d)
    f = _save(tmp_path, {"model": model.half(), "epoch": -1})
    loaded = attempt_load(f)
    with torch.no_grad():
        assert loaded(torch.rand(1, 3, 64, 64))[0].shape == (1, 252, 6)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        torch_safe_load(tmp_path / "missing.pt")
    f = _save(tmp_path, {"weights": torch.zeros(2)})
    with pytest.raises(ValueError, match="not a YOLOv5 checkpoint"):
        torch_safe_load(f)


def test_ensemble(tmp_path):
    x, _ = _upstream_io()
    ens = attempt_load([UPSTREAM, UPSTREAM])
    assert isinstance(ens, Ensemble) and ens.names[0] == "circle" and ens.stride.max() == 32
    with torch.no_grad():
        y, _ = ens(x)
    assert y.shape == (1, 2 * 5040, 8)


def _torch_zip_with_pickle(path: Path, payload: bytes) -> Path:
    """A torch zip file (the records of a real torch.save) whose data.pkl is the given pickle bytes."""
    src = path.with_suffix(".src")
    torch.save({"epoch": 0}, src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, payload if info.filename.endswith("/data.pkl") else zin.read(info))
    return path


def _call_pickle(module: str, name: str, *args: str) -> bytes:
    """Protocol-2 pickle bytes that call module.name(*args) when unpickled: GLOBAL, the string args, TUPLE, REDUCE."""
    out = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"("
    for a in args:
        out += b"X" + struct.pack("<I", len(a.encode())) + a.encode()
    return out + b"tR."


def test_crafted_pickle_in_a_torch_zip_is_refused_by_name(tmp_path):
    marker = tmp_path / "opened"
    f = _torch_zip_with_pickle(tmp_path / "evil.pt", _call_pickle("builtins", "open", str(marker), "w"))
    torch.load(f, weights_only=False).close()  # the file is a real exploit: plain unpickling runs open()
    assert marker.exists()
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pt: refused to load: .* global 'builtins\.open'"):
        torch_safe_load(f)
    with pytest.raises(pickle.UnpicklingError, match="nothing was run"):
        attempt_load(f)
    touched = tmp_path / "pwned"
    f = _torch_zip_with_pickle(tmp_path / "evil2.pt", _call_pickle("os", "system", f"touch {touched}"))
    with pytest.raises(pickle.UnpicklingError, match=r"evil2\.pt: refused to load: .* global 'os\.system'"):
        attempt_load(f)
    assert not marker.exists() and not touched.exists()


def _unreadable_match(name: str, what: str) -> str:
    return rf"{name}: cannot load: {what}.*not a refused pickle"


def test_random_bytes_are_not_a_torch_file(tmp_path):
    f = tmp_path / "random.pt"
    f.write_bytes(b"\x13" + np.random.default_rng(0).bytes(4095))  # garbage that starts like neither format
    for load in torch_safe_load, attempt_load:
        with pytest.raises(ValueError, match=_unreadable_match("random.pt", r"not a torch file: .* first bytes")):
            load(f)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=_unreadable_match("empty.pt", r"the file is empty \(0 bytes\)")):
        attempt_load(tmp_path / "empty.pt")
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"model": 1}, protocol=4))  # a pickle, but not torch's
    with pytest.raises(ValueError, match=_unreadable_match("plain.pt", "not a torch file")):
        torch_safe_load(tmp_path / "plain.pt")


def test_truncated_and_damaged_checkpoints(tmp_path):
    data = UPSTREAM.read_bytes()
    for n in (len(data) // 2, len(data) - 10, 100):
        f = tmp_path / f"cut{n}.pt"
        f.write_bytes(data[:n])
        what = rf"truncated or corrupt torch file: .*\({n} bytes"
        with pytest.raises(ValueError, match=_unreadable_match(f.name, what)):
            attempt_load(f)
    f = tmp_path / "damaged.pt"
    with zipfile.ZipFile(UPSTREAM) as z:
        pkl = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
        n_name, n_extra = struct.unpack("<HH", data[pkl.header_offset + 26 : pkl.header_offset + 30])
        start = pkl.header_offset + 30 + n_name + n_extra  # the entry's data, after its local header
    damaged = bytearray(data)
    damaged[start + 2 : start + 40] = b"\xff" * 38  # bytes flipped inside the pickle, the archive intact
    f.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=_unreadable_match("damaged.pt", r"corrupt torch file: .*data\.pkl fails")):
        torch_safe_load(f)
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:30])
    what = r"truncated or corrupt torch file in the legacy \(pre-zip\) format"
    with pytest.raises(ValueError, match=_unreadable_match("legacy.pt", what)):
        torch_safe_load(legacy)


def test_state_dict_instead_of_a_model(tmp_path):
    sd = DetectionModel("yolov5n.yaml", nc=2).state_dict()
    f = _save(tmp_path, {"model": sd, "epoch": 3}, "sd.pt")
    with pytest.raises(ValueError) as e:
        attempt_load(f)  # was AttributeError: 'collections.OrderedDict' object has no attribute 'to'
    msg = str(e.value)
    assert msg.startswith(f"{f}: not a YOLOv5 checkpoint: its 'model' entry is a state dict (OrderedDict of ")
    assert f"{len(sd)} tensors, the first 'model.0.conv.weight')" in msg
    assert "the model object itself" in msg and "load_state_dict(torch.load(" in msg and "['model'])" in msg
    # the hint works: a model built from the YAML takes the state dict
    DetectionModel("yolov5n.yaml", nc=2).load_state_dict(torch.load(f, weights_only=True)["model"])
    f = _save(tmp_path, sd, "bare.pt")
    with pytest.raises(ValueError, match=r"bare\.pt: not a YOLOv5 checkpoint: found a state dict .*load_state_dict"):
        torch_safe_load(f)
    f = _save(tmp_path, {"model": None, "ema": "x"}, "odd.pt")
    with pytest.raises(ValueError, match=r"odd\.pt: not a YOLOv5 checkpoint: its 'ema' entry is a str, not a model"):
        torch_safe_load(f)


@torch.no_grad()
def test_a_saved_fused_model_loads_and_runs_as_saved(tmp_path):
    """fuse() points each Conv's forward at forward_fuse, which pickles as getattr(conv, 'forward_fuse'): the safe
    loader allows that one bound method, so a fused model saved with torch.save loads and gives the same outputs."""
    torch.manual_seed(0)
    model = randomize_bn(DetectionModel("yolov5n-csppc.yaml", nc=3)).eval().fuse()
    torch.save({"model": model}, tmp_path / "fused.pt")
    loaded = attempt_load(tmp_path / "fused.pt", device=torch.device("cpu"), fuse=False)
    im = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded(im)[0], model(im)[0])
