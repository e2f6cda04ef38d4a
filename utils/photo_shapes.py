"""A harder held-out detection set: small, partly transparent shapes on crops of real photographs.

The shapes dataset's backgrounds are smooth textures; INT8 accuracy measured on them says little about real images.
Here each image is a random crop of a photograph (rescaled, maybe mirrored), with the shapes classes drawn small
(13-51 px by default) and blended into it. Train and val splits take their photographs from disjoint lists, so
no val background was ever seen in training.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from utils import LOGGER
from utils.shapes import NAMES, make_shapes_image

OBJECT_PX = (13, 51)  # shape sizes in pixels: small objects at any image size
OPACITY = (0.6, 0.95)  # how much of the shape's colour covers the photograph


def read_photo(path: str | Path) -> np.ndarray:
    """A photograph as a BGR uint8 array (grey ones as three equal channels); ValueError naming an unreadable file."""
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        raise ValueError(f"{path}: not a readable image (OpenCV could not decode it)")
    if min(im.shape[:2]) < 64:
        raise ValueError(f"{path}: {im.shape[1]}x{im.shape[0]} is too small to crop backgrounds from (64 px or more)")
    return im


def photo_crop(photo: np.ndarray, imgsz: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of 40-100% of the photograph's short side, resized to imgsz, mirrored half the time."""
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.4, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(photo[y:y + side, x:x + side], (imgsz, imgsz), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1].copy() if rng.random() < 0.5 else crop


def write_photo_split(root: Path, split: str, photos: list[np.ndarray], n: int, imgsz: int, seed: int,
                      object_px: tuple[int, int] = OBJECT_PX) -> None:
    """n images with YOLO labels under root/images/split and root/labels/split, backgrounds from `photos`."""
    im_dir, lb_dir = root / "images" / split, root / "labels" / split
    im_dir.mkdir(parents=True, exist_ok=True)
    lb_dir.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(n), desc=f"Generating photo shapes {split}", bar_format="{l_bar}{bar:10}{r_bar}"):
        rng = np.random.default_rng([seed, ("train", "val", "test").index(split), i])  # one stream per image
        background = photo_crop(photos[i % len(photos)], imgsz, rng)
        img, labels = make_shapes_image(rng, imgsz, max_objects=8, background=background,
                                        size_range=(object_px[0] / imgsz, object_px[1] / imgsz), opacity=OPACITY)
        cv2.imwrite(str(im_dir / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows = [f"{int(c)} {(x1 + x2) / 2 / imgsz:.6f} {(y1 + y2) / 2 / imgsz:.6f} {(x2 - x1) / imgsz:.6f} "
                f"{(y2 - y1) / imgsz:.6f}" for c, x1, y1, x2, y2 in labels]
        (lb_dir / f"{i:06d}.txt").write_text("".join(r + "\n" for r in rows))


def generate_photo_shapes(root: str | Path, train_photos: list[str | Path], val_photos: list[str | Path],
                          train: int = 300, val: int = 100, imgsz: int = 640, seed: int = 0,
                          object_px: tuple[int, int] = OBJECT_PX) -> Path:
    """Write the dataset under root and its data YAML (root/photo_shapes.yaml, returned); an existing one is kept.

    train_photos and val_photos must not share a file: the val backgrounds stay unseen in training.
    """
    root = Path(root)
    f = root / "photo_shapes.yaml"
    if f.exists():
        LOGGER.info(f"Using the existing {f}")
        return f
    shared = {Path(p).resolve() for p in train_photos} & {Path(p).resolve() for p in val_photos}
    if shared:
        raise ValueError(f"photographs in both train and val: {', '.join(sorted(str(p) for p in shared))}; the val "
                         f"backgrounds must stay apart from training")
    if not train_photos or not val_photos:
        raise ValueError("generate_photo_shapes needs at least one train and one val photograph")
    if not 4 <= object_px[0] <= object_px[1] <= imgsz // 2:
        raise ValueError(f"object sizes {object_px} px: need 4 <= smallest <= largest <= {imgsz // 2} (half the image)")
    write_photo_split(root, "train", [read_photo(p) for p in train_photos], train, imgsz, seed, object_px)
    write_photo_split(root, "val", [read_photo(p) for p in val_photos], val, imgsz, seed, object_px)
    meta = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(NAMES)),
            "photos": {"train": [Path(p).name for p in train_photos], "val": [Path(p).name for p in val_photos]}}
    f.write_text(yaml.safe_dump(meta, sort_keys=False))
    LOGGER.info(f"Generated {train} train and {val} val photo-shapes images ({imgsz}x{imgsz}) in {root}")
    return f
