"""Benchmark: detect.py's time per image beyond inference, without and with prefetch/background writes.

Runs detect.run on a folder of images with prefetch off (the sequential loop: read, letterbox, infer, NMS, draw and
write, one image after the other) and on (reading ahead on one thread, drawing and writing on another), alternating,
--repeats times each, and prints per image: wall time, inference, everything beyond inference, and its stages
(read + letterbox measured alone, pre-process and NMS from detect.py's own timers, the rest: drawing, writing,
logging). The wall time runs from the first image's log line to the Speed line, which detect.py writes once every
file is on disk, so background writes still pending after the last image are counted.

On a machine whose cores inference already fills, the background threads also take CPU time from inference, so the
last line gives the wall-time ratio beside the beyond-inference one.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/detect_pipeline.py --weights best.pt --imgsz 640 --threads 2
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import detect  # noqa: E402
from models.yolo import DetectionModel  # noqa: E402
from utils.general import LOGGER, check_dataset, set_logging  # noqa: E402
from utils.sources import LoadImages  # noqa: E402

SPEED = re.compile(r"Speed: ([\d.]+)ms pre-process, ([\d.]+)ms inference, ([\d.]+)ms")


class _SpeedLine(logging.Handler):
    """detect.py's 'Speed:' figures (pre-process, inference, NMS ms per image), when its first image line was logged
    and when the Speed line was, so that the wall time per image leaves out loading the model."""

    def __init__(self):
        super().__init__()
        self.speed, self.first, self.last = None, None, None

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("image "):
            self.first = self.first or record.created
        m = SPEED.search(msg)
        if m:
            self.speed = tuple(float(x) for x in m.groups())
            self.last = record.created


def read_letterbox_ms(source: str, imgsz: int, stride: int = 32) -> float:
    """Milliseconds per image that LoadImages takes to read and letterbox the source, alone."""
    dataset = LoadImages(source, img_size=imgsz, stride=stride, auto=False)
    t = time.perf_counter()
    n = sum(1 for _ in dataset)
    return (time.perf_counter() - t) * 1000 / max(n, 1)


def run(weights: str | None = None, cfg: str = "yolov5n-csppc.yaml", source: str | None = None, imgsz: int = 640,
        threads: int = 2, repeats: int = 2, save_txt: bool = True) -> dict:
    """Time detect.run with prefetch off and on; log and return {mode: per-image ms figures}."""
    torch.set_num_threads(threads)
    source = source or check_dataset("shapes.yaml")["val"]
    n = len(LoadImages(source, img_size=imgsz, auto=False))
    if n < 2:
        raise ValueError(f"{source}: the benchmark needs at least 2 images, found {n}")
    tmp = Path(tempfile.mkdtemp(prefix="detect_pipeline_"))
    if not weights:  # random weights: the pipeline's cost, with few boxes to draw
        weights = str(tmp / f"{Path(cfg).stem}.pt")
        torch.save({"epoch": -1, "model": DetectionModel(cfg, nc=6), "ema": None}, weights)
    handler = _SpeedLine()
    LOGGER.addHandler(handler)
    results = {False: [], True: []}
    try:
        for r in range(repeats):
            for prefetch in (False, True):
                handler.first = None
                detect.run(weights=weights, source=source, imgsz=(imgsz, imgsz), device="cpu", save_txt=save_txt,
                           project=tmp / "runs", name=f"{int(prefetch)}-{r}", prefetch=prefetch)
                wall = (handler.last - handler.first) * 1000 / (n - 1)  # image 1 logged to every file written
                results[prefetch].append((wall, *handler.speed))
    finally:
        LOGGER.removeHandler(handler)
    read = read_letterbox_ms(source, imgsz)
    out = {}
    LOGGER.info(f"detect.py on {n} images of {source} at {imgsz}, {threads} threads, {Path(weights).name}, median of "
                f"{repeats} runs each (ms per image; read + letterbox measured alone: {read:.1f})")
    LOGGER.info("| prefetch | wall | inference | beyond inference | pre-process | NMS | rest: read, draw, write |")
    LOGGER.info("|---|---:|---:|---:|---:|---:|---:|")
    for prefetch, rows in results.items():
        wall, pre, inf, nms = (statistics.median(x) for x in zip(*rows))
        out["on" if prefetch else "off"] = {"wall": wall, "inference": inf, "beyond": wall - inf, "pre": pre,
                                            "nms": nms, "rest": wall - inf - pre - nms}
        f = out["on" if prefetch else "off"]
        LOGGER.info(f"| {'on' if prefetch else 'off'} | {wall:.1f} | {inf:.1f} | {f['beyond']:.1f} | {pre:.1f} | "
                    f"{nms:.1f} | {f['rest']:.1f} |")
    on, off = out["on"], out["off"]
    LOGGER.info(f"beyond inference, on / off: {on['beyond'] / off['beyond']:.2f}; wall, on / off: "
                f"{on['wall'] / off['wall']:.2f}")
    return out


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description="detect.py time per image beyond inference, prefetch off vs on")
    parser.add_argument("--weights", default=None, help="checkpoint or export (default: random --cfg weights)")
    parser.add_argument("--cfg", default="yolov5n-csppc.yaml", help="model YAML when no --weights")
    parser.add_argument("--source", default=None, help="image folder (default: the shapes val images)")
    parser.add_argument("--imgsz", type=int, default=640, help="inference size")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, alternating")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    run(**vars(parse_opt()))
