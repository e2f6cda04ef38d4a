"""COCO-style JSON annotations to YOLO labels: COCO itself (91-to-80 class map, polygons), Objects365, Argoverse-HD."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from utils import LOGGER, TQDM_BAR_FORMAT
from utils.converters import ConvertReport, label_line, xyxy_to_yolo

COCO91_UNUSED = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)  # category ids of the 2014 paper with no 2017 annotations
ARGOVERSE_SIZE = (1920, 1200)  # ring-front-center camera frames, when the JSON gives no size


def coco80_to_coco91_class() -> list[int]:
    """COCO category id (1..90) of each of the 80 detection classes, in order."""
    return [i for i in range(1, 91) if i not in COCO91_UNUSED]


def coco91_to_coco80_class() -> list[int | None]:
    """Index by category id - 1 (91 entries): the 80-class index, or None for ids that were never annotated."""
    out: list[int | None] = [None] * 91
    for j, i in enumerate(coco80_to_coco91_class()):
        out[i - 1] = j
    return out


def load_json(file: str | Path) -> dict:
    """Read a JSON annotation file, naming it on a parse error."""
    try:
        with open(file) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from e


def merge_polygons(parts: list[np.ndarray]) -> np.ndarray:
    """Join polygon parts into one outline: each part is entered and left at its point nearest the outline so far."""
    out = parts[0]
    for part in parts[1:]:
        d = ((out[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        a, b = np.unravel_index(d.argmin(), d.shape)
        loop = np.concatenate([part[b:], part[: b + 1]])  # around the part, back to its entry point
        out = np.concatenate([out[: a + 1], loop, out[a:]])
    return out


def _polygon(ann: dict, w: float, h: float) -> np.ndarray | None:
    """Normalised (n, 2) polygon of an annotation's 'segmentation' list, None if it has none."""
    seg = ann.get("segmentation")
    if not isinstance(seg, list) or not seg:
        return None
    parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg if len(p) >= 6]
    if not parts:
        return None
    return (merge_polygons(parts) / np.array([w, h])).clip(0, 1)


def coco_to_labels(data: dict, labels_dir: Path, class_of: Callable[[int], int | None], report: ConvertReport,
                   images_dir: Path | None = None, segments: bool = False, clip: bool = False) -> list[str]:
    """Write one YOLO label file per annotated image of a COCO-format dict; returns the image files found."""
    anns = defaultdict(list)
    for a in data.get("annotations", []):
        anns[a["image_id"]].append(a)
    labels_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for img in tqdm(data.get("images", []), desc=f"Labels {labels_dir}", bar_format=TQDM_BAR_FORMAT):
        name = img["file_name"]
        if images_dir is not None and not (images_dir / name).exists():
            report.skip("missing images", images_dir / name)
            continue
        found.append(name)
        w, h = float(img.get("width", 0)), float(img.get("height", 0))
        lines = []
        for a in anns.get(img["id"], []):
            if a.get("iscrowd"):
                report.skip("crowd annotations (iscrowd)", name)
                continue
            cls = class_of(a.get("category_id", -1))
            if cls is None:
                report.skip(f"annotations of unknown class (category_id {a.get('category_id')})", name)
                continue
            x, y, bw, bh = (float(v) for v in a["bbox"])
            xywh = xyxy_to_yolo((x, y, x + bw, y + bh), w, h, clip=clip) if w > 0 and h > 0 else None
            if xywh is None or bw <= 0 or bh <= 0:
                report.skip("zero-area boxes", name)
                continue
            poly = _polygon(a, w, h) if segments else None
            if segments and poly is None:
                report.skip("annotations without a polygon (box written instead)", name)
            if poly is not None:
                lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in poly.reshape(-1)) + "\n")
            else:
                lines.append(label_line(cls, xywh))
        if lines:
            (labels_dir / Path(name).with_suffix(".txt").name).write_text("".join(lines))
            report.wrote("label files")
            report.wrote("boxes" if not segments else "objects", len(lines))
    return found


def convert_coco(json_file: str | Path, images_dir: str | Path, out: str | Path, segments: bool = False,
                 cls91to80: bool = True) -> ConvertReport:
    """COCO JSON to YOLO labels in out/labels/<images folder name>, with an image list out/<name>.txt."""
    json_file, images_dir, out = Path(json_file), Path(images_dir), Path(out)
    table = coco91_to_coco80_class()
    if cls91to80:
        def class_of(i):
            return table[i - 1] if 1 <= i <= 91 else None
    else:
        def class_of(i):
            return i - 1 if i >= 1 else None
    report = ConvertReport(f"COCO {json_file}")
    found = coco_to_labels(load_json(json_file), out / "labels" / images_dir.name, class_of, report,
                           images_dir=images_dir, segments=segments)
    (out / f"{images_dir.name}.txt").write_text("".join(f"{(images_dir / n).resolve()}\n" for n in found))
    report.wrote("image lists")
    if images_dir.resolve() != (out / "images" / images_dir.name).resolve():
        LOGGER.warning(f"{images_dir}: labels were written to {out / 'labels' / images_dir.name}; the loader finds "
                       f"them for images in {out / 'images' / images_dir.name} (it swaps /images/ for /labels/)")
    return report.log()


def convert_objects365(root: str | Path) -> ConvertReport:
    """Objects365 v2: flatten each split's patch folders into images/<split> and label it from zhiyuan_objv2_<split>."""
    root, report = Path(root), ConvertReport(f"Objects365 {root}")
    for split in ("train", "val"):
        json_file, images = root / f"zhiyuan_objv2_{split}.json", root / "images" / split
        if not json_file.exists():
            report.skip("splits without their JSON", json_file)
            continue
        for f in tqdm(list(images.rglob("*.jpg")), desc=f"Moving {split} images", bar_format=TQDM_BAR_FORMAT):
            if f.parent != images:
                os.replace(f, images / f.name)
        data = load_json(json_file)
        index = {c["id"]: i for i, c in enumerate(sorted(data.get("categories", []), key=lambda c: c["id"]))}
        for img in data.get("images", []):
            img["file_name"] = Path(img["file_name"]).name  # the JSON keeps the patch folder, the files are flat now
        coco_to_labels(data, root / "labels" / split, index.get, report, images_dir=images, clip=True)
    return report.log()


def convert_argoverse(root: str | Path) -> ConvertReport:
    """Argoverse-HD: rename Argoverse-1.1/tracking to images and write labels beside each sequence's frames."""
    root, report = Path(root), ConvertReport(f"Argoverse {root}")
    base = root / "Argoverse-1.1"
    if (base / "tracking").is_dir() and not (base / "images").exists():
        os.replace(base / "tracking", base / "images")
    for split in ("train", "val"):
        json_file = root / "Argoverse-HD" / "annotations" / f"{split}.json"
        if not json_file.exists():
            report.skip("splits without their JSON", json_file)
            continue
        data = load_json(json_file)
        images = {im["id"]: im for im in data.get("images", [])}
        labels: dict[Path, list[str]] = defaultdict(list)
        for a in tqdm(data.get("annotations", []), desc=f"Converting {json_file}", bar_format=TQDM_BAR_FORMAT):
            im = images.get(a.get("image_id"))
            if im is None:
                report.skip("annotations of unknown images", json_file)
                continue
            cls = a.get("category_id", -1)
            if not 0 <= cls <= 7:
                report.skip(f"annotations of unknown class (category_id {cls})", json_file)
                continue
            w, h = float(im.get("width", ARGOVERSE_SIZE[0])), float(im.get("height", ARGOVERSE_SIZE[1]))
            x, y, bw, bh = (float(v) for v in a["bbox"])
            xywh = xyxy_to_yolo((x, y, x + bw, y + bh), w, h, clip=False)
            if xywh is None:
                report.skip("zero-area boxes", json_file)
                continue
            folder = base / "labels" / data["seq_dirs"][im["sid"]]
            labels[folder / Path(im["name"]).with_suffix(".txt")].append(label_line(cls, xywh))
        for f, lines in labels.items():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("".join(lines))
            report.wrote("label files")
            report.wrote("boxes", len(lines))
    return report.log()
