"""The project logger as a Python user meets it: configured on import, once, without doubling an app's own logging.

These run a fresh interpreter, because inside pytest the root logger already carries pytest's capture handlers.
"""

import logging
import os
import subprocess
import sys

import cv2

from tests.fixtures.inference import make_checkpoint, shapes_image
from tests.test_val import make_dataset
from utils import _ProjectLogHandler
from utils.general import LOGGER, ROOT, set_logging


def _python(code: str, **env) -> subprocess.CompletedProcess:
    """Run code in a new interpreter at the repository root; returns the finished process (text output)."""
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env = {**base, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_val_run_and_hub_results_print_from_python(tmp_path):
    data = make_dataset(tmp_path / "ds")
    weights = make_checkpoint(tmp_path / "best.pt")
    image = tmp_path / "im.jpg"
    cv2.imwrite(str(image), shapes_image(128, 128))
    code = f"""
import torch, val
val.run({str(data)!r}, weights={str(weights)!r}, imgsz=64, batch_size=2, device="cpu",
        project={str(tmp_path / 'runs')!r}, workers=0, plots=False)
import sys; print("=== hub ===", file=sys.stderr, flush=True)
model = torch.hub.load({str(ROOT)!r}, "custom", path={str(weights)!r}, source="local", _verbose=False)
results = model({str(image)!r}, size=128)
results.print()
results.save(save_dir={str(tmp_path / 'detect')!r})
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    val_err, hub_err = proc.stderr.split("=== hub ===")
    lines = val_err.splitlines()
    assert all(w in val_err for w in ("Class", "Images", "Instances", "mAP50-95"))  # the table header
    assert any(line.split()[:3] == ["all", "5", "9"] for line in lines)  # images, instances
    assert any(line.startswith("Speed: ") and "per image at shape (2, 3, 64, 64)" in line for line in lines)
    assert "Results saved to" in val_err and str(tmp_path / "runs" / "exp") in val_err
    assert "FP16" not in proc.stderr  # half=True is val.run's default; on CPU it quietly means FP32
    # _verbose=False quiets loading only: the results still print and say where they were saved
    assert "Fusing layers" not in hub_err and "AutoShape" not in hub_err
    assert "image 1/1: 128x128" in hub_err and "Saved 1 image to" in hub_err


def test_an_apps_own_logging_config_prints_each_line_once(tmp_path):
    code = """
import logging
logging.basicConfig(format="app| %(name)s %(message)s", level=logging.INFO)
from utils.general import LOGGER
LOGGER.info("one line")
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["app| yolov5 one line"]  # through the app's handler, not twice


def test_ranks_other_than_zero_log_warnings_only(tmp_path):
    code = """
from utils.general import LOGGER
LOGGER.info("info line")
LOGGER.warning("warning line")
"""
    assert _python(code, RANK="1").stderr.splitlines() == ["warning line"]
    assert _python(code, RANK="0").stderr.splitlines() == ["info line", "warning line"]


def test_set_logging_is_idempotent_and_follows_sys_stderr(capsys, monkeypatch):
    level, handlers = LOGGER.level, list(LOGGER.handlers)
    try:
        for _ in range(3):
            set_logging()
        ours = [h for h in LOGGER.handlers if isinstance(h, _ProjectLogHandler)]
        assert len(ours) == 1 and LOGGER.level == logging.INFO
        monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a script that configured nothing
        LOGGER.info("to the current stderr")
        assert capsys.readouterr().err == "to the current stderr\n"
        set_logging(verbose=False)
        LOGGER.info("hidden")
        assert capsys.readouterr().err == ""
    finally:
        LOGGER.setLevel(level)
        LOGGER.handlers[:] = handlers
