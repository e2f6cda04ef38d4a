"""Segmentation data: polygon rasterisation, overlap maps, the masks dataset and the shapes-seg generator."""

import numpy as np
import pytest
import torch
import yaml

from utils.general import check_dataset
from utils.segment.dataloaders import (
    LoadImagesAndLabelsAndMasks,
    create_dataloader,
    polygon2mask,
    polygons2masks,
    polygons2masks_overlap,
)
from utils.shapes import generate_shapes_dataset

HYP = {"mosaic": 1.0, "degrees": 5.0, "translate": 0.1, "scale": 0.3, "shear": 0.0, "perspective": 0.0,
       "fliplr": 0.5, "flipud": 0.5, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "mixup": 0.0, "copy_paste": 0.5}


@pytest.fixture(scope="module")
def seg_root(tmp_path_factory):
    return generate_shapes_dataset(tmp_path_factory.mktemp("seg") / "shapes-seg", train=6, val=3, imgsz=96,
                                   segments=True)


def test_polygon2mask_fills_and_downsamples():
    square = np.array([[2, 2], [10, 2], [10, 10], [2, 10]], np.float32)
    m = polygon2mask((16, 16), [square.reshape(-1)])
    assert m.shape == (16, 16) and m[2:11, 2:11].all() and m.sum() == 81
    small = polygon2mask((16, 16), [square.reshape(-1)], downsample_ratio=4)
    assert small.shape == (4, 4) and small[1:2, 1:2].all() and small[3].sum() == 0


def test_overlap_map_puts_smaller_instances_on_top():
    big = np.array([[0, 0], [15, 0], [15, 15], [0, 15]], np.float32)
    small = np.array([[4, 4], [7, 4], [7, 7], [4, 7]], np.float32)
    masks, order = polygons2masks_overlap((16, 16), [small, big])
    assert order.tolist() == [1, 0]  # largest first: the big square is instance 1, the small one instance 2
    assert masks[5, 5] == 2 and masks[0, 0] == 1 and masks[12, 12] == 1
    separate = polygons2masks((16, 16), [small, big])
    assert separate.shape == (2, 16, 16) and separate[0].sum() == 16


def test_generator_writes_polygon_lines(seg_root):
    line = (seg_root / "labels" / "train" / "000000.txt").read_text().splitlines()[0].split()
    assert len(line) > 5 and (len(line) - 1) % 2 == 0
    xy = np.array(line[1:], float).reshape(-1, 2)
    assert 0 <= xy.min() and xy.max() <= 1


@pytest.mark.parametrize("overlap", [False, True])
def test_masks_match_their_boxes(seg_root, overlap):
    ds = LoadImagesAndLabelsAndMasks(str(seg_root / "images" / "train"), img_size=96, augment=False,
                                     downsample_ratio=1, overlap=overlap)
    for i in range(len(ds)):
        img, labels, path, shapes, masks = ds[i]
        assert img.shape[1:] == (96, 96)
        n = len(labels)
        assert masks.shape == ((1, 96, 96) if overlap else (n, 96, 96))
        for k in range(n):
            m = (masks[0] == k + 1) if overlap else masks[k].bool()
            if overlap and not m.any():
                continue  # fully covered by smaller instances drawn on top
            ys, xs = torch.nonzero(m, as_tuple=True)
            x, y, w, h = (labels[k, 2:] * 96).tolist()
            # the mask's extent is the polygon's, within the rasterisation's pixel
            assert abs(xs.min().item() - (x - w / 2)) <= 1.5 and abs(xs.max().item() + 1 - (x + w / 2)) <= 1.5
            assert abs(ys.min().item() - (y - h / 2)) <= 1.5 and abs(ys.max().item() + 1 - (y + h / 2)) <= 1.5


def test_augmented_batches_keep_masks_and_labels_in_step(seg_root):
    torch.manual_seed(0)
    loader, ds = create_dataloader(str(seg_root / "images" / "train"), 96, 3, 32, hyp=HYP, augment=True,
                                   workers=0, mask_downsample_ratio=4, overlap_mask=False, shuffle=True)
    seen = 0
    for imgs, labels, paths, _shapes, masks in loader:
        assert imgs.shape[0] == len(paths) and masks.shape[1:] == (24, 24) and masks.shape[0] == labels.shape[0]
        for lb, m in zip(labels, masks):
            if m.sum() == 0:
                continue  # an instance pushed out of the canvas by the augmentation keeps an empty mask
            ys, xs = torch.nonzero(m, as_tuple=True)
            cx, cy = lb[2].item() * 24, lb[3].item() * 24
            assert xs.min() - 2 <= cx <= xs.max() + 3 and ys.min() - 2 <= cy <= ys.max() + 3
            seen += 1
        break
    assert seen > 0


def test_quad_is_refused(seg_root):
    loader, _ = create_dataloader(str(seg_root / "images" / "train"), 96, 4, 32, workers=0, quad=True)
    with pytest.raises(ValueError, match="quad"):
        next(iter(loader))


def test_shapes_seg_yaml_generates_polygons(tmp_path):
    cfg = yaml.safe_load(open("data/shapes-seg.yaml"))
    cfg.update(path=str(tmp_path / "shapes-seg"), generate={**cfg["generate"], "train": 2, "val": 2, "imgsz": 64})
    data = check_dataset(cfg)
    lines = (tmp_path / "shapes-seg" / "labels" / "val" / "000000.txt").read_text().splitlines()
    assert data["nc"] == 6 and all(len(x.split()) > 5 for x in lines)
