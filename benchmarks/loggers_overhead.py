"""Benchmark: what each experiment tracker adds to a small training run (wall and CPU seconds, and the ratio to a
run with every tracker off), in its offline mode so nothing leaves the machine.

Every configuration trains the same model on the same generated shapes data, each run in a fresh Python process
(so a tracker's import and its own processes, such as wandb-core, count: CPU seconds are the process tree's); the
configurations take turns round by round, so load on a shared machine falls on all of them alike. ClearML and
Comet are timed only when installed.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/loggers_overhead.py --epochs 3 --rounds 2
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.runner import run_task  # noqa: E402
from engine.tasks.detect import DETECT  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402
from utils.shapes import NAMES, generate_shapes_dataset  # noqa: E402

OFF = {"YOLOV5_TENSORBOARD": "0", "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "MLFLOW_TRACKING_URI": "",
       "CLEARML_OFFLINE_MODE": "", "COMET_MODE": "", "MLFLOW_ALLOW_FILE_STORE": "true"}


def configs(tmp: Path) -> dict[str, dict[str, str]]:
    """Environment per configuration: all trackers off, then one tracker on (offline) at a time."""
    out = {"none": {}, "tensorboard": {"YOLOV5_TENSORBOARD": "1"}, "wandb (offline)": {"WANDB_MODE": "offline"},
           "mlflow (file store)": {"MLFLOW_TRACKING_URI": (tmp / "mlruns").as_uri()}}
    if importlib.util.find_spec("clearml"):
        out["clearml (offline)"] = {"CLEARML_OFFLINE_MODE": "1", "CLEARML_CACHE_DIR": str(tmp / "clearml")}
    if importlib.util.find_spec("comet_ml"):
        out["comet (offline)"] = {"COMET_MODE": "offline"}
    return out


def timed_run(env: dict[str, str], **kwargs) -> tuple[float, float]:
    """(wall, CPU) seconds of one training run in a child process under env (CPU: the child's whole tree)."""
    args = [f"--{k}={v}" for k, v in kwargs.items()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--train", *args], env={**os.environ, **OFF, **env}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - t, cpu


def train_once(argv: list[str]) -> None:
    """The child's side of timed_run: one training run with the --key=value options given."""
    kwargs = dict(a[2:].split("=", 1) for a in argv)
    for k in ("epochs", "imgsz", "batch_size", "workers"):
        kwargs[k] = int(kwargs[k])
    run_task(DETECT, **kwargs)


def run(epochs: int = 3, rounds: int = 2, imgsz: int = 64, images: int = 24, cfg: str = "yolov5n.yaml") -> dict:
    """Median (wall, CPU) seconds per configuration over rounds, printed side by side with the ratio to 'none'."""
    tmp = Path(tempfile.mkdtemp(prefix="loggers_overhead_"))
    root = generate_shapes_dataset(tmp / "data", train=images, val=images // 2, imgsz=imgsz, seed=0)
    data = tmp / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": dict(enumerate(NAMES))}))
    times: dict[str, list[tuple[float, float]]] = {}
    for r in range(rounds):
        for name, env in configs(tmp).items():
            times.setdefault(name, []).append(timed_run(
                env, cfg=cfg, data=str(data), epochs=epochs, imgsz=imgsz, batch_size=8, workers=0, device="cpu",
                project=str(tmp / "runs"), name=f"{name.split()[0]}-{r}"))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    w0, c0 = med["none"]
    LOGGER.info(f"\n{epochs} epochs, {images} train images at {imgsz} px, {cfg}, median of {rounds} rounds")
    LOGGER.info(f"{'trackers':<22}{'wall s':>9}{'CPU s':>9}{'wall x':>9}{'CPU x':>9}")
    for k, (w, c) in med.items():
        LOGGER.info(f"{k:<22}{w:9.1f}{c:9.1f}{w / w0:9.2f}{c / c0:9.2f}")
    return med


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of run()."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration (the median is shown)")
    parser.add_argument("--imgsz", type=int, default=64, help="image size of the data and the training")
    parser.add_argument("--images", type=int, default=24, help="training images (validation: half as many)")
    parser.add_argument("--cfg", default="yolov5n.yaml", help="model YAML")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    if sys.argv[1:2] == ["--train"]:
        train_once(sys.argv[2:])
    else:
        run(**vars(parse_opt()))
