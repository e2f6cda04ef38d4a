"""LoadImagesAndLabels, collate functions, image caches and loaders, on tiny generated datasets."""

import logging
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from utils.dataloaders import InfiniteDataLoader, LoadImagesAndLabels, create_dataloader
from utils.general import segments2boxes, yaml_load
from utils.shapes import generate_shapes_dataset

HYP = Path(__file__).parents[1] / "data" / "hyps" / "hyp.scratch-low.yaml"
NO_AUG = {k: 0.0 for k in ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective",
                           "flipud", "fliplr", "mosaic", "mixup", "copy_paste")}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    """12 train and 4 val shapes images of 96 px."""
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes") / "shapes", train=12, val=4, imgsz=96, seed=3)


def make_dataset(root, items, ext=".png"):
    """Write images with one white box each: items are (h, w, (x1, y1, x2, y2)); returns the images folder."""
    im_dir, lb_dir = root / "images", root / "labels"
    im_dir.mkdir(parents=True)
    lb_dir.mkdir(parents=True)
    for i, (h, w, (x1, y1, x2, y2)) in enumerate(items):
        im = np.zeros((h, w, 3), np.uint8)
        im[y1:y2, x1:x2] = 255
        cv2.imwrite(str(im_dir / f"{i:03d}{ext}"), im)
        xc, yc, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        (lb_dir / f"{i:03d}.txt").write_text(f"{i % 3} {xc:.6f} {yc:.6f} {bw:.6f} {bh:.6f}\n")
    return im_dir


def pixel_box(chw, xywhn):
    """Mean brightness inside a normalised box, and the fraction of bright pixels the box leaves out."""
    im = chw.numpy().min(0)  # white pixels are bright in every channel
    h, w = im.shape
    xc, yc, bw, bh = xywhn
    x1, y1, x2, y2 = int(round((xc - bw / 2) * w)), int(round((yc - bh / 2) * h)), int(round((xc + bw / 2) * w)), \
        int(round((yc + bh / 2) * h))
    inside = im[y1:y2, x1:x2]
    bright = im > 200
    outside = bright.sum() - (inside > 200).sum()
    return inside.mean(), outside / max(bright.sum(), 1)


# items --------------------------------------------------------------------------------------------------------


def test_items_match_label_files(shapes_root):
    ds = LoadImagesAndLabels(str(shapes_root / "images" / "train"), img_size=96, batch_size=4)
    assert len(ds) == 12 and len(ds.im_files) == len(ds.label_files) == len(ds.labels) == len(ds.shapes) == 12
    assert ds.shapes.shape == (12, 2) and (ds.shapes == 96).all()
    for i in range(len(ds)):
        im, labels, path, shapes = ds[i]
        assert im.shape == (3, 96, 96) and im.dtype == torch.uint8
        assert path == ds.im_files[i] and Path(ds.label_files[i]).stem == Path(path).stem
        on_disk = np.loadtxt(ds.label_files[i], ndmin=2).reshape(-1, 5)
        assert labels.shape == (len(on_disk), 6) and (labels[:, 0] == 0).all()
        np.testing.assert_allclose(labels[:, 1:].numpy(), on_disk, atol=2e-5)  # clip at 1 - 1e-3/96
        assert shapes == ((96, 96), ((1.0, 1.0), (0.0, 0.0)))
        bgr = cv2.imread(path)
        np.testing.assert_array_equal(im.numpy(), bgr.transpose(2, 0, 1)[::-1])  # RGB, channels first


def test_letterbox_path_boxes_follow_pixels(tmp_path):
    im_dir = make_dataset(tmp_path, [(60, 120, (10, 20, 50, 40)), (120, 60, (5, 70, 45, 110))])
    ds = LoadImagesAndLabels(str(im_dir), img_size=96, batch_size=2)
    for i in range(2):
        im, labels, _, ((h0, w0), ((gh, gw), (dw, dh))) = ds[i]
        assert im.shape == (3, 96, 96)
        assert (gh, gw) == (0.8, 0.8) and min(dw, dh) == 0 and max(dw, dh) == 24
        mean_inside, left_out = pixel_box(im, labels[0, 2:].tolist())
        assert mean_inside > 200 and left_out < 0.05


def test_flips_boxes_follow_pixels(tmp_path):
    im_dir = make_dataset(tmp_path, [(64, 64, (4, 8, 24, 20))])
    hyp = dict(NO_AUG, fliplr=1.0, flipud=1.0)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=1, augment=True, hyp=hyp)
    im, labels, _, _ = ds[0]
    np.testing.assert_allclose(labels[0, 2:].numpy(), [1 - 14 / 64, 1 - 14 / 64, 20 / 64, 12 / 64], atol=1e-5)
    mean_inside, left_out = pixel_box(im, labels[0, 2:].tolist())
    assert mean_inside > 200 and left_out == 0


def test_mosaic_boxes_follow_pixels(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for _ in range(6):
        x1, y1 = rng.integers(0, 30, 2)
        items.append((64, 64, (int(x1), int(y1), int(x1) + 20, int(y1) + 24)))
    im_dir = make_dataset(tmp_path, items)
    hyp = dict(NO_AUG, mosaic=1.0, translate=0.1, scale=0.3)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2, augment=True, hyp=hyp)
    random.seed(0)
    np.random.seed(0)
    seen = 0
    for _ in range(10):
        im, labels, _, shapes = ds[0]
        assert im.shape == (3, 64, 64) and shapes is None
        assert ((labels[:, 2:] >= 0) & (labels[:, 2:] <= 1)).all()
        bright = im.numpy().min(0) > 200
        covered = np.zeros_like(bright)
        for xc, yc, w, h in labels[:, 2:].tolist():
            x1, y1, x2, y2 = (int(round(v * 64)) for v in (xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2))
            assert im.numpy().min(0)[y1:y2, x1:x2].mean() > 150  # boxes hold the white pixels
            covered[y1:y2, x1:x2] = True
            seen += 1
        # an object without a box may only be a remnant cut at the border (dropped as under 10% of its area)
        _, comp, stats, _ = cv2.connectedComponentsWithStats((bright & ~covered).astype(np.uint8))
        for x, y, w, h, _ in stats[1:]:
            assert x == 0 or y == 0 or x + w == 64 or y + h == 64
    assert seen >= 10


def test_augmented_training_item_with_full_hyp(shapes_root):
    hyp = yaml_load(HYP)
    hyp.update(mixup=1.0, copy_paste=0.5, degrees=10, shear=5, perspective=0.0005)
    ds = LoadImagesAndLabels(str(shapes_root / "images" / "train"), img_size=96, batch_size=4, augment=True, hyp=hyp)
    for i in range(4):
        im, labels, _, _ = ds[i]
        assert im.shape == (3, 96, 96)
        assert labels.shape[1] == 6 and ((labels[:, 2:] >= 0) & (labels[:, 2:] <= 1)).all()
        assert ((labels[:, 1] >= 0) & (labels[:, 1] < 6)).all()


# collate ------------------------------------------------------------------------------------------------------


def test_collate_fn_writes_batch_index(shapes_root):
    ds = LoadImagesAndLabels(str(shapes_root / "images" / "train"), img_size=96, batch_size=4)
    batch = [ds[i] for i in range(4)]
    counts = [len(b[1]) for b in batch]
    im, labels, paths, shapes = LoadImagesAndLabels.collate_fn(batch)
    assert im.shape == (4, 3, 96, 96) and len(paths) == len(shapes) == 4
    np.testing.assert_array_equal(labels[:, 0].numpy(), np.repeat(np.arange(4), counts))


def test_collate_fn4_tiles_or_upscales(shapes_root):
    ds = LoadImagesAndLabels(str(shapes_root / "images" / "train"), img_size=96, batch_size=8)
    batch = [ds[i] for i in range(8)]
    n_labels = [len(b[1]) for b in batch]
    branches = set()
    for seed in range(20):
        random.seed(seed)
        copies = [(a.clone(), b.clone(), c, d) for a, b, c, d in batch]  # collate writes into the labels
        im, labels, paths, shapes = LoadImagesAndLabels.collate_fn4(copies)
        assert im.shape == (2, 3, 192, 192) and len(paths) == len(shapes) == 2
        assert ((labels[:, 2:] >= 0) & (labels[:, 2:] <= 1)).all()
        for q in range(2):
            nq = int((labels[:, 0] == q).sum())
            if nq == sum(n_labels[4 * q : 4 * q + 4]) and torch.equal(im[q, :, :96, :96], batch[4 * q][0]):
                branches.add("tile")
                np.testing.assert_array_equal(im[q, :, 96:, :96], batch[4 * q + 1][0])  # second image below
                np.testing.assert_array_equal(im[q, :, :96, 96:], batch[4 * q + 2][0])  # third to the right
                below = labels[labels[:, 0] == q][n_labels[4 * q] : n_labels[4 * q] + n_labels[4 * q + 1]]
                np.testing.assert_allclose(below[:, 3], (batch[4 * q + 1][1][:, 3] + 1) / 2, atol=1e-6)
            else:
                branches.add("upscale")
                assert nq == n_labels[4 * q]
                np.testing.assert_allclose(labels[labels[:, 0] == q][:, 1:], batch[4 * q][1][:, 1:], atol=1e-6)
    assert branches == {"tile", "upscale"}


# rect, filters, weights -------------------------------------------------------------------------------------


def test_rect_batches_have_stride_aligned_shapes(tmp_path):
    items = [(40, 80, (0, 0, 20, 20)), (80, 40, (0, 0, 20, 20)), (60, 80, (0, 0, 20, 20)), (80, 60, (0, 0, 20, 20))]
    im_dir = make_dataset(tmp_path, items)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2, rect=True, stride=32, pad=0.0)
    ar = ds.shapes[:, 1] / ds.shapes[:, 0]
    assert (np.diff(ar) >= 0).all()  # sorted by aspect ratio, labels kept with their images
    for f, lb in zip(ds.im_files, ds.labels):
        np.testing.assert_allclose(lb, np.loadtxt(f.replace("images", "labels").replace(".png", ".txt"), ndmin=2))
    assert (ds.batch_shapes % 32 == 0).all()
    np.testing.assert_array_equal(ds.batch_shapes, [[64, 64], [64, 64]])
    ds.img_size = 128
    ds._set_rect_shapes()
    np.testing.assert_array_equal(ds.batch_shapes, [[96, 128], [128, 96]])
    for i in range(4):
        im, labels, _, _ = ds[i]
        assert list(im.shape[1:]) == ds.batch_shapes[ds.batch[i]].tolist()


def test_min_items_and_single_cls(shapes_root):
    path = str(shapes_root / "images" / "train")
    full = LoadImagesAndLabels(path, img_size=96)
    ds = LoadImagesAndLabels(path, img_size=96, min_items=3, single_cls=True)
    assert len(ds) == sum(len(lb) >= 3 for lb in full.labels) < len(full)
    assert all((lb[:, 0] == 0).all() for lb in ds.labels)


def test_image_weights_use_plain_loader_and_indices(shapes_root):
    loader, ds = create_dataloader(str(shapes_root / "images" / "train"), 96, 4, 32, image_weights=True, rect=True,
                                   workers=0)
    assert type(loader) is DataLoader and not ds.rect
    ds.indices = np.full(len(ds), 5)  # what train.py does with class-weighted sampling
    assert ds[0][2] == ds.im_files[5] and ds[3][2] == ds.im_files[5]


def test_create_dataloader_drops_only_out_of_range_lines(shapes_root):
    path = str(shapes_root / "images" / "train")
    full = LoadImagesAndLabels(path, img_size=96)
    loader, ds = create_dataloader(path, 96, 4, 32, nc=3, workers=0)
    assert ds.im_files == full.im_files  # every image stays
    for a, b in zip(ds.labels, full.labels):
        np.testing.assert_array_equal(a, b[b[:, 0] < 3])
    assert sum(len(b[1]) for b in loader) == sum(int((lb[:, 0] < 3).sum()) for lb in full.labels)


def test_path_forms_txt_list_and_list_of_dirs(shapes_root, tmp_path):
    train = shapes_root / "images" / "train"
    files = sorted(train.glob("*.jpg"))
    lst = shapes_root / "subset.txt"
    lst.write_text("\n".join(f"./images/train/{f.name}" for f in files[:5]) + f"\n{files[0]}\n")
    ds = LoadImagesAndLabels(str(lst), img_size=96)
    assert len(ds) == 5  # relative entries resolved against the list's folder, the duplicate removed
    assert (shapes_root / "subset.cache").is_file()
    both = LoadImagesAndLabels([str(train), str(shapes_root / "images" / "val")], img_size=96)
    assert len(both) == 16


# caches -------------------------------------------------------------------------------------------------------


def test_cache_ram_gives_identical_items(shapes_root):
    path = str(shapes_root / "images" / "val")
    plain = LoadImagesAndLabels(path, img_size=64)
    cached = LoadImagesAndLabels(path, img_size=64, cache_images="ram")
    assert all(im is not None for im in cached.ims)
    for i in range(len(plain)):
        assert torch.equal(plain[i][0], cached[i][0])


def test_cache_disk_writes_npy_and_refreshes_stale(tmp_path):
    im_dir = make_dataset(tmp_path, [(40, 60, (5, 5, 20, 20)), (50, 50, (10, 10, 30, 30))])
    plain = LoadImagesAndLabels(str(im_dir), img_size=64)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, cache_images="disk")
    npy = [Path(f) for f in ds.npy_files]
    assert all(f.is_file() for f in npy) and ds.npy_valid.all()
    np.testing.assert_array_equal(np.load(npy[0]), cv2.imread(ds.im_files[0]))
    for i in range(2):
        assert torch.equal(plain[i][0], ds[i][0])

    # the source changes after caching: the .npy must be rebuilt, not trusted
    new = np.full((40, 60, 3), 77, np.uint8)
    cv2.imwrite(ds.im_files[0], new)
    os.utime(ds.im_files[0], ns=(npy[0].stat().st_mtime_ns + 10**9,) * 2)
    np.save(npy[1], np.zeros((3, 3, 3), np.uint8))  # wrong shape: rebuilt too
    ds2 = LoadImagesAndLabels(str(im_dir), img_size=64, cache_images="disk")
    assert np.load(npy[1]).shape == (50, 50, 3)
    npy[1].write_bytes(npy[1].read_bytes()[:50])  # damaged file: rebuilt, not a crash
    ds2 = LoadImagesAndLabels(str(im_dir), img_size=64, cache_images="disk")
    np.testing.assert_array_equal(np.load(npy[0]), new)
    assert np.load(npy[1]).shape == (50, 50, 3)
    assert (ds2[0][0][:, 32, 32] == 77).all()


def test_unknown_cache_mode_is_an_error(shapes_root):
    with pytest.raises(ValueError, match="cache_images='gpu'"):
        LoadImagesAndLabels(str(shapes_root / "images" / "val"), img_size=64, cache_images="gpu")


# loaders ------------------------------------------------------------------------------------------------------


class PidDataset(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return os.getpid()


def test_infinite_dataloader_keeps_its_workers():
    loader = InfiniteDataLoader(PidDataset(), batch_size=2, num_workers=2)
    first = {int(p) for batch in loader for p in batch}
    second = {int(p) for batch in loader for p in batch}
    assert len(loader) == 4
    assert first == second and os.getpid() not in first and len(first) == 2


def test_seeded_loaders_are_reproducible(shapes_root):
    path, hyp = str(shapes_root / "images" / "train"), yaml_load(HYP)

    def first_batch(seed):
        loader, _ = create_dataloader(path, 64, 4, 32, hyp=hyp, augment=True, workers=2, shuffle=True, seed=seed)
        im, labels, paths, _ = next(iter(loader))
        return im, labels, paths

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert not torch.equal(a[0], c[0])


def test_distributed_sampler_under_ddp(shapes_root, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader, ds = create_dataloader(str(shapes_root / "images" / "val"), 64, 2, 32, rank=0, workers=0,
                                       shuffle=True)
        assert isinstance(loader.sampler, DistributedSampler)
        assert sorted(p for batch in loader for p in batch[2]) == sorted(ds.im_files)
    finally:
        dist.destroy_process_group()


def test_create_dataloader_returns_loader_and_dataset(shapes_root):
    loader, ds = create_dataloader(str(shapes_root / "images" / "train"), 96, 16, 32, workers=0, quad=False)
    assert isinstance(loader, InfiniteDataLoader) and isinstance(ds, LoadImagesAndLabels)
    assert loader.batch_size == 12  # never more than the dataset holds
    loader4, _ = create_dataloader(str(shapes_root / "images" / "train"), 96, 8, 32, workers=0, quad=True)
    im, labels, paths, shapes = next(iter(loader4))
    assert im.shape == (2, 3, 192, 192)


# polygon labels, bad classes, copy-paste, resize rule ---------------------------------------------------------


def polygon_dataset(root):
    """Two 100x50 images: one label file mixing polygon and box lines, one with boxes only."""
    im_dir, lb_dir = root / "images", root / "labels"
    im_dir.mkdir(parents=True)
    lb_dir.mkdir(parents=True)
    for name in ("mixed", "boxes"):
        cv2.imwrite(str(im_dir / f"{name}.png"), np.zeros((50, 100, 3), np.uint8))
    (lb_dir / "mixed.txt").write_text("0 0.1 0.2 0.5 0.2 0.3 0.8\n"  # triangle
                                      "1 0.6 0.5 0.2 0.4\n"  # box
                                      "2 0.7 0.1 0.9 0.1 0.9 0.3 0.7 0.3\n")  # square
    (lb_dir / "boxes.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    return im_dir


def test_polygon_labels_become_their_extent_and_are_cached(tmp_path, monkeypatch):
    im_dir = polygon_dataset(tmp_path)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2)
    assert [Path(f).stem for f in ds.im_files] == ["boxes", "mixed"]
    # extents by hand: triangle x 0.1-0.5, y 0.2-0.8; square x 0.7-0.9, y 0.1-0.3
    np.testing.assert_allclose(ds.labels[1], [[0, 0.3, 0.5, 0.4, 0.6], [1, 0.6, 0.5, 0.2, 0.4],
                                              [2, 0.8, 0.2, 0.2, 0.2]], atol=1e-6)
    assert ds.segments[0] == []  # box-only file
    assert [s.shape for s in ds.segments[1]] == [(3, 2), (0, 2), (4, 2)]  # the box line has no polygon
    np.testing.assert_allclose(ds.segments[1][0], [[0.1, 0.2], [0.5, 0.2], [0.3, 0.8]], atol=1e-7)

    def no_scan(*args, **kwargs):
        raise AssertionError("cache should have been used")

    monkeypatch.setattr("utils.dataloaders.scan_labels", no_scan)
    cached = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2)
    assert cached.segments[0] == [] and len(cached.segments[1]) == 3
    for a, b in zip(cached.segments[1], ds.segments[1]):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_polygons_follow_letterbox_and_flips(tmp_path):
    im_dir = polygon_dataset(tmp_path)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2, augment=True,
                             hyp=dict(NO_AUG, fliplr=1.0, flipud=1.0))
    img, labels, segments, _, _ = ds.load_sample(1)
    # random_perspective (identity here) resamples polygons to 1000 points; the triangle's corners are 0, 333, 666
    assert img.shape == (3, 64, 64) and [len(s) for s in segments] == [1000, 0, 1000]
    # letterbox 100x50 -> 64x32 with 16 px above: y' = (16 + 32 y) / 64, then both flips
    tri = np.array([[0.1, 0.2], [0.5, 0.2], [0.3, 0.8]])
    expected = np.stack((1 - tri[:, 0], 1 - (16 + 32 * tri[:, 1]) / 64), 1)
    np.testing.assert_allclose(segments[0][[0, 333, 666]], expected, atol=1e-6)
    boxes = segments2boxes([segments[0], segments[2]])
    np.testing.assert_allclose(labels[[0, 2], 2:].numpy(), boxes, atol=1e-6)  # boxes stay the polygon extents


def test_mosaic_boxes_are_polygon_extents(tmp_path):
    im_dir = polygon_dataset(tmp_path)
    hyp = dict(NO_AUG, mosaic=1.0, degrees=30, scale=0.3, translate=0.1)
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2, augment=True, hyp=hyp)
    random.seed(1)
    checked = 0
    for _ in range(10):
        img, labels, segments, _, _ = ds.load_sample(1)
        assert len(segments) == len(labels)
        for lb, seg in zip(labels.numpy(), segments):
            if len(seg):  # only the points inside the image count, as in YOLOv5
                inside = seg[((seg >= 0) & (seg <= 1)).all(1)]
                lo, hi = inside.min(0), inside.max(0)
                np.testing.assert_allclose(lb[2:], [*(lo + hi) / 2, *(hi - lo)], atol=2e-3)
                checked += 1
    assert checked >= 10


def test_bad_class_lines_cost_only_the_line_in_train_and_val_loaders(tmp_path, caplog):
    im_dir, lb_dir = tmp_path / "images", tmp_path / "labels"
    im_dir.mkdir()
    lb_dir.mkdir()
    for name in ("bad", "good"):
        cv2.imwrite(str(im_dir / f"{name}.png"), np.zeros((64, 64, 3), np.uint8))
    (lb_dir / "good.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (lb_dir / "bad.txt").write_text("0 0.3 0.3 0.2 0.2\n7 0.5 0.5 0.2 0.2\n-1 0.5 0.5 0.2 0.2\n"
                                    "1.5 0.5 0.5 0.2 0.2\n2 0.7 0.7 0.2 0.2\n9 0.6 0.6 0.1 0.1\n")
    as_train = dict(hyp=dict(NO_AUG, mosaic=0.0), augment=True, shuffle=True)  # train.py's arguments, minus mosaic
    as_val = dict(pad=0.5, rect=True)  # val.py's arguments
    for i, kwargs in enumerate((as_train, as_val)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="yolov5"):
            loader, ds = create_dataloader(str(im_dir), 64, 2, 32, nc=3, workers=0, **kwargs)
        bad = [r.getMessage() for r in caplog.records if "bad.txt" in r.getMessage()]
        parse = [m for m in bad if "not a non-negative integer" in m]
        over = [m for m in bad if "exceeds nc=3" in m]
        assert len(parse) == len(over) == 1 and len(bad) == 2  # once per file and reason
        assert "class ['-1', '1.5']" in parse[0] and "2 label line(s) ignored" in parse[0]
        assert "class [7, 9]" in over[0] and "bad.png keeps its other 2 label(s)" in over[0]
        assert [Path(f).stem for f in ds.im_files] == ["bad", "good"]
        np.testing.assert_allclose(ds.labels[0], [[0, 0.3, 0.3, 0.2, 0.2], [2, 0.7, 0.7, 0.2, 0.2]])
        targets = torch.cat([b[1] for b in loader])
        assert sorted(targets[:, 1].tolist()) == [0, 1, 2]  # instances the loader hands to train/val
        assert i == 1 or ds.augment


def test_copy_paste_needs_polygons(tmp_path):
    hyp = dict(NO_AUG, mosaic=1.0, copy_paste=1.0)
    boxes = make_dataset(tmp_path / "b", [(64, 64, (4, 8, 24, 20)), (64, 64, (30, 30, 50, 60))])
    plain = LoadImagesAndLabels(str(boxes), img_size=64, batch_size=2, augment=True, hyp=dict(hyp, copy_paste=0.0))
    pasted = LoadImagesAndLabels(str(boxes), img_size=64, batch_size=2, augment=True, hyp=hyp)
    for seed in range(4):  # box-only labels: copy_paste=1 changes nothing, not even the random stream
        random.seed(seed)
        a = plain[0]
        random.seed(seed)
        b = pasted[0]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    polys = LoadImagesAndLabels(str(polygon_dataset(tmp_path / "p")), img_size=64, batch_size=2, augment=True,
                                hyp=hyp)
    polys_plain = LoadImagesAndLabels(str(tmp_path / "p" / "images"), img_size=64, batch_size=2, augment=True,
                                      hyp=dict(hyp, copy_paste=0.0))
    added = 0
    for seed in range(4):
        random.seed(seed)
        n0 = len(polys_plain[1][1])
        random.seed(seed)
        img, labels, segments, _, _ = polys.load_sample(1)
        added += len(labels) - n0
        assert len(segments) == len(labels)
    assert added > 0


def test_load_image_floors_the_resized_size(tmp_path):
    im_dir = make_dataset(tmp_path, [(200, 300, (10, 10, 50, 50)), (300, 200, (10, 10, 50, 50))])
    ds = LoadImagesAndLabels(str(im_dir), img_size=64, batch_size=2)
    # 200 * 64 / 300 = 42.67: floored to 42 (rounding gave 43)
    im, hw0, hw = ds.load_image(0)
    assert im.shape[:2] == hw == (42, 64) and hw0 == (200, 300)
    assert ds.load_image(1)[2] == (64, 42)
    _, _, _, ((h0, w0), (ratio, pad)) = ds[0]
    assert ratio == (42 / 200, 64 / 300) and pad == (0.0, 11.0)  # 64 - 42 = 22 px of padding, 11 on each side
