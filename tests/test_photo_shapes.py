"""utils/photo_shapes.py: small shapes on crops of photographs, train and val backgrounds kept apart."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from utils.general import check_dataset
from utils.photo_shapes import generate_photo_shapes, photo_crop, read_photo
from utils.shapes import make_shapes_image


def _photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (180, 240)) -> Path:
    """A textured stand-in photograph of one dominant colour (BGR), so each split's backgrounds can be told apart."""
    rng = np.random.default_rng(sum(colour))
    im = np.clip(np.array(colour, np.float32) + rng.normal(0, 12, (*size, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), im)
    return path


@pytest.fixture
def photos(tmp_path):
    train = [_photo(tmp_path / "red.png", (30, 30, 200)), _photo(tmp_path / "grey.png", (90, 90, 90), (96, 300))]
    val = [_photo(tmp_path / "blue.png", (200, 40, 30))]
    return train, val


def test_generates_labelled_small_objects_on_each_split_own_photos(tmp_path, photos):
    f = generate_photo_shapes(tmp_path / "set", *photos, train=6, val=4, imgsz=96, seed=1, object_px=(8, 20))
    meta = yaml.safe_load(f.read_text())
    assert meta["photos"] == {"train": ["red.png", "grey.png"], "val": ["blue.png"]}
    data = check_dataset(str(f))  # loads as any dataset YAML
    assert data["nc"] == 6
    root = Path(meta["path"])
    n_labels = 0
    for split, n in (("train", 6), ("val", 4)):
        images = sorted((root / "images" / split).glob("*.jpg"))
        assert len(images) == n
        for im_file in images:
            rows = np.loadtxt(root / "labels" / split / f"{im_file.stem}.txt", ndmin=2).reshape(-1, 5)
            n_labels += len(rows)
            assert ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all() and (rows[:, 0] < 6).all()
            assert (rows[:, 3:] * 96 <= 20 + 2).all()  # small: at most the largest size asked for (+ rasterising)
    assert n_labels >= 10
    # val backgrounds come from the blue photograph only, train ones never do
    val_mean = np.mean([cv2.imread(str(p)).reshape(-1, 3).mean(0) for p in (root / "images/val").glob("*.jpg")], 0)
    train_blue = [cv2.imread(str(p)).reshape(-1, 3).mean(0) for p in (root / "images/train").glob("*.jpg")]
    assert val_mean[0] > 150 and all(m[0] < 120 for m in train_blue)
    # a second call keeps the set as it is
    stamp = f.stat().st_mtime_ns
    assert generate_photo_shapes(tmp_path / "set", *photos) == f and f.stat().st_mtime_ns == stamp


def test_shared_photograph_is_refused(tmp_path, photos):
    train, _ = photos
    with pytest.raises(ValueError, match="red.png.*must stay apart"):
        generate_photo_shapes(tmp_path / "bad", train, [train[0]])
    assert not (tmp_path / "bad" / "photo_shapes.yaml").exists()


def test_bad_photographs_and_sizes_are_named(tmp_path, photos):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        read_photo(broken)
    tiny = _photo(tmp_path / "tiny.png", (0, 0, 0), (40, 40))
    with pytest.raises(ValueError, match="tiny.png: 40x40 is too small"):
        read_photo(tiny)
    with pytest.raises(ValueError, match="object sizes"):
        generate_photo_shapes(tmp_path / "big", *photos, imgsz=64, object_px=(8, 40))


def test_photo_crop_and_opaque_default_drawing():
    photo = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    crop = photo_crop(photo, 64, np.random.default_rng(3))
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    background = np.full((64, 64, 3), 77, np.uint8)
    img, labels = make_shapes_image(np.random.default_rng(5), 64, background=background, size_range=(0.2, 0.3),
                                    noise=False, opacity=(0.5, 0.5))
    assert len(labels) and np.array_equal(background, np.full((64, 64, 3), 77, np.uint8))  # the input is not drawn on
    c, x1, y1, x2, y2 = labels[0].astype(int)
    inside = img[y1:y2, x1:x2].reshape(-1, 3)
    drawn = inside[(inside != 77).any(1)]
    # half opacity: every drawn pixel lies half way between the background and a saturated colour
    assert len(drawn) and (np.abs(drawn.astype(int) - 77) <= 90).all()
