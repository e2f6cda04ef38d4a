"""Benchmark: the trackers' time per frame, apart from the detector's, at 10, 50 and 200 objects.

A synthetic 640x640 scene of N boxes moving at constant velocity (bouncing off the edges) gives each frame's
detections: the true boxes with 2 px jitter, 5% dropped, a third of them at low confidence (ByteTrack's second
stage), plus a few stray boxes. Each tracker's update() is timed on the same frames, the trackers alternating frame
by frame so that load on a shared machine falls on all of them alike:
- ByteTrack, and BoT-SORT without motion compensation (gmc_method none): the association alone;
- BoT-SORT with sparseOptFlow and with ecc on a textured 640x640 frame panning 3 px per frame: what GMC adds;
- the linear assignment alone, lap against scipy, on the first stage's cost matrix;
- the detectors (yolov5n, yolov5n-csppc, random weights, fused) at 640 on the same CPU threads, for scale.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/track_speed.py --objects 10 50 200 --frames 300 --threads 2
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackers import TrackerConfig, build_tracker  # noqa: E402
from trackers.matching import iou_distance, linear_assignment  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402

SIZE = 640
SOLVERS = ("lap", "scipy") if importlib.util.find_spec("lap") else ("scipy",)  # lap: optional, compared if installed


def scene(n: int, frames: int, seed: int = 0) -> list[np.ndarray]:
    """Detections (x1 y1 x2 y2 conf cls) of n boxes moving in a SIZE x SIZE frame, for each frame."""
    rng = np.random.default_rng(seed)
    wh = rng.uniform(20, 60, (n, 2))
    pos = rng.uniform(0, SIZE - 60, (n, 2))
    vel = rng.uniform(-3, 3, (n, 2))
    out = []
    for _ in range(frames):
        pos += vel
        vel[(pos < 0) | (pos + wh > SIZE)] *= -1
        keep = rng.random(n) > 0.05
        boxes = np.concatenate((pos, pos + wh), 1)[keep] + rng.normal(0, 2, (keep.sum(), 4))
        conf = np.where(rng.random(keep.sum()) < 0.33, rng.uniform(0.15, 0.45, keep.sum()),
                        rng.uniform(0.6, 0.95, keep.sum()))
        stray = rng.uniform(0, SIZE - 40, (max(n // 20, 1), 2))
        strays = np.concatenate((stray, stray + 40, rng.uniform(0.1, 0.5, (len(stray), 1)),
                                 np.zeros((len(stray), 1))), 1)
        out.append(np.concatenate((np.concatenate((boxes, conf[:, None], np.zeros((len(boxes), 1))), 1), strays)))
    return out


def panning_frames(frames: int, step: int = 3, seed: int = 0) -> list[np.ndarray]:
    """SIZE x SIZE crops of a smooth random texture, the camera moving step px right per frame."""
    rng = np.random.default_rng(seed)
    world = cv2.resize(rng.integers(0, 255, (SIZE // 8, (SIZE + step * frames) // 8, 3), dtype=np.uint8),
                       (SIZE + step * frames, SIZE), interpolation=cv2.INTER_CUBIC)
    return [world[:, t * step:t * step + SIZE] for t in range(frames)]


def time_trackers(n: int, frames: int, gmc_frames: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Median ms per update() of each tracker variant on the same n-object scene, alternating frame by frame:
    wall time, and this thread's CPU time (what the tracker itself costs when other processes share the cores)."""
    cfgs = {"ByteTrack": TrackerConfig(),
            "BoT-SORT (no GMC)": TrackerConfig(tracker_type="botsort", gmc_method="none"),
            "BoT-SORT sparseOptFlow": TrackerConfig(tracker_type="botsort", gmc_method="sparseOptFlow"),
            "BoT-SORT ecc": TrackerConfig(tracker_type="botsort", gmc_method="ecc")}
    trackers = {k: build_tracker(c) for k, c in cfgs.items()}
    times = {k: [] for k in cfgs}
    for t, dets in enumerate(scene(n, frames)):
        for name, tracker in trackers.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            tracker.update(dets, gmc_frames[t])  # only BoT-SORT with GMC looks at the frame
            times[name].append((time.perf_counter() - t0, time.thread_time() - c0))
    # the first frames, which start every track, are left out
    return {k: tuple(statistics.median(x[i] for x in v[10:]) * 1e3 for i in (0, 1)) for k, v in times.items()}


def time_assignment(n: int, repeats: int = 200) -> dict[str, float]:
    """Median ms of the first stage's assignment on an n-track, n-detection scene: lap against scipy."""
    dets = scene(n, 2)
    cost = iou_distance(dets[0][:, :4], dets[1][:, :4])
    out = {}
    for solver in SOLVERS:
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            linear_assignment(cost, 0.8, solver)
            ts.append(time.perf_counter() - t0)
        out[solver] = statistics.median(ts) * 1e3
    return out


def time_detectors(cfgs: list[str], runs: int, threads: int) -> dict[str, float]:
    """Median ms of a forward pass at SIZE of each model (random weights, fused), alternating."""
    import torch

    from models.yolo import DetectionModel

    torch.set_num_threads(threads)
    models = {c: DetectionModel(c).fuse().eval() for c in cfgs}
    x = torch.rand(1, 3, SIZE, SIZE)
    times = {c: [] for c in cfgs}
    with torch.inference_mode():
        for m in models.values():
            m(x)  # warm up
        for _ in range(runs):
            for c, m in models.items():
                t0 = time.perf_counter()
                m(x)
                times[c].append(time.perf_counter() - t0)
    return {Path(c).stem: statistics.median(v) * 1e3 for c, v in times.items()}


def run(objects: tuple[int, ...] = (10, 50, 200), frames: int = 300, cfgs: tuple[str, ...] = ("yolov5n.yaml",
        "yolov5n-csppc.yaml"), detector_runs: int = 20, threads: int = 2) -> dict:
    """Measure and log every figure; returns them."""
    LOGGER.info(f"{os.cpu_count()} CPUs, {threads} threads for the detectors; the trackers run numpy on one thread")
    gmc_frames = panning_frames(frames)
    results = {"trackers": {}, "assignment": {}}
    for n in objects:
        results["trackers"][n] = time_trackers(n, frames, gmc_frames)
        results["assignment"][n] = time_assignment(n)
    names = list(next(iter(results["trackers"].values())))
    LOGGER.info(f"{'ms per frame (wall / CPU)':<26}" + "".join(f"{f'{n} objects':>16}" for n in objects))
    for name in names:
        LOGGER.info(f"{name:<26}" + "".join("{:>16}".format("{:.3f} / {:.3f}".format(*results["trackers"][n][name]))
                                            for n in objects))
    for solver in SOLVERS:
        LOGGER.info(f"{'assignment, ' + solver:<26}" + "".join(f"{results['assignment'][n][solver]:16.3f}"
                                                               for n in objects))
    results["detectors"] = time_detectors(list(cfgs), detector_runs, threads)
    for name, ms in results["detectors"].items():
        LOGGER.info(f"{'detector ' + name + f' @{SIZE}':<26}{ms:16.1f}")
    return results


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of run()."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", nargs="+", type=int, default=[10, 50, 200], help="objects per scene")
    parser.add_argument("--frames", type=int, default=300, help="frames per scene")
    parser.add_argument("--cfgs", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"], help="detector YAMLs")
    parser.add_argument("--detector-runs", type=int, default=20, help="timed forward passes per detector")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the detectors")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    run(tuple(opt.objects), opt.frames, tuple(opt.cfgs), opt.detector_runs, opt.threads)
