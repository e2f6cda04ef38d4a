"""segment/train.py, segment/val.py, segment/predict.py and segmentation exports, end to end on tiny data."""

import logging

import numpy as np
import pytest
import torch
import yaml

import export
from engine.tasks.segment_predict import write_polygons
from models.backends import DetectMultiBackend
from segment import predict, train, val
from utils.general import ROOT
from utils.shapes import NAMES, generate_shapes_dataset


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    root = generate_shapes_dataset(tmp_path_factory.mktemp("segdata") / "shapes-seg", train=8, val=4, imgsz=96,
                                   segments=True)
    f = root.parent / "seg.yaml"
    f.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                 "names": dict(enumerate(NAMES))}))
    return f


@pytest.fixture(scope="module")
def seg_run(seg_data, tmp_path_factory):
    project = tmp_path_factory.mktemp("segruns")
    opt = train.run(data=str(seg_data), cfg="yolov5n-seg-csppc.yaml", imgsz=64, epochs=1, batch_size=4, workers=0,
                    project=str(project), name="exp", noplots=False)
    return project / "exp", opt


def test_gt_masks_from_an_overlap_map():
    overlap = torch.tensor([[[0, 1, 1], [2, 2, 1], [0, 0, 2]]], dtype=torch.float32)
    masks = val.gt_masks_for(overlap, 2, overlap=True)
    assert masks.shape == (2, 3, 3) and masks[0].sum() == 3 and masks[1].sum() == 3 and masks[0, 0, 1] == 1


def test_mask_matching_uses_mask_iou():
    """Two detections with the same box: only the one whose mask covers the instance is correct."""
    det = torch.tensor([[0.0, 0, 8, 8, 0.9, 0], [0.0, 0, 8, 8, 0.8, 0]])
    labels = torch.tensor([[0.0, 0, 0, 8, 8]])
    gt = torch.zeros(1, 8, 8)
    gt[0, :4] = 1  # the top half
    pred = torch.zeros(2, 8, 8)
    pred[0, 4:] = 1  # the wrong half: mask IoU 0
    pred[1, :4] = 1  # exact
    correct = val.match_masks(det, labels, torch.tensor([0.5, 0.95]), pred, gt)
    assert correct.tolist() == [[False, False], [True, True]]


@pytest.mark.slow
def test_train_writes_a_segmentation_run(seg_run):
    save_dir, opt = seg_run
    assert (save_dir / "weights" / "best.pt").is_file() and (save_dir / "weights" / "last.pt").is_file()
    header = (save_dir / "results.csv").read_text().splitlines()[0]
    assert "train/seg_loss" in header and "metrics/mAP_0.5:0.95(M)" in header
    assert (save_dir / "results.png").is_file() and (save_dir / "val_batch0_pred.jpg").is_file()
    assert opt.mask_ratio == 4 and not opt.no_overlap


@pytest.mark.slow
def test_val_prints_box_and_mask_columns(seg_run, seg_data, tmp_path, caplog, capsys):
    save_dir, _ = seg_run
    with caplog.at_level(logging.INFO, logger="yolov5"):
        results, maps, times = val.run(data=str(seg_data), weights=str(save_dir / "weights" / "best.pt"), imgsz=64,
                                       batch_size=2, project=str(tmp_path), name="v", plots=False)
    text = caplog.text
    header = capsys.readouterr().err  # the column header is the progress bar's description, as in YOLOv5
    assert "Box(P" in header and "Mask(P" in header and "mAP50-95)" in header
    row = next(line for line in text.splitlines() if " all " in line).split()
    row = row[row.index("all"):]
    assert row[1] == "4" and len(row) == 11  # all, images, instances, 4 box and 4 mask figures
    assert len(results) == 12 and len(maps) == 6 and len(times) == 3
    assert all(0 <= x <= 1 for x in results[:8])


@pytest.mark.slow
def test_predict_draws_and_writes_polygons(seg_run, seg_data, tmp_path):
    save_dir, _ = seg_run
    out = predict.run(weights=str(save_dir / "weights" / "best.pt"), source=str(seg_data.parent / "shapes-seg" /
                      "images" / "val"), imgsz=(64,), conf_thres=0.001, max_det=3, save_txt=True,
                      project=str(tmp_path), name="p")
    assert len(list(out.glob("*.jpg"))) == 4
    for f in out.glob("labels/*.txt"):
        for line in f.read_text().splitlines():
            v = line.split()
            assert int(v[0]) in range(6) and len(v) >= 7 and len(v) % 2 == 1  # class + (x, y) pairs
            assert all(0 <= float(x) <= 1 for x in v[1:])


def test_write_polygons_outlines_each_mask(tmp_path):
    masks = torch.zeros(2, 20, 40)
    masks[0, 5:15, 10:20] = 1
    det = torch.tensor([[10.0, 5, 20, 15, 0.9, 2], [0, 0, 1, 1, 0.5, 1]])  # the second mask is empty: no line
    write_polygons(tmp_path / "a.txt", det, masks, (20, 40, 3), save_conf=True)
    lines = (tmp_path / "a.txt").read_text().splitlines()
    assert len(lines) == 1
    v = [float(x) for x in lines[0].split()]
    xy = np.array(v[1:-1]).reshape(-1, 2)
    assert v[0] == 2 and v[-1] == pytest.approx(0.9)
    assert xy[:, 0].min() == pytest.approx(10 / 40) and xy[:, 0].max() == pytest.approx(19 / 40)
    assert xy[:, 1].min() == pytest.approx(5 / 20) and xy[:, 1].max() == pytest.approx(14 / 20)


@pytest.mark.slow
def test_onnx_export_has_prototypes_and_validates_like_pytorch(seg_run, seg_data, tmp_path):
    save_dir, _ = seg_run
    best = save_dir / "weights" / "best.pt"
    f = export.run(weights=str(best), imgsz=(64,), include=("onnx",))[0]
    backend = DetectMultiBackend(f, device=torch.device("cpu"))
    y = backend(torch.rand(1, 3, 64, 64))
    assert len(y) == 2 and y[0].shape == (1, 3 * (64 + 16 + 4), 5 + 6 + 32) and y[1].shape == (1, 32, 16, 16)
    # the same image through both: predictions, prototypes and the masks made from them agree
    import cv2

    from utils.augmentations import letterbox
    from utils.general import non_max_suppression
    from utils.segment.general import process_mask

    im = cv2.imread(str(next((seg_data.parent / "shapes-seg" / "images" / "val").glob("*.jpg"))))
    x = torch.from_numpy(letterbox(im, 64, auto=False)[0][..., ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    pt = DetectMultiBackend(str(best), device=torch.device("cpu"))
    (p1, proto1), (p2, proto2) = pt(x)[:2], backend(x)
    assert torch.allclose(p1, p2, atol=1e-3 * float(p1.abs().max())) and torch.allclose(proto1, proto2, atol=1e-3)
    d1 = non_max_suppression(p1, 0.001, 0.6, max_det=5, nm=32)[0]
    d2 = non_max_suppression(p2, 0.001, 0.6, max_det=5, nm=32)[0]
    assert d1.shape == d2.shape and d1.shape[0] > 0
    m1 = process_mask(proto1[0], d1[:, 6:], d1[:, :4], (64, 64), upsample=True)
    m2 = process_mask(proto2[0], d2[:, 6:], d2[:, :4], (64, 64), upsample=True)
    assert (m1 == m2).float().mean() > 0.99
    # and segment/val.py scores the export (real metrics, not an error) on the same data
    r = val.run(weights=f, data=str(seg_data), imgsz=64, batch_size=1, project=str(tmp_path), name="onnx",
                plots=False)[0]
    assert len(r) == 12 and all(0 <= v <= 1 for v in r[:8])



def test_train_batch_mosaics_tint_the_masks(tmp_path):
    """Loggers draws train_batch*.jpg with masks when the batch has them; pixels inside a mask change colour."""
    import argparse

    import cv2

    from utils.loggers import Loggers

    imgs = torch.full((2, 3, 64, 64), 0.5)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.5, 0.5], [1, 2, 0.25, 0.25, 0.25, 0.25]])
    overlap = torch.zeros(2, 64, 64)
    overlap[0, 20:44, 20:44] = 1
    overlap[1, 10:20, 10:20] = 1
    plain = Loggers(tmp_path / "a", argparse.Namespace(noplots=False), include=())
    masked = Loggers(tmp_path / "b", argparse.Namespace(noplots=False, no_overlap=False), include=())
    for lg in (plain, masked):
        lg.save_dir.mkdir()
    plain.on_train_batch_end(None, 0, imgs, targets, ["a.jpg", "b.jpg"], [])
    masked.on_train_batch_end(None, 0, imgs, targets, ["a.jpg", "b.jpg"], [], overlap)
    a, b = (cv2.imread(str(d / "train_batch0.jpg")).astype(int) for d in (plain.save_dir, masked.save_dir))
    assert a.shape == b.shape
    assert np.abs(a[28:36, 28:36] - b[28:36, 28:36]).max() > 30  # inside the first image's mask: tinted
    assert np.abs(a[50:60, 2:8] - b[50:60, 2:8]).max() < 10  # outside every mask: the same


@pytest.mark.slow
def test_hub_custom_on_a_segmentation_checkpoint_returns_detections(seg_run):
    """torch.hub's custom entry point (AutoShape) on a segmentation .pt: boxes with 6 columns, masks not kept."""
    import hubconf

    save_dir, _ = seg_run
    model = hubconf.custom(str(save_dir / "weights" / "best.pt"), _verbose=False)
    model.conf = 0.001
    results = model(np.full((64, 96, 3), 114, dtype=np.uint8), size=64)
    det = results.xyxy[0]
    assert det.ndim == 2 and det.shape[1] == 6
    assert (det[:, 5] >= 0).all() and (det[:, 5] < 6).all()  # classes, not mask coefficients


@pytest.mark.slow
def test_predict_with_onnx_matches_pytorch_labels(seg_run, seg_data, tmp_path):
    save_dir, _ = seg_run
    best = save_dir / "weights" / "best.pt"
    f = export.run(weights=str(best), imgsz=(64,), include=("onnx",))[0]
    src = seg_data.parent / "shapes-seg" / "images" / "val"
    kw = dict(source=str(src), imgsz=(64,), conf_thres=0.001, max_det=3, save_txt=True, save_conf=True,
              project=str(tmp_path))
    out_pt, out_onnx = predict.run(weights=str(best), name="pt", **kw), predict.run(weights=f, name="onnx", **kw)
    assert len(list(out_onnx.glob("*.jpg"))) == 4
    for a in out_pt.glob("labels/*.txt"):
        b = out_onnx / "labels" / a.name
        la, lb = a.read_text().splitlines(), b.read_text().splitlines()
        assert len(la) == len(lb)
        for x, y in zip(la, lb):
            assert x.split()[0] == y.split()[0] and abs(float(x.split()[-1]) - float(y.split()[-1])) < 1e-3


@pytest.mark.slow
def test_val_save_json_has_a_mask_per_box(seg_run, seg_data, tmp_path):
    import json

    save_dir, _ = seg_run
    val.run(data=str(seg_data), weights=str(save_dir / "weights" / "best.pt"), imgsz=64, batch_size=2,
            project=str(tmp_path), name="j", plots=False, save_json=True)
    entries = json.loads((tmp_path / "j" / "best_predictions.json").read_text())
    assert entries and all(set(e) == {"image_id", "category_id", "bbox", "score", "segmentation"} for e in entries)
    assert all(e["segmentation"]["size"] == [96, 96] for e in entries)  # RLE at the original image size


def test_a_model_with_16_mask_prototypes_predicts_and_validates_from_onnx(seg_data, tmp_path):
    """The mask coefficient count comes from the model's prototypes, not YOLOv5's 32: an ONNX export carries no head
    to read it from."""
    from tests.fixtures.inference import make_checkpoint

    cfg = yaml.safe_load((ROOT / "models" / "segment" / "yolov5n-seg-csppc.yaml").read_text())
    head = cfg["head"][-1]
    assert head[2] == "Segment" and head[3][2] == 32
    head[3][2] = 16
    (tmp_path / "nm16-seg.yaml").write_text(yaml.safe_dump(cfg))
    weights = make_checkpoint(tmp_path / "nm16.pt", cfg=str(tmp_path / "nm16-seg.yaml"))
    f = export.run(weights=str(weights), imgsz=(64,), include=("onnx",))[0]
    assert DetectMultiBackend(f)(torch.zeros(1, 3, 64, 64))[1].shape[1] == 16
    src = seg_data.parent / "shapes-seg" / "images" / "val"
    kw = dict(source=str(src), imgsz=(64,), conf_thres=0.001, max_det=3, save_txt=True, project=str(tmp_path))
    out = {name: predict.run(weights=w, name=name, **kw) for name, w in (("pt", str(weights)), ("onnx", f))}
    rows = {k: sorted(p.read_text() for p in d.glob("labels/*.txt")) for k, d in out.items()}
    assert rows["onnx"] and len(rows["onnx"]) == len(rows["pt"])  # a polygon per kept box, from either model
    r = val.run(weights=f, data=str(seg_data), imgsz=64, batch_size=1, project=str(tmp_path), name="v", plots=False)
    assert len(r[0]) >= 8  # box and mask P, R, mAP50, mAP50-95 (and the losses)
