"""COCO results JSON and COCOeval: the entries val.py's --save-json writes, and their scoring by pycocotools.

Boxes are scored as COCOeval's 'bbox', run-length-encoded masks (segment/val.py) as 'segm'; the annotation file
is the data YAML's 'anno_json', or COCO's own instances_val2017.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from utils.general import LOGGER, xyxy2xywh


def image_id(path: str | Path) -> int | str:
    """COCO image id of an image file: its stem, as an integer when it is one (COCO's 000000000139.jpg -> 139)."""
    stem = Path(path).stem
    return int(stem) if stem.isnumeric() else stem


def save_one_json(predn: torch.Tensor, jdict: list, path: Path, class_map: list[int],
                  masks: np.ndarray | None = None) -> None:
    """Append COCO results {image_id, category_id, bbox (x, y, w, h in original pixels), score} to jdict; with masks
    ((h, w, n) at the original image size, one per detection) each entry gets its run-length-encoded segmentation."""
    im_id = image_id(path)
    box = xyxy2xywh(predn[:, :4])
    box[:, :2] -= box[:, 2:] / 2  # centre to top-left corner
    for i, (p, b) in enumerate(zip(predn.tolist(), box.tolist())):
        entry = {"image_id": im_id, "category_id": class_map[int(p[5])], "bbox": [round(x, 3) for x in b],
                 "score": round(p[4], 5)}
        if masks is not None:
            from pycocotools.mask import encode  # requirements.txt installs it; only segmentation JSON needs it

            rle = encode(np.asarray(masks[:, :, i : i + 1] > 0.5, order="F", dtype="uint8"))[0]
            rle["counts"] = rle["counts"].decode("utf-8")
            entry["segmentation"] = rle
        jdict.append(entry)


def annotation_file(data: dict) -> Path:
    """The data's COCO annotation JSON: its 'anno_json' (relative to its path), else COCO's instances_val2017."""
    default = Path(data.get("path") or "../coco") / "annotations/instances_val2017.json"
    anno_json = Path(data.get("anno_json") or default)
    if not anno_json.is_absolute() and data.get("path") and not anno_json.exists():
        anno_json = Path(data["path"]) / anno_json
    return anno_json


def coco_evaluate(jdict: list, pred_json: Path, data: dict, image_files: list[str], is_coco: bool,
                  iou_types: tuple[str, ...] = ("bbox",)) -> dict[str, tuple[float, float]] | None:
    """Write pred_json and score it with COCOeval per iouType ('bbox', 'segm'); {iouType: (mAP, mAP50)} or None."""
    with open(pred_json, "w") as f:
        json.dump(jdict, f)
    what = "detections with masks" if "segm" in iou_types else "detections"
    LOGGER.info(f"Saved {len(jdict)} COCO-format {what} to {pred_json}")
    anno_json = annotation_file(data)
    if not anno_json.is_file():
        msg = f"COCOeval skipped: annotation file {anno_json} not found"
        if data.get("anno_json"):  # asked for by name: a warning; COCO's default path guessed wrong: a note
            LOGGER.warning(f"WARNING {msg} (the data YAML's 'anno_json')")
        else:
            LOGGER.info(f"{msg} (set 'anno_json' in the data YAML)")
        return None
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        LOGGER.info("COCOeval skipped: pycocotools is not installed (pip install pycocotools)")
        return None
    LOGGER.info(f"\nEvaluating pycocotools mAP with {anno_json}...")
    stats = {}
    try:
        anno = COCO(str(anno_json))
        pred = anno.loadRes(str(pred_json))
        ids = [image_id(x) for x in image_files]
        for iou_type in iou_types:
            ev = COCOeval(anno, pred, iou_type)
            ev.params.imgIds = [i for i in ids if i in anno.imgs] if not is_coco else ids  # only the images scored
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats[iou_type] = float(ev.stats[0]), float(ev.stats[1])
    except Exception as e:  # a malformed annotation file must not discard the metrics computed before
        LOGGER.warning(f"WARNING COCOeval failed on {anno_json} and {pred_json}: {type(e).__name__} {e}")
    return stats or None
