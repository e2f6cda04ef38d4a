"""Converters for XML, text, CSV and GeoJSON annotations: Pascal VOC, VisDrone, SKU-110K, GlobalWheat, xView."""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils import IMG_FORMATS, LOGGER, TQDM_BAR_FORMAT

VOC_NAMES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOC_SETS = (("2012", "train"), ("2012", "val"), ("2007", "train"), ("2007", "val"), ("2007", "test"))  # YOLOv5's
VISDRONE_SPLITS = ("VisDrone2019-DET-train", "VisDrone2019-DET-val", "VisDrone2019-DET-test-dev")
GLOBALWHEAT_DOMAINS = ("arvalis_1", "arvalis_2", "arvalis_3", "ethz_1", "rres_1", "inrae_1", "usask_1",
                       "utokyo_1", "utokyo_2", "nau_1", "uq_1")


class ConvertReport:
    """What a converter wrote and what it skipped, by reason, with the first file seen for each reason."""

    def __init__(self, name: str):
        self.name = name
        self.written: Counter = Counter()
        self.skipped: Counter = Counter()
        self.examples: dict[str, str] = {}

    def wrote(self, what: str, n: int = 1) -> None:
        """Count n written items of a kind (label files, boxes, image lists)."""
        self.written[what] += n

    def skip(self, reason: str, where: str | Path) -> None:
        """Count one skipped item and remember where the first one of this reason was."""
        self.skipped[reason] += 1
        self.examples.setdefault(reason, str(where))

    def summary(self) -> str:
        """One line: counts written, then each skip reason with its count and first example."""
        wrote = ", ".join(f"{n} {k}" for k, n in self.written.items()) or "nothing written"
        skips = "; ".join(f"{n} {k} (e.g. {self.examples[k]})" for k, n in self.skipped.most_common())
        return f"{self.name}: {wrote}" + (f"; skipped {skips}" if skips else "; nothing skipped")

    def log(self) -> ConvertReport:
        """Log the summary (a warning when anything was skipped) and return self."""
        (LOGGER.warning if self.skipped else LOGGER.info)(self.summary())
        return self


def xyxy_to_yolo(box: tuple[float, float, float, float], w: float, h: float, clip: bool = True) -> tuple | None:
    """Pixel (x1, y1, x2, y2) to normalised (xc, yc, w, h); None when the box has no area (after clipping)."""
    x1, y1, x2, y2 = box
    if clip:
        x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
        y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h


def label_line(cls: int, xywh: tuple) -> str:
    """A YOLO label line with six decimals."""
    return f"{cls} " + " ".join(f"{v:.6f}" for v in xywh) + "\n"


def _move(src: Path, dst: Path) -> bool:
    """Move src to dst (creating dst's folder); True if dst now exists, also when an earlier run moved it."""
    if src.exists() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    return dst.exists()


def voc_box_to_yolo(size: tuple[float, float], box: tuple[float, float, float, float]) -> tuple:
    """VOC (xmin, xmax, ymin, ymax) in 1-based pixels to normalised YOLO (xc, yc, w, h), as YOLOv5 converts them."""
    w, h = size
    xmin, xmax, ymin, ymax = box
    return ((xmin + xmax) / 2 - 1) / w, ((ymin + ymax) / 2 - 1) / h, (xmax - xmin) / w, (ymax - ymin) / h


def voc_xml_labels(xml_file: Path, names: tuple[str, ...], report: ConvertReport, image: Path | None = None) -> list:
    """YOLO label lines of one VOC XML file; difficult objects, unknown classes and empty boxes are reported."""
    root = ET.parse(xml_file).getroot()
    size = root.find("size")
    w = int(float(size.findtext("width", "0"))) if size is not None else 0
    h = int(float(size.findtext("height", "0"))) if size is not None else 0
    if (w <= 0 or h <= 0) and image is not None and image.exists():
        w, h = Image.open(image).size  # some VOC-style exports leave <size> empty
    if w <= 0 or h <= 0:
        report.skip("files without an image size", xml_file)
        return []
    lines = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in names:
            report.skip(f"objects of unknown class '{name}'", xml_file)
            continue
        if obj.findtext("difficult", "0").strip() == "1":
            report.skip("difficult objects", xml_file)
            continue
        bb = obj.find("bndbox")
        try:
            box = tuple(float(bb.findtext(k)) for k in ("xmin", "xmax", "ymin", "ymax"))
        except (AttributeError, TypeError, ValueError):
            report.skip("objects without a numeric bndbox", xml_file)
            continue
        if box[1] <= box[0] or box[3] <= box[2]:
            report.skip("zero-area boxes", xml_file)
            continue
        lines.append(label_line(names.index(name), voc_box_to_yolo((w, h), box)))
    report.wrote("boxes", len(lines))
    return lines


def find_voc_devkit(root: Path) -> Path:
    """The VOCdevkit folder of a VOC dataset root: root/images/VOCdevkit (YOLOv5's download), root/VOCdevkit or root."""
    for d in (root / "images" / "VOCdevkit", root / "VOCdevkit", root):
        if any((d / f"VOC{year}").is_dir() for year, _ in VOC_SETS):
            return d
    raise FileNotFoundError(f"{root}: no VOCdevkit/VOC2007 or VOC2012 folder found in {root / 'images'} or {root}; "
                            "unpack VOCtrainval_06-Nov-2007, VOCtest_06-Nov-2007 and VOCtrainval_11-May-2012 there")


def convert_voc(root: str | Path, names: tuple[str, ...] = VOC_NAMES) -> ConvertReport:
    """Pascal VOC XML to YOLO: images move to root/images/<set><year>, labels go to root/labels/<set><year>."""
    root = Path(root)
    devkit, report = find_voc_devkit(root), ConvertReport(f"VOC {root}")
    for year, image_set in VOC_SETS:
        ids_file = devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{image_set}.txt"
        if not ids_file.exists():
            report.skip("image sets not present", ids_file)
            continue
        images, labels = root / "images" / f"{image_set}{year}", root / "labels" / f"{image_set}{year}"
        labels.mkdir(parents=True, exist_ok=True)
        listed = []
        for stem in tqdm(ids_file.read_text().split(), desc=f"{image_set}{year}", bar_format=TQDM_BAR_FORMAT):
            src, xml = devkit / f"VOC{year}" / "JPEGImages" / f"{stem}.jpg", devkit / f"VOC{year}" / "Annotations"
            xml = xml / f"{stem}.xml"
            if not xml.exists():
                report.skip("images without an XML annotation", xml)
                continue
            if not _move(src, images / src.name):
                report.skip("missing images", src)
                continue
            try:
                lines = voc_xml_labels(xml, names, report, images / src.name)
            except ET.ParseError as e:
                report.skip(f"unreadable XML files ({e})", xml)
                continue
            (labels / f"{stem}.txt").write_text("".join(lines))
            listed.append(f"./images/{image_set}{year}/{src.name}\n")
            report.wrote("label files")
        (root / f"{image_set}{year}.txt").write_text("".join(listed))
        report.wrote("image lists")
    return report.log()


def convert_visdrone(root: str | Path) -> ConvertReport:
    """VisDrone2019-DET annotations (x, y, w, h, score, class, ...) to YOLO labels beside each split's images."""
    root, report = Path(root), ConvertReport(f"VisDrone {root}")
    for split in VISDRONE_SPLITS:
        d = root / split
        if not (d / "annotations").is_dir():
            report.skip("splits not present", d / "annotations")
            continue
        (d / "labels").mkdir(parents=True, exist_ok=True)
        for f in tqdm(sorted((d / "annotations").glob("*.txt")), desc=f"Converting {d}", bar_format=TQDM_BAR_FORMAT):
            im = d / "images" / f"{f.stem}.jpg"
            if not im.exists():
                report.skip("missing images", im)
                continue
            w, h = Image.open(im).size
            lines = []
            for n, row in enumerate(r.split(",") for r in f.read_text().split()):
                try:
                    x, y, bw, bh, score, cls = (int(v) for v in row[:6])
                except ValueError:
                    report.skip("malformed rows", f"{f}:{n + 1}")
                    continue
                if score == 0:  # VisDrone marks ignored regions with score 0
                    report.skip("ignored regions", f)
                elif not 1 <= cls <= 10:  # 0 is 'ignored region' and 11 'others', neither is one of the 10 names
                    report.skip(f"objects of class {cls} (not one of the 10 classes)", f)
                elif (xywh := xyxy_to_yolo((x, y, x + bw, y + bh), w, h)) is None:
                    report.skip("zero-area boxes", f)
                else:
                    lines.append(label_line(cls - 1, xywh))
            (d / "labels" / f.name).write_text("".join(lines))
            report.wrote("label files")
            report.wrote("boxes", len(lines))
    return report.log()


def convert_sku110k(root: str | Path) -> ConvertReport:
    """SKU-110K CSVs (image, x1, y1, x2, y2, class, width, height) to YOLO labels and train/val/test image lists."""
    root = Path(root)
    unpacked = root.parent / "SKU110K_fixed"  # the archive's top folder
    if unpacked.is_dir():
        if root.exists():
            raise FileExistsError(f"{root}: exists beside the unpacked {unpacked}; remove one of them and run again")
        os.replace(unpacked, root)
    report = ConvertReport(f"SKU-110K {root}")
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        csv_file = root / "annotations" / f"annotations_{split}.csv"
        if not csv_file.exists():
            report.skip("splits not present", csv_file)
            continue
        boxes: dict[str, list[str]] = {}
        with open(csv_file, newline="") as f:
            for n, row in enumerate(csv.reader(f)):
                try:
                    name, (x1, y1, x2, y2), (w, h) = row[0], map(float, row[1:5]), map(float, row[6:8])
                except (IndexError, ValueError):
                    report.skip("malformed rows", f"{csv_file}:{n + 1}")
                    continue
                lines = boxes.setdefault(name, [])
                xywh = xyxy_to_yolo((x1, y1, x2, y2), w, h) if w > 0 and h > 0 else None
                if xywh is None:
                    report.skip("zero-area boxes", f"{csv_file}:{n + 1}")
                else:
                    lines.append(label_line(0, xywh))  # a single class, 'object'
        for name, lines in boxes.items():
            if not (root / "images" / name).exists():
                report.skip("missing images", root / "images" / name)
                continue
            (root / "labels" / Path(name).with_suffix(".txt").name).write_text("".join(lines))
            report.wrote("label files")
            report.wrote("boxes", len(lines))
        listed = [f"./images/{n}\n" for n in boxes if (root / "images" / n).exists()]
        (root / f"{split}.txt").write_text("".join(listed))
        report.wrote("image lists")
    return report.log()


def convert_globalwheat(root: str | Path) -> ConvertReport:
    """GlobalWheat2020: move each domain's images to root/images/<domain> and its JSON to root/annotations."""
    root, report = Path(root), ConvertReport(f"GlobalWheat2020 {root}")
    for p in ("annotations", "images", "labels"):
        (root / p).mkdir(parents=True, exist_ok=True)
    for domain in GLOBALWHEAT_DOMAINS:
        if not _move(root / domain, root / "images" / domain):
            report.skip("domains not present", root / domain)
            continue
        report.wrote("image folders")
        if _move(root / f"{domain}.json", root / "annotations" / f"{domain}.json"):
            report.wrote("annotation files")
    return report.log()


XVIEW_KEPT = (11, 12, 13, 15, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 32, 33, 34, 35, 36, 37, 38, 40, 41, 42,
              44, 45, 47, 49, 50, 51, 52, 53, 54, 55, 56, 57, 59, 60, 61, 62, 63, 64, 65, 66, 71, 72, 73, 74, 76, 77,
              79, 83, 84, 86, 89, 91, 93, 94)  # xView type_id of each of the 60 classes, in order (YOLOv5's mapping)


def autosplit(images: Path, weights: tuple[float, float] = (0.9, 0.1), seed: int = 0) -> tuple[Path, Path]:
    """Split a folder of images at random into autosplit_train.txt and autosplit_val.txt beside it."""
    files = sorted(p for p in images.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    rng = np.random.default_rng(seed)
    is_val = rng.random(len(files)) >= weights[0]
    out = images.parent / "autosplit_train.txt", images.parent / "autosplit_val.txt"
    for f, pick in zip(out, (~is_val, is_val)):
        f.write_text("".join(f"./{p.relative_to(images.parent).as_posix()}\n" for p, s in zip(files, pick) if s))
    return out


def convert_xview(root: str | Path) -> ConvertReport:
    """xView: xView_train.geojson boxes to labels/train, train_images/val_images to images/, then a 90/10 split."""
    root, report = Path(root), ConvertReport(f"xView {root}")
    geojson = root / "xView_train.geojson"
    if not geojson.exists():
        raise FileNotFoundError(f"{geojson}: not found; download xView by hand from https://challenge.xviewdataset.org"
                                f" and unpack train_labels, train_images and val_images into {root}")
    index = {t: i for i, t in enumerate(XVIEW_KEPT)}
    images = root / "train_images" if (root / "train_images").is_dir() else root / "images" / "train"
    labels: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    with open(geojson) as f:
        features = json.load(f).get("features", [])
    for feat in tqdm(features, desc=f"Converting {geojson}", bar_format=TQDM_BAR_FORMAT):
        p = feat.get("properties", {})
        name, coords = p.get("image_id"), p.get("bounds_imcoords")
        if not name or not coords:
            continue  # features without image coordinates carry no box
        if name not in sizes:
            if not (images / name).exists():
                report.skip("boxes of missing images", images / name)
                continue
            sizes[name] = Image.open(images / name).size
        cls = index.get(int(p.get("type_id", -1)))
        try:
            box = tuple(float(v) for v in coords.split(","))
        except ValueError:
            box = ()
        if cls is None:
            report.skip(f"boxes of unused type_id {p.get('type_id')}", name)
        elif len(box) != 4:
            report.skip("malformed bounds_imcoords", name)
        elif (xywh := xyxy_to_yolo(box, *sizes[name])) is None:
            report.skip("zero-area boxes", name)
        else:
            labels.setdefault(name, []).append(label_line(cls, xywh))
    out = root / "labels" / "train"
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in labels.items():
        (out / Path(name).with_suffix(".txt")).write_text("".join(lines))
        report.wrote("label files")
        report.wrote("boxes", len(lines))
    for src, dst in (("train_images", "train"), ("val_images", "val")):
        _move(root / src, root / "images" / dst)
    autosplit(root / "images" / "train")
    report.wrote("image lists", 2)
    return report.log()
