"""shapes-mot: short offline tracking sequences with MOTChallenge ground truth, and YOLO labels to train on.

Coloured circles, squares and triangles move at constant velocity over a textured background that the camera pans
slowly across. Objects live in world coordinates, so panning moves them on screen too (what BoT-SORT's camera-motion
compensation corrects). Every sequence stages the hard cases on purpose: two shapes cross at the same height, the
later-drawn one hiding the other, and one shape leaves the frame and comes back. The rest bounce off the frame edges.

Layout of each sequence under root (MOTChallenge's, with images/ for img1/ so YOLO finds labels/ beside it):
    <seq>/images/000001.jpg ...   frames
    <seq>/labels/000001.txt ...   YOLO labels (objects at least MIN_VISIBLE visible)
    <seq>/gt/gt.txt               frame,id,x,y,w,h,consider,class,visibility (1-based frames, pixels, top-left)
    <seq>.mp4                     the frames as a video, the input track.py reads
    shapes-mot.yaml               dataset YAML for train.py / val.py (train: the first sequences, val: the last)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

NAMES = ("circle", "square", "triangle")
COLORS = ((40, 40, 220), (40, 190, 40), (220, 90, 30))  # BGR per class: red circles, green squares, blue triangles
MIN_VISIBLE = 0.2  # below this visible fraction a ground-truth row is marked 'not considered' (MOTChallenge col 7)
PAN = (0.6, 0.25)  # camera drift in px/frame (x, y)


@dataclass
class Shape:
    """One object: class, size (px), world position of its top-left corner and its velocity (px/frame)."""

    cls: int
    size: int
    pos: np.ndarray
    vel: np.ndarray
    bounces: bool = True  # False: free to leave the frame (and turned around once it has been out a while)
    out_frames: int = 0


def shape_mask(cls: int, size: int) -> np.ndarray:
    """The boolean size x size mask of a shape of class cls."""
    m = np.zeros((size, size), np.uint8)
    if cls == 0:
        cv2.circle(m, (size // 2, size // 2), size // 2, 1, -1)
    elif cls == 1:
        m[:] = 1
    else:
        cv2.fillPoly(m, [np.array([[size // 2, 0], [0, size - 1], [size - 1, size - 1]], np.int32)], 1)
    return m.astype(bool)


def make_shapes(rng: np.random.Generator, n: int, w: int, h: int, leaver: bool = True) -> list[Shape]:
    """n >= 3 shapes: 0 leaves and returns (bounces if not leaver), 1 and 2 cross at one height, the rest bounce."""
    size = lambda: int(rng.integers(22, 40))  # noqa: E731
    y = float(rng.uniform(0.3, 0.6) * h)
    shapes = [Shape(int(rng.integers(0, 3)), size(), np.array([w * 0.6, h * 0.15]), np.array([2.5, 0.3]), not leaver),
              Shape(int(rng.integers(0, 3)), size(), np.array([5.0, y]), np.array([2.0, 0.0])),
              Shape(int(rng.integers(0, 3)), size(), np.array([w - 45.0, y]), np.array([-2.0, 0.0]))]
    for _ in range(n - 3):
        s = size()
        pos = rng.uniform((0, 0), (w - s, h - s))
        shapes.append(Shape(int(rng.integers(0, 3)), s, pos, rng.uniform(-2.5, 2.5, 2)))
    return shapes


def step(shapes: list[Shape], cam: np.ndarray, w: int, h: int) -> None:
    """Move every shape one frame: bounce off the frame edges, or come back after 15 frames out of view."""
    for s in shapes:
        s.pos = s.pos + s.vel
        x, y = s.pos - cam
        if s.bounces:
            for axis, (v, hi) in enumerate(((x, w - s.size), (y, h - s.size))):
                if (v < 0 and s.vel[axis] < 0) or (v > hi and s.vel[axis] > 0):
                    s.vel[axis] = -s.vel[axis]
            continue
        out = x >= w or y >= h or x + s.size <= 0 or y + s.size <= 0
        s.out_frames = s.out_frames + 1 if out else 0
        if s.out_frames == 15:
            s.vel = -s.vel


def render(background: np.ndarray, shapes: list[Shape], cam: np.ndarray, w: int,
           h: int) -> tuple[np.ndarray, list[tuple[int, int, tuple[int, int, int, int], float]]]:
    """The frame seen from cam, and (index, class, clipped x1 y1 x2 y2, visible fraction) of each shape in view."""
    cx, cy = int(round(cam[0])), int(round(cam[1]))
    frame = background[cy:cy + h, cx:cx + w].copy()
    owner = np.full((h, w), -1, np.int32)  # the shape seen at each pixel: later shapes are drawn over earlier ones
    areas = []
    for i, s in enumerate(shapes):
        m = shape_mask(s.cls, s.size)
        x0, y0 = (int(round(v)) for v in s.pos - cam)
        areas.append(m.sum())
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + s.size, w), min(y0 + s.size, h)
        if xa >= xb or ya >= yb:
            continue
        sub = m[ya - y0:yb - y0, xa - x0:xb - x0]
        frame[ya:yb, xa:xb][sub] = COLORS[s.cls]
        owner[ya:yb, xa:xb][sub] = i
    visible = np.bincount(owner.ravel() + 1, minlength=len(shapes) + 1)[1:]
    objects = []
    for i, s in enumerate(shapes):  # every shape in the frame, hidden ones too (visible fraction 0)
        x0, y0 = (int(round(v)) for v in s.pos - cam)
        box = (max(x0, 0), max(y0, 0), min(x0 + s.size, w), min(y0 + s.size, h))  # amodal box, clipped to the frame
        if box[0] < box[2] and box[1] < box[3]:
            objects.append((i, s.cls, box, float(visible[i] / areas[i])))
    return frame, objects


def make_background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A low-contrast grey-brown texture (smooth blotches plus grain) large enough to pan across."""
    blotch = cv2.resize(rng.normal(0, 30, (h // 24 + 2, w // 24 + 2, 3)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    blotch = blotch.mean(2, keepdims=True) * 0.8 + blotch * 0.2  # mostly grey, so the shapes' colours stand out
    grain = rng.normal(0, 8, (h, w, 3)).astype(np.float32)
    return np.clip(120 + blotch + grain, 0, 255).astype(np.uint8)


def simulate(seed: int, frames: int = 120, w: int = 320, h: int = 256, objects: int = 6, leaver: bool = True):
    """Yield (frame number from 1, BGR frame, shapes in view as (index, class, x1 y1 x2 y2, visible fraction)).

    leaver=False keeps shape 0 in view: a motion-only tracker cannot know a shape coming back into view is the one
    that left (its track was predicted on, out of the frame), so it comes back under a new id.
    """
    if objects < 3:
        raise ValueError(f"shapes-mot needs at least 3 objects (a leaver and a crossing pair), got {objects}")
    rng = np.random.default_rng(seed)
    margin = np.ceil(np.array(PAN) * frames).astype(int) + 2
    background = make_background(rng, w + margin[0], h + margin[1])
    shapes = make_shapes(rng, objects, w, h, leaver)
    for t in range(1, frames + 1):
        cam = np.array(PAN) * (t - 1)
        yield (t, *render(background, shapes, cam, w, h))
        step(shapes, cam + np.array(PAN), w, h)


def write_sequence(folder: Path, seed: int, frames: int = 120, w: int = 320, h: int = 256, objects: int = 6,
                   fps: float = 30.0) -> Path:
    """Generate one sequence into folder (images/, labels/, gt/gt.txt) and folder.mp4; returns the video's path."""
    for sub in ("images", "labels", "gt"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    video = cv2.VideoWriter(str(folder.with_suffix(".mp4")), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    gt = []
    for t, frame, seen in simulate(seed, frames, w, h, objects):
        labels = []
        for i, cls, (x1, y1, x2, y2), vis in seen:
            gt.append(f"{t},{i + 1},{x1},{y1},{x2 - x1},{y2 - y1},{int(vis >= MIN_VISIBLE)},{cls + 1},{vis:.3f}")
            if vis >= MIN_VISIBLE:
                labels.append(f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
                              f"{(y2 - y1) / h:.6f}")
        cv2.imwrite(str(folder / "images" / f"{t:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (folder / "labels" / f"{t:06d}.txt").write_text("".join(x + "\n" for x in labels))
        video.write(frame)
    video.release()
    (folder / "gt" / "gt.txt").write_text("".join(x + "\n" for x in gt))
    return folder.with_suffix(".mp4")


def generate_shapes_mot(root: str | Path, sequences: int = 4, frames: int = 120, w: int = 320, h: int = 256,
                        objects: int = 6, seed: int = 0) -> Path:
    """Write sequences seq-00 ... under root and a shapes-mot.yaml (the last sequence is val); returns the YAML."""
    root = Path(root).resolve()
    names = [f"seq-{k:02d}" for k in range(sequences)]
    for k, name in enumerate(names):
        write_sequence(root / name, seed * 1000 + k, frames, w, h, objects)
    train = names[:-1] if sequences > 1 else names
    lines = [f"path: {root}", "train: [" + ", ".join(f"{n}/images" for n in train) + "]", f"val: {names[-1]}/images",
             "names:"] + [f"  {i}: {n}" for i, n in enumerate(NAMES)]
    yaml_file = root / "shapes-mot.yaml"
    yaml_file.write_text("\n".join(lines) + "\n")
    return yaml_file


def run(root: str | Path = "datasets/shapes-mot", sequences: int = 4, frames: int = 120, width: int = 320,
        height: int = 256, objects: int = 6, seed: int = 0) -> Path:
    """Generate the shapes-mot sequences; returns the dataset YAML."""
    return generate_shapes_mot(root, sequences, frames, width, height, objects, seed)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of run()."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="datasets/shapes-mot", help="output folder")
    parser.add_argument("--sequences", type=int, default=4, help="number of sequences (the last is the val split)")
    parser.add_argument("--frames", type=int, default=120, help="frames per sequence")
    parser.add_argument("--width", type=int, default=320, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=256, help="frame height in pixels")
    parser.add_argument("--objects", type=int, default=6, help="shapes per sequence (at least 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    from utils.general import LOGGER, set_logging

    set_logging()
    LOGGER.info(f"shapes-mot written: {run(**vars(parse_opt()))}")
