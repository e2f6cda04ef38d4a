"""Fingerprint what train, val and predict produce for detect, segment and classify, to show a refactor changed nothing.

Each task's three scripts run as subprocesses (their real command lines) on a tiny generated shapes dataset: a seeded
2-epoch training on CPU with --workers 0, then val and predict with the trained best.pt. The script hashes
results.csv, every file val and predict write, and the lines each command logs (times, the repository path and the
output folder replaced by placeholders, tqdm bars off). Run it on the old code and on the new, then compare:

Usage:
    python benchmarks/engine_parity.py --out /tmp/parity --save before.json                # this checkout
    python benchmarks/engine_parity.py --root /tmp/parity-base --out /tmp/p0 --save base.json  # another checkout
    python benchmarks/engine_parity.py --out /tmp/parity --compare base.json                # exit 1 on a difference
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # run as a script from any folder

from utils.classify_data import generate_shapes_cls  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402
from utils.shapes import NAMES, generate_shapes_dataset  # noqa: E402

# Wall-clock figures differ run to run; everything else in a logged line must not
VOLATILE = [
    (re.compile(r"\d+(\.\d+)?(ms| hours|s\b)"), "<t>"),
    (re.compile(r"\b\d+(\.\d+)?s/it|\d+(\.\d+)?it/s"), "<rate>"),
]
BAR = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")  # a tqdm bar a loop shows whatever TQDM_DISABLE says: its redraws vary
COMMON = ["--device", "cpu", "--workers", "0"]


def make_data(out: Path) -> dict[str, Path]:
    """The three tiny datasets (64 px images) and their YAMLs under out/data; kept when already there."""
    d = out / "data"
    generate_shapes_dataset(d / "shapes", train=16, val=8, imgsz=64, seed=0)
    generate_shapes_dataset(d / "shapes-seg", train=16, val=8, imgsz=64, seed=0, segments=True)
    generate_shapes_cls(d / "shapes-cls", train=6, val=3, imgsz=32, seed=0)
    for cache in d.rglob("*.cache"):  # every run scans the labels afresh, so its log lines are the same
        cache.unlink()
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
    for name in ("shapes", "shapes-seg"):
        (d / f"{name}.yaml").write_text(f"path: {d / name}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return {"detect": d / "shapes.yaml", "segment": d / "shapes-seg.yaml", "classify": d / "shapes-cls"}


def commands(task: str, data: Path, runs: Path) -> list[tuple[str, list[str], Path]]:
    """(step, argv, the folder it writes) for a task's train, val and predict, in order."""
    best = runs / task / "train" / "weights" / "best.pt"
    folder = "" if task == "detect" else f"{task}/"
    images = data.parent / ("shapes-cls/val/circle" if task == "classify" else f"{data.stem}/images/val")
    where = ["--project", str(runs / task), "--exist-ok"]
    if task == "classify":
        train = ["--model", "yolov5n-csppc.yaml", "--data", str(data), "--img", "32", "--batch-size", "8"]
        val = ["--data", str(data), "--img", "32", "--batch-size", "8"]
    else:
        cfg = "yolov5n.yaml" if task == "detect" else "yolov5n-seg.yaml"
        train = ["--cfg", cfg, "--data", str(data), "--img", "64", "--batch-size", "8"]
        val = ["--data", str(data), "--img", "64", "--batch-size", "8", "--save-txt", "--save-conf", "--save-json"]
    predict = ["--source", str(images), "--save-txt", "--imgsz", "64" if task != "classify" else "32"]
    if task != "classify":
        predict += ["--save-conf", "--save-crop", "--conf-thres", "0.001", "--max-det", "5"]  # a 2-epoch model's boxes
    return [
        ("train", [f"{folder}train.py", *train, "--epochs", "2", "--seed", "0", *where, "--name", "train", *COMMON],
         runs / task / "train"),
        ("val", [f"{folder}val.py", "--weights", str(best), *val, *where, "--name", "val", *COMMON],
         runs / task / "val"),
        ("predict", [f"{folder}predict.py" if task != "detect" else "detect.py", "--weights", str(best), *predict,
                     *where, "--name", "predict", "--device", "cpu"], runs / task / "predict"),
    ]


def normalise(text: str, root: Path, out: Path) -> list[str]:
    """Logged lines with timings, the code's folder and the output folder replaced by placeholders."""
    lines = []
    for line in text.replace("\r", "\n").splitlines():
        if BAR.search(line):
            continue
        line = line.replace(str(out), "<out>").replace(str(root), "<root>")
        for pattern, repl in VOLATILE:
            line = pattern.sub(repl, line)
        if line.strip():
            lines.append(line)
    return lines


def file_hashes(folder: Path, step: str) -> dict[str, str]:
    """sha256 of every file a step wrote; training's checkpoints (dated) and images (drawn by matplotlib) aside."""
    out = {}
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or (step == "train" and f.name != "results.csv"):
            continue
        out[f.relative_to(folder).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return out


def run_step(root: Path, out: Path, argv: list[str], folder: Path, step: str) -> dict:
    """Run one script; its normalised log lines and the hashes of what it wrote."""
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0"}
    p = subprocess.run([sys.executable, *argv], cwd=root, env=env, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    lines = normalise(p.stdout + p.stderr, root, out)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return {"log": digest, "lines": lines, "files": file_hashes(folder, step)}


def run(root: str | Path = ROOT, out: str | Path = ROOT / "runs/parity", tasks: tuple[str, ...] = ("detect",
        "segment", "classify"), save: str | Path | None = None, compare: str | Path | None = None) -> dict:
    """Run every task's steps in root's code; log one fingerprint line per step; save or compare them."""
    root, out = Path(root).resolve(), Path(out).resolve()
    data = make_data(out)
    shutil.rmtree(out / "runs", ignore_errors=True)  # label files are appended to: start from empty folders
    result = {}
    for task in tasks:
        for step, argv, folder in commands(task, data[task], out / "runs"):
            r = run_step(root, out, argv, folder, step)
            result[f"{task}/{step}"] = r
            files = " ".join(f"{k}={v}" for k, v in r["files"].items())
            LOGGER.info(f"{task:>9} {step:<8} log {r['log']} ({len(r['lines'])} lines)  {files}")
    if save:
        Path(save).write_text(json.dumps(result, indent=1))
    if compare:
        result["differences"] = differences(json.loads(Path(compare).read_text()), result)
        LOGGER.info("identical" if not result["differences"] else "\n".join(result["differences"]))
    return result


def differences(before: dict, after: dict) -> list[str]:
    """Each step whose log or files differ, with the first differing log line."""
    diffs = []
    for key, b in before.items():
        a = after.get(key)
        if a is None:  # a task left out of this run
            continue
        if a["files"] != b["files"]:
            diffs.append(f"{key}: files differ: {sorted(set(a['files'].items()) ^ set(b['files'].items()))}")
        if a["log"] != b["log"]:
            first = next((f"- {x}\n+ {y}" for x, y in zip(b["lines"], a["lines"]) if x != y),
                         f"{len(b['lines'])} lines before, {len(a['lines'])} now")
            diffs.append(f"{key}: log differs:\n{first}")
    return diffs


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ROOT), help="checkout whose scripts run (default: this one)")
    parser.add_argument("--out", default=str(ROOT / "runs/parity"), help="folder for the data and the runs")
    parser.add_argument("--tasks", nargs="+", default=["detect", "segment", "classify"], help="tasks to run")
    parser.add_argument("--save", default=None, help="write the fingerprints to this JSON file")
    parser.add_argument("--compare", default=None, help="compare with fingerprints saved earlier; exit 1 if any differ")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    res = run(**{**vars(opt), "tasks": tuple(opt.tasks)})
    sys.exit(1 if res.get("differences") else 0)
