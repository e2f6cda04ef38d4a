"""Offline synthetic detection dataset: coloured geometric shapes on textured, noisy backgrounds.

Each class has its own geometry and its own hue (jittered), so a small model learns it quickly, while the
backgrounds, scale range (about 8-38% of the image side), rotation and partial overlaps keep it a real detection
task. Boxes are exact: the tight box of each shape's full drawn extent (amodal). Overlaps are limited so that
every shape keeps at least MIN_VISIBLE of its pixels; no shape is hidden enough to need dropping.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from utils import LOGGER

NAMES = ("circle", "square", "triangle", "star", "hexagon", "cross")
HUES = (0, 60, 120, 30, 150, 90)  # OpenCV hue (0-180): red, green, blue, yellow, magenta, cyan; 30 apart or more
SIZE_RANGE = (0.075, 0.375)  # shape size as a fraction of the image side: 24-120 px at 320
MIN_VISIBLE = 0.6  # fraction of a shape's pixels that must stay visible after later shapes overlap it
MAX_OBJECTS = 6


def _polygon(name: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-radius outline of a shape around the origin, (k, 2)."""
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack((np.cos(t), np.sin(t)), 1)
    if name in ("square", "triangle", "hexagon"):
        k = {"square": 4, "triangle": 3, "hexagon": 6}[name]
        t = np.arange(k) * 2 * np.pi / k
        return np.stack((np.cos(t), np.sin(t)), 1)
    if name == "star":
        t = np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.4, 0.5))
        return np.stack((r * np.cos(t), r * np.sin(t)), 1)
    if name == "cross":
        a = rng.uniform(0.3, 0.4)  # half-width of the bars
        xy = np.array([(a, 1), (a, a), (1, a), (1, -a), (a, -a), (a, -1), (-a, -1), (-a, -a), (-1, -a), (-1, a),
                       (-a, a), (-a, 1)], dtype=np.float64)
        return xy / np.hypot(a, 1)  # outer corners on the unit circle like every other shape
    raise ValueError(f"unknown shape '{name}', expected one of {NAMES}")


def _shape_mask(
    cls: int, size: float, center: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Boolean mask of one randomly rotated shape of class cls and size (px) at center, its top-left (x, y), outline."""
    pts = _polygon(NAMES[cls], rng)
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts = (pts @ rot.T) * (size / 2) + center
    x0, y0 = (int(v) for v in np.floor(pts.min(0)))
    x1, y1 = (int(v) + 2 for v in np.ceil(pts.max(0)))
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)  # drawn in its own window: cheap at any image size
    local = np.round((pts - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel corners
    cv2.fillPoly(mask, [local], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool), x0, y0, pts


def _background(imgsz: int, rng: np.random.Generator) -> np.ndarray:
    """Low-saturation textured background: base colour, smooth blotches, a gradient and grey clutter lines."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(0, 50), rng.integers(60, 200)]]], dtype=np.uint8)
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    blotch = cv2.resize(rng.normal(0, 25, (8, 8, 3)).astype(np.float32), (imgsz, imgsz), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(-1, 1, imgsz, dtype=np.float32) * rng.uniform(-30, 30)
    ramp = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    img = np.clip(base + blotch.mean(2, keepdims=True) * 0.5 + blotch * 0.5 + ramp, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, 9)):
        p1, p2 = rng.integers(0, imgsz, 2), rng.integers(0, imgsz, 2)
        grey = int(rng.integers(40, 220))
        cv2.line(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), (grey, grey, grey), int(rng.integers(1, 3)))
    return img


def make_shapes_image(rng: np.random.Generator, imgsz: int = 320, max_objects: int = MAX_OBJECTS,
                      noise: bool = True, polygons: list | None = None, background: np.ndarray | None = None,
                      size_range: tuple[float, float] = SIZE_RANGE, opacity: tuple[float, float] = (1.0, 1.0)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One BGR image and its labels (n, 5) as class, x1, y1, x2, y2 in pixels (x2, y2 exclusive).

    A list passed as polygons receives each label's exact outline, (k, 2) in pixels (circles as 64-gons).
    background (imgsz x imgsz BGR, e.g. a photograph) replaces the generated one; size_range is the shape size as a
    fraction of the image side; each shape is blended over the background at an opacity drawn from opacity.
    """
    img = _background(imgsz, rng) if background is None else background.copy()
    n_target = 0 if rng.random() < 0.03 else int(rng.integers(1, max_objects + 1))  # a few background images
    owner = np.full((imgsz, imgsz), -1, dtype=np.int32)  # index of the shape seen at each pixel
    areas, visible, classes, boxes = [], [], [], []
    lo, hi = size_range[0] * imgsz, size_range[1] * imgsz
    for _ in range(n_target * 10):  # placement attempts
        if len(classes) == n_target:
            break
        cls = int(rng.integers(0, len(NAMES)))
        size = math.exp(rng.uniform(math.log(lo), math.log(hi)))  # log-uniform: as many small as large shapes
        c = rng.uniform(size / 2 + 1, imgsz - size / 2 - 1, 2)
        mask, x0, y0, outline = _shape_mask(cls, size, (c[0], c[1]), rng)
        ys, xs = np.nonzero(mask)
        if len(xs) < 16 or x0 + xs.min() < 0 or y0 + ys.min() < 0 or x0 + xs.max() >= imgsz or y0 + ys.max() >= imgsz:
            continue
        ys, xs = ys + y0, xs + x0
        covered = np.bincount(owner[ys, xs] + 1, minlength=len(areas) + 1)[1:]  # pixels taken from each shape
        if any((v - k) < MIN_VISIBLE * a for v, k, a in zip(visible, covered, areas)):
            continue  # would hide too much of an earlier shape
        visible = [v - k for v, k in zip(visible, covered)]
        owner[ys, xs] = len(classes)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        areas.append(len(xs))
        visible.append(len(xs))
        classes.append(cls)
        if polygons is not None:
            polygons.append(outline)
        hsv = np.array([[[(HUES[cls] + rng.integers(-4, 5)) % 180, rng.integers(150, 256), rng.integers(150, 256)]]],
                       dtype=np.uint8)
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        if opacity != (1.0, 1.0):  # draws from rng only when asked, so the shapes datasets stay as they were
            a = rng.uniform(*opacity)
            colour = a * colour + (1 - a) * img[ys, xs].astype(np.float32)
        img[ys, xs] = colour.astype(np.uint8) if colour.ndim == 1 else np.round(colour).astype(np.uint8)
    if noise:
        sigma = rng.uniform(3, 10)
        jitter = rng.standard_normal(img.shape, dtype=np.float32) * sigma
        img = np.clip(img + jitter, 0, 255).astype(np.uint8)
    labels = np.array([(c, *b) for c, b in zip(classes, boxes)], dtype=np.float32).reshape(-1, 5)
    return img, labels


def _write_split(folder: Path, split: str, n: int, imgsz: int, seed: int, split_id: int,
                 segments: bool = False) -> None:
    """Write n images and labels of one split under folder/images/split and folder/labels/split.

    With segments, each label line is the shape's polygon (class x1 y1 x2 y2 ..., normalised) instead of its box.
    """
    im_dir, lb_dir = folder / "images" / split, folder / "labels" / split
    im_dir.mkdir(parents=True, exist_ok=True)
    lb_dir.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(n), desc=f"Generating shapes {split}", bar_format="{l_bar}{bar:10}{r_bar}"):
        rng = np.random.default_rng([seed, split_id, i])  # per-image stream: any image can be regenerated alone
        polygons = []
        img, labels = make_shapes_image(rng, imgsz, polygons=polygons)
        cv2.imwrite(str(im_dir / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        with open(lb_dir / f"{i:06d}.txt", "w") as f:
            for (c, x1, y1, x2, y2), poly in zip(labels, polygons):
                if segments:
                    xy = np.clip(poly / imgsz, 0, 1).reshape(-1)
                    f.write(f"{int(c)} " + " ".join(f"{v:.6f}" for v in xy) + "\n")
                else:
                    f.write(f"{int(c)} {(x1 + x2) / 2 / imgsz:.6f} {(y1 + y2) / 2 / imgsz:.6f} "
                            f"{(x2 - x1) / imgsz:.6f} {(y2 - y1) / imgsz:.6f}\n")


def generate_shapes_dataset(root: str | Path, train: int = 400, val: int = 100, test: int = 0, imgsz: int = 320,
                            seed: int = 0, segments: bool = False) -> Path:
    """Generate the shapes dataset into root (images/ and labels/ per split); splits already present are kept.

    Every split is written into a temporary sibling folder and renamed into place, so a concurrent or
    interrupted run never leaves a half-written split where a complete one is expected.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    splits = [(name, n, k) for k, (name, n) in enumerate((("train", train), ("val", val), ("test", test))) if n]
    todo = [s for s in splits if not (root / "images" / s[0]).exists()]
    if not todo:
        return root
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        for name, n, k in todo:
            _write_split(tmp, name, n, imgsz, seed, k, segments)
        for name, _, _ in todo:
            for sub in ("labels", "images"):  # images last: its presence marks a complete split
                dst = root / sub / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(tmp / sub / name, dst)
                except OSError:  # another process finished this split first; its copy is identical
                    if not dst.exists():
                        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(n for _, n, _ in todo)
    LOGGER.info(f"Generated {total} shapes images ({imgsz}x{imgsz}) in {root} in {time.time() - t0:.1f}s")
    return root


def save_samples(folder: str | Path, n: int = 4, imgsz: int = 320, seed: int = 2024) -> list[Path]:
    """Write n sample images (no labels) to folder, e.g. data/images for detect.py's default source."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        img, _ = make_shapes_image(np.random.default_rng([seed, i]), imgsz, max_objects=MAX_OBJECTS)
        files.append(folder / f"shapes_{i}.jpg")
        cv2.imwrite(str(files[-1]), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return files
