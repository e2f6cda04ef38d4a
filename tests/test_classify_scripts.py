"""classify/train.py, val.py and predict.py end to end on a tiny generated ImageFolder; bad --model names."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from classify import predict as cls_predict
from classify import train as cls_train
from classify import val as cls_val
from models.experimental import attempt_load
from models.yolo import ClassificationModel
from utils.classify_data import generate_shapes_cls

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of a yolov5n-csppc classifier on 8+4 shapes-cls crops per class at 64 px: (run folder, data)."""
    tmp = tmp_path_factory.mktemp("cls")
    data = generate_shapes_cls(tmp / "shapes-cls", train=8, val=4, imgsz=64, seed=3)
    opt = cls_train.run(model="yolov5n-csppc.yaml", data=str(data), imgsz=64, epochs=1, batch_size=16, workers=0,
                        project=str(tmp / "runs"), name="exp", pretrained=False)
    return Path(opt.save_dir), data


@pytest.mark.slow
def test_train_writes_checkpoints_and_results(trained):
    save_dir, _ = trained
    for f in ("weights/best.pt", "weights/last.pt", "results.csv", "opt.yaml"):
        assert (save_dir / f).is_file(), f
    lines = (save_dir / "results.csv").read_text().splitlines()
    assert [x.strip() for x in lines[0].split(",")][:5] == ["epoch", "train/loss", "val/loss",
                                                            "metrics/accuracy_top1", "metrics/accuracy_top5"]
    assert len(lines) == 2
    top1 = float(lines[1].split(",")[3])
    assert 0.0 <= top1 <= 1.0
    model = attempt_load(save_dir / "weights/best.pt", fuse=False)
    assert isinstance(model, ClassificationModel)
    assert model.names == {0: "circle", 1: "cross", 2: "hexagon", 3: "square", 4: "star", 5: "triangle"}
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 6)


@pytest.mark.slow
def test_val_prints_v70_table(trained, caplog, tmp_path):
    save_dir, data = trained
    with caplog.at_level(logging.INFO, logger="yolov5"):
        top1, top5, _ = cls_val.run(data=str(data), weights=save_dir / "weights/best.pt", imgsz=64, batch_size=8,
                                    workers=0, project=str(tmp_path), name="val")
    lines = [r.getMessage() for r in caplog.records]
    header = next(x for x in lines if "top1_acc" in x)
    assert header.split() == ["Class", "Images", "top1_acc", "top5_acc"]
    all_row = next(x for x in lines if x.split()[:1] == ["all"]).split()
    assert all_row[1] == "24" and float(all_row[2]) == pytest.approx(top1, abs=1e-3)
    star = next(x for x in lines if x.split()[:1] == ["star"]).split()
    assert star[1] == "4"
    assert 0 <= top1 <= top5 <= 1


@pytest.mark.slow
def test_predict_writes_images_and_top5_txt(trained, tmp_path):
    save_dir, data = trained
    src = data / "val" / "circle"
    out = cls_predict.run(weights=save_dir / "weights/best.pt", source=src, imgsz=(64,), save_txt=True,
                          project=str(tmp_path), name="pred")
    images = sorted(out.glob("*.jpg"))
    assert len(images) == 4
    txt = (out / "labels" / f"{images[0].stem}.txt").read_text().splitlines()
    assert len(txt) == 5
    probs = [float(x.split()[0]) for x in txt]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    assert {x.split()[1] for x in txt} <= {"circle", "cross", "hexagon", "square", "star", "triangle"}


def test_bad_model_name_fails_clearly():
    with pytest.raises(ValueError, match="'resnet-nope': not a .pt file, a model YAML or a torchvision"):
        cls_train.build_model("resnet-nope", nc=3)
    with pytest.raises(FileNotFoundError, match="missing.pt: weights file not found"):
        cls_train.build_model("missing.pt", nc=3)


def test_build_model_variants(tmp_path):
    from models.yolo import DetectionModel

    det = DetectionModel("yolov5n-csppc.yaml", nc=3)
    torch.save({"model": det.half(), "ema": None, "epoch": -1}, tmp_path / "det.pt")
    cut = cls_train.build_model(str(tmp_path / "det.pt"), nc=2)  # a detection checkpoint is cut at 10
    assert isinstance(cut, ClassificationModel) and cut.model[-1].linear.out_features == 2
    assert torch.equal(cut.model[0].conv.weight, det.model[0].conv.weight.float())  # its backbone weights kept
    m = cls_train.build_model("yolov5n.yaml", nc=4, cutoff=8, dropout=0.2)
    assert isinstance(m, ClassificationModel) and len(m.model) == 8 and m.model[-1].drop.p == 0.2
    tv = cls_train.build_model("resnet18", nc=5, pretrained=False)
    assert tv.fc.out_features == 5
    assert tv.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 5)


def test_cli_rejects_bad_model(tmp_path):
    """The script itself exits non-zero with the reason, before any run folder is filled."""
    r = subprocess.run([sys.executable, str(ROOT / "classify/train.py"), "--model", "nope-net", "--data",
                        str(tmp_path / "none"), "--project", str(tmp_path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode != 0
    assert "--model 'nope-net': not a .pt file, a model YAML or a torchvision classifier name" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(tmp_path):
    """A copy of the run folder taken after epoch 0 (as a crash leaves it) resumes at epoch 1 with its optimizer."""
    import shutil

    from utils.callbacks import Callbacks

    data = generate_shapes_cls(tmp_path / "shapes-cls", train=4, val=2, imgsz=32, seed=4)
    opt = cls_train.parse_opt(known=True, argv=[])
    opt.model, opt.data, opt.imgsz, opt.epochs, opt.batch_size, opt.workers = "yolov5n.yaml", str(data), 32, 2, 8, 0
    opt.project, opt.name = str(tmp_path / "runs"), "exp"
    callbacks = Callbacks()
    crashed = tmp_path / "crashed" / "exp"

    def snapshot(last, epoch, final_epoch, best_fitness, fi):
        if epoch == 0:
            shutil.copytree(Path(last).parents[1], crashed)

    callbacks.register_action("on_model_save", "snapshot", snapshot)
    cls_train.main(opt, callbacks)
    assert torch.load(crashed / "weights/last.pt", weights_only=False)["epoch"] == 0
    resumed = cls_train.parse_opt(known=True, argv=[])
    resumed.resume, resumed.project = str(crashed / "weights/last.pt"), str(tmp_path / "crashed")
    cls_train.main(resumed)
    epochs = [int(float(x.split(",")[0])) for x in (crashed / "results.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1]
    assert torch.load(crashed / "weights/last.pt", weights_only=False)["epoch"] == -1  # finished and stripped


@pytest.mark.slow
def test_torchvision_model_trains_offline_and_loads_safely(tmp_path, caplog):
    """--model resnet18: no weights in the (empty) hub cache, so a warning and no download; best.pt loads safely."""
    from models.backends import DetectMultiBackend

    data = generate_shapes_cls(tmp_path / "shapes-cls", train=2, val=1, imgsz=32, seed=6)
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with caplog.at_level(logging.WARNING):
            opt = cls_train.run(model="resnet18", data=str(data), imgsz=32, epochs=1, batch_size=4, workers=0,
                                project=str(tmp_path / "runs"))
    finally:
        torch.hub.set_dir(hub_dir)
    assert "resnet18: pretrained weights not found" in caplog.text and "nothing is downloaded" in caplog.text
    dmb = DetectMultiBackend(Path(opt.save_dir) / "weights" / "best.pt")
    assert type(dmb.model).__name__ == "ResNet" and dmb.names[5] == "triangle"
    assert dmb(torch.rand(1, 3, 32, 32)).shape == (1, 6)
