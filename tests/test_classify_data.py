"""Classification data: ImageFolder reading, v7.0's transforms, corrupt images, dataset resolution, shapes-cls."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from utils.classify_data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassificationDataset,
    ClassifyAugment,
    center_crop,
    check_cls_dataset,
    classify_transforms,
    create_classification_dataloader,
)


def make_folder(root, classes=("a", "b"), n=3, size=(40, 56), seed=0):
    """root/<class>/<i>.jpg images of one flat colour per class (BGR)."""
    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            im = np.full((*size, 3), (40 + 150 * k, 90, int(rng.integers(0, 255))), np.uint8)
            cv2.imwrite(str(root / c / f"{i}.jpg"), im)
    return root


def test_center_crop_is_the_centred_square():
    im = np.zeros((20, 40, 3), np.uint8)
    im[:, 10:30] = 255  # the centred 20x20 square is white, the rest black
    out = center_crop(im, 10)
    assert out.shape == (10, 10, 3) and out.min() == 255


def test_val_transform_normalises_rgb():
    im = np.zeros((8, 8, 3), np.uint8)
    im[..., 2] = 255  # BGR red
    x = classify_transforms(4)(im)
    assert x.shape == (3, 4, 4)
    r, g = x[0, 0, 0].item(), x[1, 0, 0].item()
    assert r == pytest.approx((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], abs=1e-5)
    assert g == pytest.approx(-IMAGENET_MEAN[1] / IMAGENET_STD[1], abs=1e-5)


def test_augment_varies_and_keeps_size():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    aug = ClassifyAugment(32)
    a, b = aug(im), aug(im)
    assert a.shape == b.shape == (3, 32, 32)
    assert not torch.equal(a, b)


def test_dataset_labels_by_sorted_folder(tmp_path):
    make_folder(tmp_path / "train", classes=("zebra", "ant"), n=2)
    ds = ClassificationDataset(tmp_path / "train", imgsz=16)
    assert ds.names == {0: "ant", 1: "zebra"} and len(ds) == 4
    x, y = ds[3]
    assert x.shape == (3, 16, 16) and y == 1


def test_corrupt_image_is_named_and_skipped(tmp_path, caplog):
    root = make_folder(tmp_path / "train", n=2)
    bad = root / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "b" / "empty.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        ds = ClassificationDataset(root, imgsz=16, prefix="train: ")
    assert len(ds) == 4
    text = caplog.text
    assert str(bad) in text and "empty.png" in text and "zero-byte" in text
    assert all("broken" not in f for f, _ in ds.samples)
    assert (tmp_path / "train.cache").is_file()  # the check ran once; a second dataset reads its verdicts
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = ClassificationDataset(root, imgsz=16, prefix="train: ")
    assert again.samples == ds.samples and str(bad) in caplog.text
    bad.write_bytes(cv2.imencode(".jpg", np.zeros((20, 20, 3), np.uint8))[1].tobytes())  # repaired: rescanned
    assert len(ClassificationDataset(root, imgsz=16)) == 5


def test_loader_batches(tmp_path):
    root = make_folder(tmp_path / "train", n=3)
    loader, ds = create_classification_dataloader(root, imgsz=16, batch_size=4, augment=True, workers=0)
    imgs, labels = next(iter(loader))
    assert imgs.shape == (4, 3, 16, 16) and labels.dtype == torch.int64


def test_check_cls_dataset_folder_and_errors(tmp_path):
    make_folder(tmp_path / "ds" / "train")
    make_folder(tmp_path / "ds" / "test", classes=("a",))
    d = check_cls_dataset(tmp_path / "ds")
    assert d["nc"] == 2 and d["val"] == tmp_path / "ds" / "test" and d["names"] == {0: "a", 1: "b"}
    with pytest.raises(FileNotFoundError, match="not found"):
        check_cls_dataset(tmp_path / "missing")
    make_folder(tmp_path / "ds2" / "train")
    with pytest.raises(FileNotFoundError, match="needs train/ and val/"):
        check_cls_dataset(tmp_path / "ds2")
    make_folder(tmp_path / "ds2" / "val", classes=("a", "c"))
    with pytest.raises(ValueError, match=r"\['c'\] are not in"):
        check_cls_dataset(tmp_path / "ds2")


def test_yaml_generates_shapes_cls(tmp_path):
    cfg = tmp_path / "tiny-cls.yaml"
    cfg.write_text("path: tiny\ngenerate:\n  name: shapes-cls\n  train: 3\n  val: 2\n  imgsz: 24\n  seed: 1\n")
    d = check_cls_dataset(str(cfg))
    assert d["path"] == tmp_path / "tiny" and d["nc"] == 6
    assert d["names"][0] == "circle"
    for split, n in (("train", 3), ("val", 2)):
        for c in d["names"].values():
            files = sorted((tmp_path / "tiny" / split / c).glob("*.jpg"))
            assert len(files) == n
            assert cv2.imread(str(files[0])).shape == (24, 24, 3)
    cfg.write_text("path: other\ngenerate:\n  name: coco\n")
    with pytest.raises(ValueError, match="unknown classification generator 'coco'"):
        check_cls_dataset(str(cfg))


def test_yaml_names_must_match_folders(tmp_path):
    make_folder(tmp_path / "ds" / "train", classes=("a", "b"))
    make_folder(tmp_path / "ds" / "val", classes=("a", "b"))
    cfg = tmp_path / "ds.yaml"
    cfg.write_text("path: ds\ntrain: train\nval: val\nnames: [a, b]\n")
    assert check_cls_dataset(str(cfg))["names"] == {0: "a", 1: "b"}
    cfg.write_text("path: ds\nnames: {0: b, 1: a}\n")
    with pytest.raises(ValueError, match=r"names \['b', 'a'\] differ from the class folders"):
        check_cls_dataset(str(cfg))
