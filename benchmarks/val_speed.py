"""NMS time per image at validation settings (conf 0.001, IoU 0.6, multi-label) on 640 px inputs with 80 classes.

Two synthetic prediction sets of YOLOv5's 640 px shape (25200 anchors on the 8/16/32 grids x 85):
    typical scores shaped like a trained detector: about 12k (box, class) pairs per image above conf 0.001
    dense   every score uniform in [0, 1]: almost all 2M pairs pass, the 30000-box cap on NMS input binds
(A randomly initialised model is no test: its prior scores leave nothing above 0.001.)
Also times matching plus ap_per_class for the same detections.

Usage:
    python benchmarks/val_speed.py
    python benchmarks/val_speed.py --batch-size 8 --iters 5 --device 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # run as a script from any folder

from utils.general import LOGGER, non_max_suppression, set_logging, xywh2xyxy  # noqa: E402
from utils.metrics import ap_per_class, match_predictions  # noqa: E402
from utils.torch_utils import select_device  # noqa: E402


def _grid_boxes(batch_size: int, imgsz: int, g: torch.Generator) -> torch.Tensor:
    """xywh boxes on YOLOv5's three grids (strides 8, 16, 32, three anchors each), jittered like real outputs."""
    out = []
    for s, anchors in ((8, ((10, 13), (16, 30), (33, 23))), (16, ((30, 61), (62, 45), (59, 119))),
                       (32, ((116, 90), (156, 198), (373, 326)))):
        n = imgsz // s
        ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        for aw, ah in anchors:
            xy = (torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * s
            wh = torch.tensor([aw, ah], dtype=torch.float32).expand_as(xy)
            out.append(torch.cat((xy, wh), 1))
    boxes = torch.cat(out, 0).expand(batch_size, -1, -1).clone()
    boxes[..., :2] += (torch.rand(boxes.shape[:2] + (2,), generator=g) - 0.5) * 8
    boxes[..., 2:] *= torch.rand(boxes.shape[:2] + (2,), generator=g) + 0.5
    return boxes


def predictions(kind: str, batch_size: int, imgsz: int = 640, nc: int = 80, seed: int = 0) -> torch.Tensor:
    """A (batch, anchors, 5 + nc) prediction tensor of the given kind (typical or dense)."""
    g = torch.Generator().manual_seed(seed)
    boxes = _grid_boxes(batch_size, imgsz, g)
    n = boxes.shape[1]
    if kind == "dense":
        scores = torch.rand(batch_size, n, 1 + nc, generator=g)
    elif kind == "typical":  # log-odds centred well below zero: most anchors are background
        obj = torch.sigmoid(torch.randn(batch_size, n, 1, generator=g) * 2.0 - 8.0)
        cls = torch.sigmoid(torch.randn(batch_size, n, nc, generator=g) * 1.5 - 5.0)
        scores = torch.cat((obj, cls), 2)
    else:
        raise ValueError(f"unknown prediction kind '{kind}', expected typical or dense")
    return torch.cat((boxes, scores), 2)


def time_nms(pred: torch.Tensor, iters: int, conf_thres: float, iou_thres: float) -> tuple[float, int, int]:
    """Median ms per image of non_max_suppression over iters calls, candidate pairs per image and boxes kept."""
    non_max_suppression(pred, conf_thres, iou_thres, multi_label=True, max_det=300)  # warm-up
    times = []
    for _ in range(iters):
        if pred.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = non_max_suppression(pred, conf_thres, iou_thres, multi_label=True, max_det=300)
        if pred.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    pairs = ((pred[..., 5:] * pred[..., 4:5]) > conf_thres).sum().item() // pred.shape[0]
    kept = sum(len(o) for o in out) // pred.shape[0]
    return float(np.median(times)) * 1e3 / pred.shape[0], pairs, kept


def time_metrics(pred: torch.Tensor, conf_thres: float, iou_thres: float, labels_per_image: int = 7) -> float:
    """ms per image for matching NMS output to random labels plus ap_per_class over the batch."""
    out = non_max_suppression(pred, conf_thres, iou_thres, multi_label=True, max_det=300)
    g = torch.Generator().manual_seed(1)
    iouv = torch.linspace(0.5, 0.95, 10, device=pred.device)
    t = time.perf_counter()
    stats = []
    for det in out:
        lb = torch.rand(labels_per_image, 5, generator=g).to(pred.device)
        lb[:, 0] = (lb[:, 0] * 80).floor()
        lb[:, 1:] = xywh2xyxy(torch.cat((lb[:, 1:3] * 640, lb[:, 3:] * 200 + 10), 1))
        correct = match_predictions(det, lb, iouv)
        stats.append((correct.cpu(), det[:, 4].cpu(), det[:, 5].cpu(), lb[:, 0].cpu()))
    ap_per_class(*(torch.cat(x, 0).numpy() for x in zip(*stats)))
    return (time.perf_counter() - t) * 1e3 / len(out)


def run(batch_size: int = 4, iters: int = 3, conf_thres: float = 0.001, iou_thres: float = 0.6, device: str = "",
        kinds: tuple[str, ...] = ("typical", "dense")) -> dict[str, float]:
    """Print and return NMS ms per image for each prediction kind."""
    device = select_device(device)
    LOGGER.info(f"NMS at conf {conf_thres}, IoU {iou_thres}, multi-label, 640 px (25200 anchors), 80 classes, "
                f"batch {batch_size}, {torch.get_num_threads()} CPU threads, device {device}")
    LOGGER.info(f"{'predictions':>12} {'pairs/img':>10} {'kept/img':>9} {'NMS ms/img':>11} {'metrics ms/img':>15}")
    results = {}
    for kind in kinds:
        pred = predictions(kind, batch_size).to(device)
        ms, pairs, kept = time_nms(pred, iters, conf_thres, iou_thres)
        metrics_ms = time_metrics(pred, conf_thres, iou_thres)
        results[kind] = ms
        LOGGER.info(f"{kind:>12} {pairs:>10} {kept:>9} {ms:>11.1f} {metrics_ms:>15.1f}")
    return results


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3, help="timed calls per prediction kind (median reported)")
    parser.add_argument("--conf-thres", type=float, default=0.001)
    parser.add_argument("--iou-thres", type=float, default=0.6)
    parser.add_argument("--device", default="", help="cpu, or a CUDA device id such as 0")
    parser.add_argument("--kinds", nargs="+", default=["typical", "dense"], help="typical and/or dense")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    run(**{**vars(opt), "kinds": tuple(opt.kinds)})
