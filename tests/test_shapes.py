"""The offline shapes dataset: exact boxes, determinism, generation on first use through check_dataset."""

from pathlib import Path

import cv2
import numpy as np

from utils.dataloaders import LoadImagesAndLabels
from utils.general import check_dataset, yaml_load, yaml_save
from utils.shapes import HUES, NAMES, SIZE_RANGE, generate_shapes_dataset, make_shapes_image, save_samples

ROOT = Path(__file__).parents[1]


def test_boxes_are_tight_around_each_shape():
    for seed in range(30):
        img, labels = make_shapes_image(np.random.default_rng(seed), imgsz=128, max_objects=1, noise=False)
        if not len(labels):
            continue  # a background image
        c, x1, y1, x2, y2 = labels[0].astype(int)
        # shapes are convex or star-shaped around the box centre, so the centre pixel has the shape's colour
        colour = img[(y1 + y2) // 2, (x1 + x2) // 2]
        same = (img == colour).all(2)
        ys, xs = np.nonzero(same[max(y1 - 3, 0) : y2 + 3, max(x1 - 3, 0) : x2 + 3])
        x0, y0 = max(x1 - 3, 0), max(y1 - 3, 0)
        assert (xs.min() + x0, ys.min() + y0, xs.max() + x0 + 1, ys.max() + y0 + 1) == (x1, y1, x2, y2), f"seed {seed}"


def test_sizes_classes_and_overlaps_vary():
    sizes, classes, overlaps = [], set(), 0
    for seed in range(60):
        _, labels = make_shapes_image(np.random.default_rng(seed), imgsz=320)
        classes.update(int(c) for c in labels[:, 0])
        wh = labels[:, 3:5] - labels[:, 1:3]
        sizes += wh.max(1).tolist()
        boxes = labels[:, 1:5]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                overlaps += iw > 0 and ih > 0
        assert ((labels[:, 1:] >= 0) & (labels[:, 1:] <= 320)).all()
    assert classes == set(range(len(NAMES))) and len(NAMES) >= 6
    assert SIZE_RANGE[0] * 320 * 0.7 <= min(sizes) and max(sizes) <= SIZE_RANGE[1] * 320 + 1
    assert min(sizes) < 40 and max(sizes) > 90  # both small and large objects
    assert overlaps >= 5  # partial occlusion happens


def test_generation_is_deterministic_and_loadable(tmp_path):
    a = generate_shapes_dataset(tmp_path / "a", train=8, val=4, imgsz=64, seed=7)
    b = generate_shapes_dataset(tmp_path / "b", train=8, val=4, imgsz=64, seed=7)
    c = generate_shapes_dataset(tmp_path / "c", train=8, val=4, imgsz=64, seed=8)
    for split, n in (("train", 8), ("val", 4)):
        files = sorted((a / "labels" / split).glob("*.txt"))
        assert len(files) == n and len(list((a / "images" / split).glob("*.jpg"))) == n
        assert [f.read_text() for f in files] == [(b / "labels" / split / f.name).read_text() for f in files]
    texts_a = [f.read_text() for f in sorted((a / "labels" / "train").glob("*.txt"))]
    assert texts_a != [f.read_text() for f in sorted((c / "labels" / "train").glob("*.txt"))]
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*tmp*"))  # temp folders cleaned up
    ds = LoadImagesAndLabels(str(a / "images" / "train"), img_size=64)
    assert len(ds) == 8 and ds.shapes.tolist() == [[64, 64]] * 8


def test_existing_splits_are_kept(tmp_path):
    root = generate_shapes_dataset(tmp_path / "s", train=4, val=2, imgsz=64)
    f = root / "labels" / "train" / "000000.txt"
    f.write_text("0 0.5 0.5 0.1 0.1\n")
    generate_shapes_dataset(root, train=4, val=2, imgsz=64)
    assert f.read_text() == "0 0.5 0.5 0.1 0.1\n"


def test_check_dataset_generates_missing_dataset_once(tmp_path):
    cfg = yaml_load(ROOT / "data" / "shapes.yaml")
    cfg["path"] = "shapes-small"  # relative to the YAML's folder
    cfg["generate"].update(train=6, val=3, imgsz=64)
    yaml_file = tmp_path / "small.yaml"
    yaml_save(yaml_file, cfg)
    data = check_dataset(str(yaml_file))
    assert data["path"] == str(tmp_path / "shapes-small")
    assert data["train"] == str(tmp_path / "shapes-small" / "images" / "train")
    assert data["nc"] == 6 and data["names"] == dict(enumerate(NAMES)) and data["test"] is None
    assert len(list(Path(data["val"]).glob("*.jpg"))) == 3
    stamp = Path(data["val"]).stat().st_mtime_ns
    assert check_dataset(str(yaml_file))["val"] == data["val"]
    assert Path(data["val"]).stat().st_mtime_ns == stamp  # not generated twice


def test_shapes_yaml_describes_the_default_dataset():
    cfg = yaml_load(ROOT / "data" / "shapes.yaml")
    assert [cfg["names"][i] for i in range(len(NAMES))] == list(NAMES)
    assert cfg["generate"] == {"name": "shapes", "train": 400, "val": 100, "imgsz": 320, "seed": 0}
    assert cfg["path"] == "../datasets/shapes"  # ROOT/datasets/shapes, git-ignored


def test_save_samples(tmp_path):
    files = save_samples(tmp_path / "images", n=2, imgsz=64)
    assert [f.name for f in files] == ["shapes_0.jpg", "shapes_1.jpg"] and all(f.stat().st_size > 0 for f in files)


def test_each_class_has_its_own_hue():
    hues = {}
    for seed in range(40):
        img, labels = make_shapes_image(np.random.default_rng(seed), imgsz=96, max_objects=1, noise=False)
        for c, x1, y1, x2, y2 in labels.astype(int):
            centre = img[(y1 + y2) // 2, (x1 + x2) // 2][None, None]
            hues.setdefault(c, []).append(int(cv2.cvtColor(centre, cv2.COLOR_BGR2HSV)[0, 0, 0]))
    for c, hs in hues.items():
        assert all(min(abs(h - HUES[c]), 180 - abs(h - HUES[c])) <= 6 for h in hs), (NAMES[c], hs)
    assert min(min(abs(a - b), 180 - abs(a - b)) for i, a in enumerate(HUES) for b in HUES[i + 1 :]) >= 30
