"""benchmarks/cuda_check.py on the CPU at tiny sizes: every step runs, checks and lands in the JSON and the log."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cuda_check_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "cc"
    done = subprocess.run([sys.executable, "benchmarks/cuda_check.py", "--device", "cpu", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    report = json.loads((out / "cuda_check.json").read_text())
    log = (out / "cuda_check.log").read_text()
    failed = [k for k, v in report["checks"].items() if not v["ok"]]
    assert done.returncode == 0 and not failed, f"{failed}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert report["environment"]["torch"] and report["environment"]["device"] == "cpu"
    names = " | ".join(report["checks"])
    for step in ("train yolov5n.yaml", "train yolov5n-csppc.yaml", "train yolov5n-seg-csppc.yaml",
                 "train yolov5n-csppc-cls", "val --half", "detect --half", "export .torchscript", "export .onnx",
                 "torchrun DDP", "torchrun DDP --sync-bn", "compare.py CUDA columns", "latency"):
        assert step in names, step
    assert "AMP check" not in names  # AMP is CUDA-only: not claimed on the CPU
    ratio = report["figures"]["latency_ms b1 eager"]["csppc/yolov5n"]
    assert 0 < ratio < 5 and report["figures"]["train_images_per_s b2"]["csppc/yolov5n"] > 0
    assert "$ " in log and "PASS  train yolov5n.yaml: exit 0" in log  # every command and the summary are logged
