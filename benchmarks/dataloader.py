"""Training-loader throughput (images/s) with mosaic augmentation, on the shapes dataset.

Usage:
    python benchmarks/dataloader.py                      # 640 and 320 px, 2 workers
    python benchmarks/dataloader.py --imgsz 320 --workers 0 2 --batches 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # run as a script from any folder

from utils.dataloaders import create_dataloader  # noqa: E402
from utils.general import LOGGER, check_dataset, set_logging, yaml_load  # noqa: E402


def measure(path: str, imgsz: int, workers: int, batch_size: int, batches: int, hyp: dict, cache: str | None) -> float:
    """Images per second of the augmenting training loader over `batches` batches, after one warm-up batch."""
    loader, _ = create_dataloader(path, imgsz, batch_size, 32, hyp=hyp, augment=True, workers=workers, shuffle=True,
                                  cache=cache, prefix="")
    it = iter(loader)
    n, t0 = 0, None
    for i in range(batches + 1):
        try:
            im, *_ = next(it)
        except StopIteration:  # shorter than requested: start the next epoch (workers are kept)
            it = iter(loader)
            im, *_ = next(it)
        if i == 0:
            t0 = time.perf_counter()  # the first batch includes worker start-up
        else:
            n += im.shape[0]
    return n / (time.perf_counter() - t0)


def run(data: str = "shapes.yaml", hyp: str = "data/hyps/hyp.scratch-low.yaml", imgsz: tuple[int, ...] = (640, 320),
        workers: tuple[int, ...] = (2,), batch_size: int = 16, batches: int = 20, cache: str | None = None) -> dict:
    """Measure every (imgsz, workers) pair and log a table; returns {(imgsz, workers): images/s}."""
    set_logging()
    path = check_dataset(data)["train"]
    hyps = yaml_load(ROOT / hyp if not Path(hyp).is_file() else hyp)
    results = {}
    for size in imgsz:
        for nw in workers:
            results[(size, nw)] = measure(path, size, nw, batch_size, batches, hyps, cache)
    LOGGER.info(f"\n{'imgsz':>6} {'workers':>8} {'batch':>6} {'images/s':>10}   (mosaic on, {hyp}, cache={cache})")
    for (size, nw), ips in results.items():
        LOGGER.info(f"{size:>6} {nw:>8} {batch_size:>6} {ips:>10.1f}")
    return results


def parse_opt() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="shapes.yaml", help="dataset YAML")
    parser.add_argument("--hyp", default="data/hyps/hyp.scratch-low.yaml", help="augmentation settings (hyp YAML)")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640, 320], help="image sizes to measure")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts to measure")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--cache", choices=["ram", "disk"], default=None, help="image cache")
    return parser.parse_args()


if __name__ == "__main__":
    run(**vars(parse_opt()))
