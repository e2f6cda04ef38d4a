"""Annotation converters on small generated fixtures, checked against boxes computed by hand."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.coco_json import (
    coco80_to_coco91_class,
    coco91_to_coco80_class,
    convert_argoverse,
    convert_coco,
    convert_objects365,
    merge_polygons,
)
from utils.convert import CONVERTERS, get_converter, main
from utils.converters import convert_globalwheat, convert_sku110k, convert_voc, convert_xview, voc_box_to_yolo


def image(path: Path, w: int, h: int, fmt: str | None = None) -> Path:
    """Write a small real image of the given size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (40, 80, 120)).save(path, format=fmt)
    return path


def voc_xml(objects: list[tuple], w: int = 100, h: int = 80) -> str:
    """A VOC annotation with objects (name, difficult, xmin, ymin, xmax, ymax)."""
    objs = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                   f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>" for n, d, x1, y1, x2, y2 in objects)
    return f"<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>"


def lines(path: Path) -> list[list[float]]:
    """A label file as rows of floats."""
    return [[float(v) for v in r.split()] for r in path.read_text().splitlines()]


@pytest.fixture
def voc_root(tmp_path):
    """root/images/VOCdevkit/VOC2007 with train ids 000001, 000002 (image missing), 000003 (no XML); test 000004."""
    dev = tmp_path / "VOC" / "images" / "VOCdevkit" / "VOC2007"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (dev / d).mkdir(parents=True)
    (dev / "ImageSets/Main/train.txt").write_text("000001\n000002\n000003\n")
    (dev / "ImageSets/Main/test.txt").write_text("000004\n")
    image(dev / "JPEGImages/000001.jpg", 100, 80)
    image(dev / "JPEGImages/000003.jpg", 100, 80)
    image(dev / "JPEGImages/000004.jpg", 100, 80)
    (dev / "Annotations/000001.xml").write_text(voc_xml([
        ("dog", 0, 11, 21, 61, 41),  # kept
        ("person", 1, 1, 1, 50, 50),  # difficult
        ("unicorn", 0, 1, 1, 50, 50),  # unknown class
        ("cat", 0, 30, 30, 30, 60),  # zero width
    ]))
    (dev / "Annotations/000002.xml").write_text(voc_xml([("dog", 0, 1, 1, 2, 2)]))
    (dev / "Annotations/000004.xml").write_text(voc_xml([("tvmonitor", 0, 1, 1, 100, 80)]))
    return tmp_path / "VOC"


def test_voc_box_formula():
    # VOC pixels are 1-based: centre ((11 + 61) / 2 - 1) / 100 = 0.35, ((21 + 41) / 2 - 1) / 80 = 0.375
    assert voc_box_to_yolo((100, 80), (11, 61, 21, 41)) == (0.35, 0.375, 0.5, 0.25)


def test_voc_converter(voc_root):
    report = convert_voc(voc_root)
    assert lines(voc_root / "labels/train2007/000001.txt") == [[11, 0.35, 0.375, 0.5, 0.25]]
    # (1 + 100) / 2 - 1 = 49.5 of 100, (1 + 80) / 2 - 1 = 39.5 of 80; sizes 99 / 100 and 79 / 80
    assert lines(voc_root / "labels/test2007/000004.txt") == [[19, 0.495, 0.49375, 0.99, 0.9875]]
    assert (voc_root / "images/train2007/000001.jpg").exists()
    assert not (voc_root / "images/VOCdevkit/VOC2007/JPEGImages/000001.jpg").exists()  # moved, as YOLOv5 does
    assert (voc_root / "train2007.txt").read_text() == "./images/train2007/000001.jpg\n"
    assert (voc_root / "test2007.txt").read_text() == "./images/test2007/000004.jpg\n"
    assert report.skipped["difficult objects"] == 1 and report.skipped["zero-area boxes"] == 1
    assert report.skipped["objects of unknown class 'unicorn'"] == 1
    assert report.skipped["missing images"] == 1 and "000002.jpg" in report.examples["missing images"]
    assert report.skipped["images without an XML annotation"] == 1
    assert report.skipped["image sets not present"] == 3  # VOC2012 train/val and VOC2007 val are absent here
    assert report.written["label files"] == 2 and report.written["boxes"] == 2
    assert "skipped" in report.summary() and "difficult objects (e.g." in report.summary()
    convert_voc(voc_root)  # a second run finds the moved images and writes the same labels
    assert lines(voc_root / "labels/train2007/000001.txt") == [[11, 0.35, 0.375, 0.5, 0.25]]


def test_voc_cli_and_missing_devkit(voc_root, tmp_path):
    report = main(["voc", str(voc_root)])
    assert report.written["label files"] == 2
    with pytest.raises(FileNotFoundError, match="no VOCdevkit/VOC2007 or VOC2012 folder"):
        convert_voc(tmp_path / "empty")


@pytest.fixture
def coco_json(tmp_path):
    """Three images (one missing on disk) and annotations covering every skip reason."""
    imgs = tmp_path / "coco" / "images" / "val2017"
    image(imgs / "a.jpg", 200, 100)
    image(imgs / "b.jpg", 50, 50)
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
                   {"id": 2, "file_name": "b.jpg", "width": 50, "height": 50},
                   {"id": 3, "file_name": "gone.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 18, "bbox": [20, 10, 40, 30], "iscrowd": 0,
             "segmentation": [[20, 10, 60, 10, 60, 40]]},  # dog
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "iscrowd": 1,
             "segmentation": {"counts": [0, 5], "size": [100, 200]}},  # crowd (RLE)
            {"id": 3, "image_id": 1, "category_id": 12, "bbox": [1, 1, 5, 5], "iscrowd": 0},  # id never annotated
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 10], "iscrowd": 0},  # zero width
            {"id": 5, "image_id": 2, "category_id": 90, "bbox": [10, 10, 30, 30], "iscrowd": 0,
             "segmentation": [[10, 10, 40, 10, 40, 40, 10, 40]]},  # toothbrush
            {"id": 6, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0},
        ],
        "categories": [{"id": i, "name": str(i)} for i in coco80_to_coco91_class()],
    }
    f = tmp_path / "instances_val2017.json"
    f.write_text(json.dumps(data))
    return f, imgs, tmp_path / "coco"


def test_coco91_to_coco80_map():
    m = coco91_to_coco80_class()
    assert len(m) == 91 and m[0] == 0 and m[17] == 16 and m[89] == 79 and m[11] is None and m[90] is None
    assert sum(v is not None for v in m) == 80 and [m[i - 1] for i in coco80_to_coco91_class()] == list(range(80))


def test_coco_boxes_with_91_to_80_map(coco_json):
    f, imgs, out = coco_json
    report = convert_coco(f, imgs, out)
    # dog: x 20..60 of 200, y 10..40 of 100 -> centre (0.2, 0.25), size (0.2, 0.3); class 18 -> 16
    assert lines(out / "labels/val2017/a.txt") == [[16, 0.2, 0.25, 0.2, 0.3]]
    assert lines(out / "labels/val2017/b.txt") == [[79, 0.5, 0.5, 0.6, 0.6]]
    assert not (out / "labels/val2017/gone.txt").exists()
    assert (out / "val2017.txt").read_text().splitlines() == [str(imgs.resolve() / n) for n in ("a.jpg", "b.jpg")]
    assert report.skipped == {"crowd annotations (iscrowd)": 1, "annotations of unknown class (category_id 12)": 1,
                              "zero-area boxes": 1, "missing images": 1}


def test_coco_segments_and_cls91(coco_json):
    f, imgs, out = coco_json
    report = main(["coco", str(f), str(imgs), str(out), "--segments", "--cls91"])
    # id 12 is class 11 with --cls91; it has no polygon, so its box is written: centre (3.5 / 200, 3.5 / 100)
    assert lines(out / "labels/val2017/a.txt") == [[17, 0.1, 0.1, 0.3, 0.1, 0.3, 0.4], [11, 0.0175, 0.035, 0.025, 0.05]]
    assert lines(out / "labels/val2017/b.txt") == [[89, 0.2, 0.2, 0.8, 0.2, 0.8, 0.8, 0.2, 0.8]]
    assert report.skipped["annotations of unknown class (category_id 12)"] == 0
    assert report.skipped["annotations without a polygon (box written instead)"] == 1
    assert report.written["objects"] == 3


def test_merge_polygons_bridges_parts():
    a = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    b = a + [3, 0]
    m = merge_polygons([a, b])
    assert len(m) == len(a) + len(b) + 2  # each part entered and left at its nearest point, once each way
    assert m[:3].tolist() == [[0, 0], [1, 0], [3, 0]] and m[-1].tolist() == [0, 1]
    assert {tuple(p) for p in m} == {tuple(p) for p in np.concatenate([a, b])}


def test_sku110k_csv(tmp_path):
    unpacked = tmp_path / "SKU110K_fixed"
    image(unpacked / "images" / "train_0.jpg", 100, 50)
    (unpacked / "annotations").mkdir()
    (unpacked / "annotations" / "annotations_train.csv").write_text(
        "train_0.jpg,10,5,30,25,object,100,50\ntrain_0.jpg,0,0,0,9,object,100,50\nmissing.jpg,1,1,2,2,object,9,9\n")
    root = tmp_path / "SKU-110K"
    report = convert_sku110k(root)
    assert not unpacked.exists() and (root / "images" / "train_0.jpg").exists()  # renamed to the dataset root
    assert lines(root / "labels" / "train_0.txt") == [[0, 0.2, 0.3, 0.2, 0.4]]
    assert (root / "train.txt").read_text() == "./images/train_0.jpg\n"
    assert report.skipped["zero-area boxes"] == 1 and report.skipped["missing images"] == 1


def test_globalwheat_moves_domains(tmp_path):
    image(tmp_path / "arvalis_1" / "a.png", 8, 8)
    (tmp_path / "arvalis_1.json").write_text("{}")
    report = convert_globalwheat(tmp_path)
    assert (tmp_path / "images" / "arvalis_1" / "a.png").exists()
    assert (tmp_path / "annotations" / "arvalis_1.json").exists()
    assert report.written["image folders"] == 1 and report.skipped["domains not present"] == 10


def test_argoverse_json(tmp_path):
    frames = tmp_path / "Argoverse-1.1" / "tracking" / "train" / "seq1" / "ring_front_center"
    image(frames / "f1.jpg", 16, 10)
    ann = tmp_path / "Argoverse-HD" / "annotations"
    ann.mkdir(parents=True)
    (ann / "train.json").write_text(json.dumps({
        "images": [{"id": 0, "name": "f1.jpg", "sid": 0}],
        "seq_dirs": ["train/seq1/ring_front_center"],
        "annotations": [{"image_id": 0, "category_id": 2, "bbox": [960, 300, 192, 600]},
                        {"image_id": 0, "category_id": 9, "bbox": [0, 0, 5, 5]}]}))
    report = convert_argoverse(tmp_path)
    label = tmp_path / "Argoverse-1.1" / "labels" / "train" / "seq1" / "ring_front_center" / "f1.txt"
    assert lines(label) == [[2, 0.55, 0.5, 0.1, 0.5]]  # 1920x1200 frames: (960 + 96) / 1920, (300 + 300) / 1200
    assert (tmp_path / "Argoverse-1.1" / "images" / "train" / "seq1" / "ring_front_center" / "f1.jpg").exists()
    assert report.skipped["annotations of unknown class (category_id 9)"] == 1
    assert report.skipped["splits without their JSON"] == 1


def test_objects365_flattens_patches_and_orders_classes(tmp_path):
    image(tmp_path / "images" / "val" / "patch0" / "o1.jpg", 40, 20)
    (tmp_path / "zhiyuan_objv2_val.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "images/v1/patch0/o1.jpg", "width": 40, "height": 20}],
        "categories": [{"id": 5, "name": "Sneakers"}, {"id": 1, "name": "Person"}],
        "annotations": [{"image_id": 7, "category_id": 5, "bbox": [30, 0, 20, 10], "iscrowd": 0},
                        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 4, 4], "iscrowd": 1}]}))
    report = convert_objects365(tmp_path)
    assert (tmp_path / "images" / "val" / "o1.jpg").exists()
    # category ids sorted: 1 -> 0, 5 -> 1; box x 30..50 clipped to 30..40 of 40, y 0..10 of 20
    assert lines(tmp_path / "labels" / "val" / "o1.txt") == [[1, 0.875, 0.25, 0.25, 0.5]]
    assert report.skipped["crowd annotations (iscrowd)"] == 1


def test_xview_geojson(tmp_path):
    image(tmp_path / "train_images" / "1.tif", 100, 50, fmt="TIFF")
    image(tmp_path / "val_images" / "9.tif", 10, 10, fmt="TIFF")
    feats = [{"properties": {"image_id": "1.tif", "type_id": 18, "bounds_imcoords": "10,10,30,40"}},  # Small Car
             {"properties": {"image_id": "1.tif", "type_id": 14, "bounds_imcoords": "1,1,2,2"}},  # unused type
             {"properties": {"image_id": "2.tif", "type_id": 18, "bounds_imcoords": "1,1,2,2"}}]  # missing image
    (tmp_path / "xView_train.geojson").write_text(json.dumps({"features": feats}))
    report = convert_xview(tmp_path)
    assert lines(tmp_path / "labels" / "train" / "1.txt") == [[5, 0.2, 0.5, 0.2, 0.6]]
    assert (tmp_path / "images" / "train" / "1.tif").exists() and (tmp_path / "images" / "val" / "9.tif").exists()
    split = [(tmp_path / "images" / f"autosplit_{s}.txt").read_text().split() for s in ("train", "val")]
    assert sorted(split[0] + split[1]) == ["./train/1.tif"]
    assert report.skipped["boxes of unused type_id 14"] == 1 and report.skipped["boxes of missing images"] == 1


def test_unknown_converter_name():
    assert set(CONVERTERS) == {"voc", "visdrone", "sku110k", "globalwheat", "argoverse", "objects365", "xview"}
    with pytest.raises(ValueError, match="x.yaml: unknown converter 'convert: exec'"):
        get_converter("exec", "x.yaml")


def test_visdrone_rows(tmp_path):
    d = tmp_path / "VisDrone2019-DET-val"
    image(d / "images" / "0001.jpg", 40, 20)
    (d / "annotations").mkdir()
    (d / "annotations" / "0001.txt").write_text(
        "2,4,10,8,1,1,0,0\n"  # pedestrian: x 2..12 of 40, y 4..12 of 20
        "0,0,5,5,0,0,0,0\n"  # ignored region (score 0)
        "1,1,5,5,1,11,0,0\n"  # 'others'
        "3,3,0,4,1,4,0,0\n"  # zero width
        "a,b,c\n")  # malformed
    report = main(["visdrone", str(tmp_path)])
    assert lines(d / "labels" / "0001.txt") == [[0, 0.175, 0.4, 0.25, 0.4]]
    assert report.skipped == {"ignored regions": 1, "objects of class 11 (not one of the 10 classes)": 1,
                              "zero-area boxes": 1, "malformed rows": 1, "splits not present": 2}


def test_voc_output_loads_with_the_project_loader(voc_root):
    """The converted layout is what the loader expects: labels found beside images/, lists resolve."""
    from utils.dataloaders import LoadImagesAndLabels

    convert_voc(voc_root)
    ds = LoadImagesAndLabels(str(voc_root / "train2007.txt"), img_size=64, batch_size=1)
    assert [Path(f).name for f in ds.im_files] == ["000001.jpg"]
    assert [round(v, 6) for v in ds.labels[0][0].tolist()] == [11.0, 0.35, 0.375, 0.5, 0.25]  # float32 in the loader
