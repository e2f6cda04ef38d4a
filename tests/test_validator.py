"""The shared validator: COCOeval on box and mask JSON (utils.coco_eval.coco_evaluate), segment/val.py's COCOeval
figures replacing its own, bad annotation files, and --task study for segmentation.

Annotation files are built from the YOLO polygon label files, so predictions taken from the ground truth must
score (near) perfectly; an oracle segmentation model that finds pure-colour rectangles checks the whole path.
"""

from __future__ import annotations

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

from segment import val as seg_val
from tests.test_val import COLORS_BGR, IMAGES, NAMES, Oracle
from utils.coco_eval import coco_evaluate
from utils.general import check_dataset
from utils.segment.dataloaders import create_dataloader
from utils.shapes import NAMES as SHAPE_NAMES
from utils.shapes import generate_shapes_dataset

mask_api = pytest.importorskip("pycocotools.mask")


def coco_from_labels(root: Path, split: str = "val") -> dict:
    """A COCO annotation dict (polygon segmentations, pixel boxes) from YOLO polygon labels; category id = class."""
    images, anns = [], []
    for f in sorted((root / "images" / split).iterdir()):
        h, w = cv2.imread(str(f)).shape[:2]
        image_id = int(f.stem)
        images.append({"id": image_id, "width": w, "height": h, "file_name": f.name})
        label = root / "labels" / split / f"{f.stem}.txt"
        for line in label.read_text().splitlines() if label.exists() else []:
            c, *xy = line.split()
            poly = (np.array(xy, dtype=np.float64).reshape(-1, 2) * (w, h)).round(2)
            x1, y1 = poly.min(0)
            x2, y2 = poly.max(0)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(c), "iscrowd": 0,
                         "segmentation": [poly.ravel().tolist()], "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": float((x2 - x1) * (y2 - y1))})
    names = sorted({a["category_id"] for a in anns})
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in names]}


def results_from(anno: dict, erode: int = 0) -> list[dict]:
    """COCO results that repeat the ground truth: its boxes, and its polygons as RLE masks (eroded by erode px)."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in anno["images"]}
    out = []
    for a in anno["annotations"]:
        h, w = sizes[a["image_id"]]
        mask = mask_api.decode(mask_api.merge(mask_api.frPyObjects(a["segmentation"], h, w)))
        if erode:
            mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
        rle = mask_api.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode()
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9,
                    "segmentation": rle})
    return out


@pytest.fixture(scope="module")
def shapes_seg(tmp_path_factory):
    """A tiny shapes-seg split and its annotation JSON (written next to the data)."""
    root = generate_shapes_dataset(tmp_path_factory.mktemp("val") / "shapes-seg", train=2, val=4, imgsz=96,
                                   segments=True)
    anno = coco_from_labels(root)
    (root / "instances_val.json").write_text(json.dumps(anno))
    files = sorted(str(f) for f in (root / "images" / "val").iterdir())
    return root, anno, files


def test_coco_evaluate_scores_boxes_and_masks_of_the_ground_truth(shapes_seg, tmp_path):
    root, anno, files = shapes_seg
    assert len(anno["annotations"]) >= 4  # a real case: several shapes over 4 images
    data = {"path": str(root), "anno_json": "instances_val.json"}
    stats = coco_evaluate(results_from(anno), tmp_path / "p.json", data, files, False, ("bbox", "segm"))
    assert stats["bbox"] == pytest.approx((1.0, 1.0), abs=1e-6)
    assert stats["segm"] == pytest.approx((1.0, 1.0), abs=1e-6)
    assert len(json.loads((tmp_path / "p.json").read_text())) == len(anno["annotations"])

    # masks 1 px thinner than the shapes: boxes still perfect; masks still found at IoU 0.5, worse at 0.95
    stats = coco_evaluate(results_from(anno, erode=1), tmp_path / "p.json", data, files, False, ("bbox", "segm"))
    assert stats["bbox"] == pytest.approx((1.0, 1.0), abs=1e-6)
    segm_map, segm_map50 = stats["segm"]
    assert 0.05 < segm_map < 0.9 and segm_map < segm_map50


def test_coco_evaluate_bad_annotation_files_warn_and_name_the_file(shapes_seg, tmp_path, caplog):
    root, anno, files = shapes_seg
    jdict = results_from(anno)
    missing = tmp_path / "nowhere.json"
    with caplog.at_level(logging.INFO, logger="yolov5"):
        assert coco_evaluate(jdict, tmp_path / "p.json", {"anno_json": str(missing)}, files, False) is None
    assert any(r.levelno == logging.WARNING and str(missing) in r.getMessage() for r in caplog.records)

    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="yolov5"):
        assert coco_evaluate(jdict, tmp_path / "p.json", {"anno_json": str(bad)}, files, False) is None
    assert any(r.levelno == logging.WARNING and str(bad) in r.getMessage() for r in caplog.records)

    # boxes only in the annotations: the bbox score stands, the segm one fails with a warning naming the file
    boxes_only = tmp_path / "boxes.json"
    boxes_only.write_text(json.dumps({**anno, "annotations": [
        {k: v for k, v in a.items() if k != "segmentation"} for a in anno["annotations"]]}))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="yolov5"):
        stats = coco_evaluate(jdict, tmp_path / "p.json", {"anno_json": str(boxes_only)}, files, False,
                              ("bbox", "segm"))
    assert set(stats) == {"bbox"} and stats["bbox"] == pytest.approx((1.0, 1.0), abs=1e-6)
    assert any(r.levelno == logging.WARNING and str(boxes_only) in r.getMessage() for r in caplog.records)


class SegOracle(Oracle):
    """test_val's rectangle oracle with masks: one prototype is 1 everywhere, so each mask is its box, exactly."""

    def __init__(self):
        super().__init__()
        head = nn.Module()
        head.nm = 32
        self.model = nn.ModuleList([head])  # the validator reads the mask coefficient count from model[-1].nm

    def forward(self, im, augment=False):
        pred, _ = super().forward(im)
        coef = torch.zeros(*pred.shape[:2], 32)
        coef[..., 0] = 1.0
        protos = torch.zeros(im.shape[0], 32, im.shape[2] // 4, im.shape[3] // 4)
        protos[:, 0] = 20.0  # sigmoid(20) = 1: the mask is its box after cropping
        return torch.cat((pred, coef), 2), protos


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory):
    """test_val's images of pure-colour rectangles with polygon labels, their annotation JSON and a mask loader."""
    root = tmp_path_factory.mktemp("rects")
    for d in ("images/val", "labels/val"):
        (root / d).mkdir(parents=True)
    for stem, ((h, w), boxes) in IMAGES.items():
        im = np.zeros((h, w, 3), dtype=np.uint8)
        lines = []
        for c, (x1, y1, x2, y2) in boxes.items():
            im[y1:y2, x1:x2] = COLORS_BGR[c]
            corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]) / (w, h)
            lines.append(f"{c} " + " ".join(f"{v:.6f}" for v in corners.ravel()))
        cv2.imwrite(str(root / "images/val" / f"{stem}.png"), im)
        (root / "labels/val" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    anno = coco_from_labels(root)
    anno["categories"] = [{"id": c, "name": n} for c, n in NAMES.items()]
    (root / "instances_val.json").write_text(json.dumps(anno))
    data = check_dataset({"path": str(root), "train": "images/val", "val": "images/val", "names": NAMES})
    loader = create_dataloader(data["val"], 128, 2, 32, pad=0.5, rect=True, workers=0, nc=3)[0]
    return root, data, loader


def test_segment_val_takes_cocoeval_box_and_mask_figures(rectangles, tmp_path, caplog):
    root, data, loader = rectangles

    def validate(data, name, **kwargs):
        return seg_val.run(data, imgsz=128, model=SegOracle(), dataloader=loader, save_dir=tmp_path / name,
                           save_json=True, plots=False, **kwargs)

    (tmp_path / "own").mkdir()
    own, own_maps, _ = validate(data, "own")  # no annotation file: our figures
    bp, br, b50, b5095, mp, mr, m50, m5095 = own[:8]
    assert b50 == pytest.approx(2 * 0.995 / 3, abs=1e-6) and b5095 == pytest.approx(2 * 0.995 / 3, abs=1e-6)
    assert m50 == pytest.approx(2 * 0.995 / 3, abs=1e-6) and 0.5 < m5095 <= m50  # masks at 1/4 scale: less exact

    (tmp_path / "coco").mkdir()
    with caplog.at_level(logging.INFO, logger="yolov5"):
        coco, coco_maps, _ = validate({**data, "anno_json": "instances_val.json"}, "coco", retina_masks=True)
    assert "Evaluating pycocotools mAP" in caplog.text
    entries = json.loads((tmp_path / "coco" / "_predictions.json").read_text())
    assert entries and all("segmentation" in e for e in entries)
    # COCOeval's figures replace ours: 2 of 3 classes found exactly -> 2/3 for boxes, and for the
    # (original-resolution, --retina-masks) masks at IoU 0.5; P and R and the per-class maps stay ours
    assert coco[2] == pytest.approx(2 / 3, abs=1e-4) and coco[3] == pytest.approx(2 / 3, abs=1e-4)
    assert coco[6] == pytest.approx(2 / 3, abs=1e-4) and 0.5 < coco[7] <= coco[6]
    assert coco[7] == pytest.approx(coco_evaluate(entries, tmp_path / "again.json", {**data, "anno_json":
                                    "instances_val.json"}, loader.dataset.im_files, False, ("segm",))["segm"][0])
    assert coco[:2] == pytest.approx(own[:2]) and coco[4:6] == pytest.approx(own[4:6])
    assert coco_maps.tolist() == pytest.approx(own_maps.tolist())

    # a malformed annotation file: a warning naming it, and the computed figures kept
    (root / "broken.json").write_text("not json")
    (tmp_path / "broken").mkdir()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="yolov5"):
        kept, _, _ = validate({**data, "anno_json": "broken.json"}, "broken")
    assert any(r.levelno == logging.WARNING and "broken.json" in r.getMessage() for r in caplog.records)
    assert kept[:8] == pytest.approx(own[:8])


def test_segment_run_takes_val_run_arguments_only():
    with pytest.raises(TypeError, match="conf_thresh"):  # a misspelt val.run argument fails as a call to it would
        seg_val.run("data.yaml", conf_thresh=0.1)


def _seg_checkpoint(path: Path) -> Path:
    from models.yolo import SegmentationModel

    torch.manual_seed(0)
    model = SegmentationModel("yolov5n-seg.yaml", nc=len(SHAPE_NAMES))
    model.names = dict(enumerate(SHAPE_NAMES))
    torch.save({"epoch": -1, "model": deepcopy(model).half(), "ema": None, "opt": None}, path)
    return path


def test_segment_study_task(shapes_seg, tmp_path):
    root, _, _ = shapes_seg
    data_yaml = tmp_path / "seg.yaml"
    data_yaml.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                         "names": dict(enumerate(SHAPE_NAMES))}))
    weights = _seg_checkpoint(tmp_path / "tiny-seg.pt")
    opt = seg_val.parse_opt(["--task", "study", "--data", str(data_yaml), "--weights", str(weights), "--device",
                             "cpu", "--batch-size", "4", "--workers", "0", "--project", str(tmp_path / "runs")])
    f = seg_val.study(opt, sizes=(32, 64))
    assert f.name == "study_seg_tiny-seg.csv"
    header = f.read_text().splitlines()[0].split(",")
    assert header == ["imgsz", "P(B)", "R(B)", "mAP50(B)", "mAP50-95(B)", "P(M)", "R(M)", "mAP50(M)", "mAP50-95(M)",
                      "box_loss", "seg_loss", "obj_loss", "cls_loss", "preprocess_ms", "inference_ms", "nms_ms"]
    rows = np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)
    assert rows.shape == (2, 16) and rows[:, 0].tolist() == [32, 64]
    assert ((rows[:, 1:9] >= 0) & (rows[:, 1:9] <= 1)).all() and (rows[:, 14] > 0).all()  # metrics; inference ms
    assert f.with_suffix(".png").is_file()
