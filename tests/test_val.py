"""End-to-end tests for val.py on a tiny hand-made YOLO-format dataset.

An "oracle" model that finds the pure-colour rectangles in its input shows the whole path (letterbox, rect batches,
NMS, scaling back to original pixels, matching, AP) reproduces exactly known metrics; a real (untrained) checkpoint
exercises loading, the CLI, speed and study tasks and the files written.
"""

import json
import logging
from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

import val
from utils.callbacks import Callbacks
from utils.dataloaders import create_dataloader

NAMES = {0: "red", 1: "green", 2: "blue"}
COLORS_BGR = {0: (0, 0, 255), 1: (0, 255, 0), 2: (255, 0, 0)}
# (height, width) and per-class pixel rectangles [x1, y1, x2, y2) of each image
IMAGES = {
    "000001": ((96, 128), {0: (10, 12, 50, 60), 1: (70, 20, 120, 50)}),
    "000002": ((128, 96), {0: (5, 70, 45, 120), 2: (50, 10, 90, 40)}),
    "000003": ((80, 120), {1: (20, 10, 60, 70), 2: (70, 30, 110, 75)}),
    "000004": ((100, 100), {0: (30, 30, 70, 70)}),
    "000005": ((90, 110), {0: (60, 5, 105, 40), 1: (5, 45, 50, 85)}),
}



def make_dataset(root: Path, images: dict = IMAGES, extra_labels: dict | None = None) -> Path:
    """Write images/val/*.png, labels/val/*.txt and data.yaml; returns the YAML path."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for stem, ((h, w), boxes) in images.items():
        im = np.zeros((h, w, 3), dtype=np.uint8)
        lines = []
        for c, (x1, y1, x2, y2) in boxes.items():
            im[y1:y2, x1:x2] = COLORS_BGR[c]
            lines.append(f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        lines += (extra_labels or {}).get(stem, [])
        cv2.imwrite(str(root / "images" / "val" / f"{stem}.png"), im)
        (root / "labels" / "val" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    data = {"path": str(root), "train": "images/val", "val": "images/val", "names": NAMES}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


class Oracle(nn.Module):
    """Finds the red and green rectangles (not blue) exactly and returns them as YOLO eval output (pred, maps)."""

    def __init__(self, classes=(0, 1)):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))  # gives val.run a device and a dtype
        self.classes = classes
        self.names = NAMES
        self.stride = torch.tensor([8.0, 16.0, 32.0])

    def forward(self, im, augment=False):
        b = im.shape[0]
        pred = torch.zeros(b, 8, 5 + len(NAMES))
        for i in range(b):
            for k, c in enumerate(self.classes):
                mask = (im[i, c] > 0.5) & (im[i].sum(0) - im[i, c] < 0.3)  # input is RGB: class c is channel c
                ys, xs = torch.where(mask)
                if len(xs):
                    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                    pred[i, k, :4] = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)).float()
                    pred[i, k, 4] = 0.9
                    pred[i, k, 5 + c] = 1.0
                    # a worse duplicate on the same object: NMS keeps one, so AP stays exact
                    pred[i, 3 + k] = pred[i, k]
                    pred[i, 3 + k, 2] *= 0.9
                    pred[i, 3 + k, 4] = 0.5
        return pred, [torch.zeros(1)]


def _loader(data_yaml: Path, batch_size: int = 2, imgsz: int = 128):
    data = val.check_dataset(data_yaml)
    return data, create_dataloader(data["val"], imgsz, batch_size, 32, pad=0.5, rect=True, workers=0, nc=3)[0]


def test_oracle_gives_exact_metrics_plots_and_callbacks(tmp_path):
    data, loader = _loader(make_dataset(tmp_path / "ds"))
    events = {"on_val_start": 0, "on_val_image_end": 0, "on_val_batch_end": 0, "on_val_end": 0}
    callbacks = Callbacks()
    for hook in events:
        callbacks.register_action(hook, "count", lambda *a, h=hook, **k: events.__setitem__(h, events[h] + 1))
    save_dir = tmp_path / "run"
    save_dir.mkdir()

    def compute_loss(train_out, targets):
        return torch.tensor(6.0), torch.tensor([1.0, 2.0, 3.0])

    oracle = Oracle().half()  # as an FP16 EMA from AMP training would arrive
    results, maps, times = val.run(data, batch_size=2, imgsz=128, model=oracle, dataloader=loader,
                                   save_dir=save_dir, callbacks=callbacks, compute_loss=compute_loss)
    # handed back in FP32 as ordinary tensors (not inference-mode ones), so training can continue with it
    assert oracle.w.dtype == torch.float32 and not oracle.w.is_inference()
    (oracle.w * 2).sum().backward()
    p, r, map50, map50_95, *losses = results
    # red and green found exactly: AP 0.995 (YOLOv5's ceiling) at every IoU; blue never found: AP 0
    assert map50 == pytest.approx(2 * 0.995 / 3, abs=1e-6)
    assert map50_95 == pytest.approx(2 * 0.995 / 3, abs=1e-6)
    assert maps.tolist() == pytest.approx([0.995, 0.995, 0.0], abs=1e-6)
    assert p == pytest.approx(2 / 3, abs=0.01) and r == pytest.approx(2 / 3, abs=0.01)
    assert losses == pytest.approx([1.0, 2.0, 3.0])  # mean over the 3 batches
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert events == {"on_val_start": 1, "on_val_image_end": 5, "on_val_batch_end": 3, "on_val_end": 1}
    for f in ("confusion_matrix.png", "PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png",
              "val_batch0_labels.jpg", "val_batch0_pred.jpg", "val_batch2_labels.jpg", "val_batch2_pred.jpg"):
        assert (save_dir / f).is_file(), f


def test_save_json_and_cocoeval(tmp_path, caplog):
    pytest.importorskip("pycocotools")
    ds = tmp_path / "ds"
    data, loader = _loader(make_dataset(ds))
    # COCO annotation file for the same boxes; category ids equal class indices (not the COCO-80 mapping)
    anns, images = [], []
    for stem, ((h, w), boxes) in IMAGES.items():
        images.append({"id": int(stem), "width": w, "height": h, "file_name": f"{stem}.png"})
        for c, (x1, y1, x2, y2) in boxes.items():
            anns.append({"id": len(anns) + 1, "image_id": int(stem), "category_id": c, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    (ds / "instances_val.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": c, "name": n} for c, n in NAMES.items()]}))
    data["anno_json"] = "instances_val.json"  # relative to the dataset path
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    with caplog.at_level(logging.INFO, logger="yolov5"):
        (_, _, map50, map50_95, *_), _, _ = val.run(data, imgsz=128, model=Oracle(), dataloader=loader,
                                                    save_dir=save_dir, save_json=True, plots=False)
    dets = json.loads((save_dir / "_predictions.json").read_text())
    assert {d["image_id"] for d in dets} == {1, 2, 3, 4, 5}  # numeric stems become integer ids
    red1 = [d for d in dets if d["image_id"] == 1 and d["category_id"] == 0]
    assert red1[0]["bbox"] == pytest.approx([10, 12, 40, 48]) and red1[0]["score"] == pytest.approx(0.9)
    # COCOeval's figures replace ours: 2 of 3 classes perfect -> 2/3 (ours would say 0.995 * 2/3)
    assert map50_95 == pytest.approx(2 / 3, abs=1e-4) and map50 == pytest.approx(2 / 3, abs=1e-4)

    del data["anno_json"]
    with caplog.at_level(logging.INFO, logger="yolov5"):
        (_, _, _, map50_95, *_), _, _ = val.run(data, imgsz=128, model=Oracle(), dataloader=loader,
                                                save_dir=save_dir, save_json=True, plots=False)
    assert "COCOeval skipped: annotation file" in caplog.text
    assert map50_95 == pytest.approx(2 * 0.995 / 3, abs=1e-6)


def _checkpoint(path: Path, nc: int = 3) -> Path:
    from models.yolo import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=nc)
    model.names = {i: NAMES.get(i, str(i)) for i in range(nc)}
    ckpt = {"epoch": -1, "best_fitness": None, "model": deepcopy(model).half(), "ema": None, "updates": None,
            "optimizer": None, "opt": None, "date": "2024-01-01T00:00:00"}
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("w") / "tiny.pt")


def test_checkpoint_val_outputs(tmp_path, weights, caplog, capsys, monkeypatch):
    monkeypatch.setattr(val, "set_logging", lambda *a, **k: None)  # keep records flowing to caplog
    data_yaml = make_dataset(tmp_path / "ds")
    opt = val.parse_opt(["--data", str(data_yaml), "--weights", str(weights), "--imgsz", "64", "--batch-size", "2",
                         "--device", "cpu", "--project", str(tmp_path / "runs"), "--save-txt", "--save-conf",
                         "--verbose", "--workers", "0"])
    with caplog.at_level(logging.INFO, logger="yolov5"):
        results, maps, times = val.main(opt)
    assert len(results) == 7 and maps.shape == (3,) and len(times) == 3
    assert all(0.0 <= x <= 1.0 for x in results[:4])
    header = capsys.readouterr().err  # the table header is the progress bar's description, as in YOLOv5
    assert all(w in header for w in ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"))
    assert any(line.split()[:3] == ["all", "5", "9"] for line in caplog.messages)  # images, instances
    assert "Speed:" in caplog.text and "ms NMS per image at shape (2, 3, 64, 64)" in caplog.text
    run_dir = tmp_path / "runs" / "exp"
    txts = sorted(run_dir.glob("labels/*.txt"))
    assert txts, "untrained model at conf 0.001 still predicts boxes"
    rows = np.loadtxt(txts[0], ndmin=2)
    assert rows.shape[1] == 6 and (rows[:, 1:5] >= 0).all() and (rows[:, 1:5] <= 1).all()  # cls xywhn conf
    assert (run_dir / "confusion_matrix.png").is_file() and (run_dir / "PR_curve.png").is_file()
    # a second run never overwrites the first
    val.run(str(data_yaml), weights=str(weights), imgsz=64, batch_size=4, device="cpu",
            project=tmp_path / "runs", workers=0, plots=False)
    assert (tmp_path / "runs" / "exp2").is_dir()


def test_run_from_python_logs_results_and_no_fp16_warning_on_cpu(tmp_path, weights, caplog):
    # no set_logging call and no caplog level: importing the package leaves the project logger at INFO
    data_yaml = make_dataset(tmp_path / "ds")
    # None is run()'s default (v7.0's True: FP16 on CUDA); on CPU it must quietly mean FP32. An explicit half=True
    # on CPU means bf16 (tests/test_bf16.py)
    for half in (None, False):
        caplog.clear()
        results, _, _ = val.run(str(data_yaml), weights=str(weights), imgsz=64, batch_size=2, device="cpu",
                                project=tmp_path / "runs", workers=0, plots=False, half=half)
        assert not [r for r in caplog.records if "FP16" in r.getMessage() or "half" in r.getMessage().lower()]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any(m.split()[:3] == ["all", "5", "9"] for m in caplog.messages)
        assert "Speed: " in caplog.text and "Results saved to" in caplog.text
        if half is None:
            first = results
    assert first == results  # FP32 both times: the same figures


def test_wrong_class_count_and_bad_class_labels(tmp_path, weights, caplog):
    data_yaml = make_dataset(tmp_path / "ds", extra_labels={"000004": ["7 0.5 0.5 0.2 0.2"]})
    with pytest.raises(ValueError, match="2 classes"):
        val.run(str(data_yaml), weights=str(_checkpoint(tmp_path / "nc2.pt", nc=2)), imgsz=64, device="cpu",
                project=tmp_path / "runs", workers=0, plots=False)
    with caplog.at_level(logging.INFO, logger="yolov5"):
        val.run(str(data_yaml), weights=str(weights), imgsz=64, device="cpu", project=tmp_path / "runs",
                workers=0, plots=False)
    assert "000004.txt: class [7] exceeds nc=3" in caplog.text and "000004.png" in caplog.text  # file and class
    # only the bad line is dropped: all 5 images and their 9 good labels are evaluated
    assert any(line.split()[:3] == ["all", "5", "9"] for line in caplog.messages)


def test_speed_task(tmp_path, weights, caplog, monkeypatch):
    monkeypatch.setattr(val, "set_logging", lambda *a, **k: None)
    data_yaml = make_dataset(tmp_path / "ds")
    opt = val.parse_opt(["--task", "speed", "--data", str(data_yaml), "--weights", str(weights), "--imgsz", "64",
                         "--batch-size", "4", "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "runs")])
    with caplog.at_level(logging.INFO, logger="yolov5"):
        (results, maps, times), = val.main(opt)
    assert "per image at shape (4, 3, 64, 64)" in caplog.text and len(times) == 3
    assert not (tmp_path / "runs" / "exp" / "confusion_matrix.png").exists()  # speed runs make no plots


def test_study_task(tmp_path, weights):
    data_yaml = make_dataset(tmp_path / "ds")
    opt = val.parse_opt(["--task", "study", "--data", str(data_yaml), "--weights", str(weights), "--device", "cpu",
                         "--batch-size", "4", "--workers", "0", "--project", str(tmp_path / "runs")])
    f = val.study(opt, sizes=(32, 64))
    rows = np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)
    assert rows.shape == (2, 11) and rows[:, 0].tolist() == [32, 64]
    assert f.with_suffix(".png").is_file()


def test_coco80_to_coco91_class():
    ids = val.coco80_to_coco91_class()
    assert len(ids) == len(set(ids)) == 80
    assert ids[0] == 1 and ids[-1] == 90 and ids[11] == 13  # 'stop sign' (class 11) is COCO category 13
