"""OpenVINO FP32 vs INT8 (plain NNCF) vs INT8 (accuracy-aware, export.py --int8-max-drop) on real photographs.

Builds a held-out set of small shapes on photographs (utils/photo_shapes.py; backgrounds from the sample photographs
inside scikit-image's wheel, train and val from disjoint photographs), trains a weak model on its train split (or
takes --weights), exports it three times with export.py and prints val.py's mAP50-95 and the latency of each, side by
side, with the operations the accuracy-aware export left in float.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/int8_accuracy.py --epochs 12 --imgsz 320 --threads 2
    OMP_WAIT_POLICY=PASSIVE python benchmarks/int8_accuracy.py --weights best.pt --data photo_shapes.yaml
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/int8_accuracy.py` finds the project's packages

import export  # noqa: E402
import train  # noqa: E402
import val  # noqa: E402
from benchmarks.lowp import compile_openvino  # noqa: E402
from benchmarks.timing import loadavg, time_interleaved  # noqa: E402
from utils.general import LOGGER, print_args, set_logging  # noqa: E402
from utils.photo_shapes import generate_photo_shapes  # noqa: E402
from utils.quantize import quantized_ops  # noqa: E402

# photographs shipped inside scikit-image's wheel (skimage/data/), none of them fetched; a stereo pair stays together
TRAIN_PHOTOS = ("astronaut.png", "chelsea.png", "motorcycle_left.png", "motorcycle_right.png", "brick.png",
                "grass.png", "camera.png", "coins.png", "page.png")
VAL_PHOTOS = ("coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "gravel.png", "moon.png", "ihc.png")


def skimage_photos(names: tuple[str, ...]) -> list[Path]:
    """Paths of scikit-image's bundled sample photographs (read from its install folder, never downloaded)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.origin:
        raise ImportError("the photographs come from scikit-image's wheel: pip install scikit-image")
    folder = Path(spec.origin).parent / "data"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: this scikit-image install lacks {', '.join(missing)}")
    return [folder / n for n in names]


def weak_model(data: str, cfg: str, epochs: int, imgsz: int, save_dir: Path, workers: int) -> Path:
    """best.pt of a short training on the train split (kept when it already exists)."""
    best = save_dir / "train" / "weights" / "best.pt"
    if not best.is_file():
        train.run(cfg=cfg, data=data, weights="", epochs=epochs, imgsz=imgsz, batch_size=16, workers=workers,
                  seed=0, project=str(save_dir), name="train", exist_ok=True, noplots=True, patience=0)
    return best


def export_three(weights: Path, data: str, imgsz: int, images: int, max_drop: float, work: Path) -> dict[str, Path]:
    """FP32, plain INT8 (no drop bound) and accuracy-aware INT8 OpenVINO exports of weights, through export.run."""
    work.mkdir(parents=True, exist_ok=True)
    ckpt, plain = work / "model.pt", work / "plain.pt"  # each export is named after its checkpoint
    shutil.copy(weights, ckpt)
    shutil.copy(weights, plain)
    size = (imgsz, imgsz)
    return {"FP32": Path(export.run(weights=ckpt, imgsz=size, include=["openvino"])[0]),
            "INT8 plain": Path(export.run(weights=plain, imgsz=size, include=["openvino"], int8=True, data=data,
                                          int8_images=images, int8_max_drop=math.inf)[0]),
            f"INT8 max drop {max_drop}": Path(export.run(weights=ckpt, imgsz=size, include=["openvino"], int8=True,
                                                         data=data, int8_images=images, int8_max_drop=max_drop)[0])}


def float_ops(models: dict[str, Path]) -> dict[str, int]:
    """Per INT8 model, how many operations run in int8 in the plain model but in float in it."""
    import openvino as ov

    ops = {k: quantized_ops(ov.Core().read_model(str(next(f.glob("*.xml"))))) for k, f in models.items()}
    plain = ops["INT8 plain"]
    return {k: len(plain - v) for k, v in ops.items() if k != "FP32"}


def latency(models: dict[str, Path], threads: int, runs: int, warmup: int, imgsz: int) -> dict[str, float]:
    """Median batch-1 ms of each model in OpenVINO, interleaved, `threads` threads."""
    import numpy as np
    import openvino as ov

    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    requests = {k: compile_openvino(ov.Core().read_model(str(next(f.glob("*.xml")))), threads).create_infer_request()
                for k, f in models.items()}
    return time_interleaved({k: (lambda r=r: r.infer({0: x})) for k, r in requests.items()}, runs, warmup)


def table(maps: dict, ms: dict, reverted: dict, load: float) -> str:
    """The markdown table of the three models."""
    fp32 = maps["FP32"]
    rows = ["| OpenVINO model | mAP50-95 | drop | ms | / FP32 | ops back in float |", "|---|---:|---:|---:|---:|---:|"]
    for k in maps:
        rows.append(f"| {k} | {maps[k]:.4f} | {fp32 - maps[k]:+.4f} | {ms[k]:.1f} | {ms[k] / ms['FP32']:.3f} | "
                    f"{reverted.get(k, '-')} |")
    return "\n".join(rows) + f"\n(load average {load:.1f} while timing)"


def run(weights: str | None = None, data: str | None = None, cfg: str = "yolov5n.yaml", epochs: int = 12,
        imgsz: int = 320, n_train: int = 300, n_val: int = 100, int8_images: int = 300,
        max_drop: float = 0.01, threads: int = 2, runs: int = 30, warmup: int = 5, workers: int = 2,
        project: str | Path = ROOT / "runs/int8_accuracy") -> dict:
    """Build the set (unless data), train (unless weights), export three ways, validate, time; returns the figures."""
    save_dir = Path(project)
    if data is None:
        data = str(generate_photo_shapes(save_dir / "data", skimage_photos(TRAIN_PHOTOS), skimage_photos(VAL_PHOTOS),
                                         n_train, n_val, imgsz))
    w = Path(weights) if weights else weak_model(data, cfg, epochs, imgsz, save_dir, workers)
    models = export_three(w, data, imgsz, int8_images, max_drop, save_dir / "exports")
    maps = {k: float(val.run(data, weights=str(f), imgsz=imgsz, batch_size=1, workers=workers, half=False,
                             plots=False, project=str(save_dir / "val"), name=k.replace(" ", "_"), exist_ok=True)[0][3])
            for k, f in models.items()}
    reverted = float_ops(models)
    load0 = loadavg()
    ms = latency(models, threads, runs, warmup, imgsz)
    text = table(maps, ms, reverted, (load0 + loadavg()) / 2)
    LOGGER.info(f"\nOpenVINO on {Path(data).name} val at {imgsz}, batch 1, {threads} threads, median of {runs}:\n"
                f"{text}")
    return {"map": maps, "ms": ms, "reverted": reverted, "table": text}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", default=None, help="checkpoint to quantize (default: train a weak one on the set's train split)")
    add("--data", default=None, help="dataset YAML to use instead of building the photo-shapes set")
    add("--cfg", default="yolov5n.yaml", help="model to train when no --weights")
    add("--epochs", type=int, default=12, help="training epochs when no --weights (few: a weak model)")
    add("--imgsz", type=int, default=320, help="the set's image size; training, export, validation and timing size")
    add("--n-train", type=int, default=300, help="train images of the built set")
    add("--n-val", type=int, default=100, help="val images of the built set")
    add("--int8-images", type=int, default=300, help="calibration images (train split)")
    add("--max-drop", type=float, default=0.01, help="the accuracy-aware export's --int8-max-drop")
    add("--threads", type=int, default=2, help="OpenVINO inference threads for timing")
    add("--runs", type=int, default=30, help="timed rounds")
    add("--warmup", type=int, default=5, help="untimed rounds first")
    add("--workers", type=int, default=2, help="dataloader workers")
    add("--project", default=str(ROOT / "runs/int8_accuracy"), help="folder for the set, training, exports")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    print_args(vars(opt))
    run(**vars(opt))
