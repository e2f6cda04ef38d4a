"""train.py end to end on a tiny shapes dataset: run folder, checkpoints, fine-tuning, resume after a kill, DDP."""

import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import train
from models.experimental import attempt_load, torch_safe_load
from tests.conftest import FIXTURES
from utils.general import (
    LOGGER,
    ROOT,
    labels_to_class_weights,
    labels_to_image_weights,
    one_cycle,
)
from utils.loggers import RESULTS_KEYS, read_results_epochs, write_results_row
from utils.shapes import NAMES

UPSTREAM = FIXTURES / "upstream_v7_yolov5n_nc3.pt"
TIMEOUT = 300  # seconds; a subprocess still running after this is killed with its whole process group


def base_args(data: str, project: Path, **kw) -> dict:
    return {"cfg": "yolov5n.yaml", "data": data, "imgsz": 64, "batch_size": 4, "workers": 0, "device": "cpu",
            "project": str(project), "name": "exp", **kw}


def cli(args: dict) -> list[str]:
    out = []
    for k, v in args.items():
        flag = f"--{k.replace('_', '-')}"
        out += [flag] if v is True else [flag, *map(str, v)] if isinstance(v, list) else [flag, str(v)]
    return out


def env_one_thread() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        self.level = LOGGER.level
        LOGGER.setLevel(logging.INFO)
        LOGGER.addHandler(self)
        return self

    def __exit__(self, *exc):
        LOGGER.removeHandler(self)
        LOGGER.setLevel(self.level)


def plain_types(x) -> bool:
    """Only YAML-plain values (no Path or other objects) anywhere in x."""
    if isinstance(x, dict):
        return all(isinstance(k, (str, int)) and plain_types(v) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return all(plain_types(v) for v in x)
    return x is None or isinstance(x, (str, int, float, bool))


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> tuple[Path, list[str]]:
    """One in-process run of one epoch with plots: its run folder and its log lines."""
    with LogCapture() as log:
        opt = train.run(**base_args(tiny_data, tmp_path_factory.mktemp("runs"), epochs=1))
    return Path(opt.save_dir), log.lines


@pytest.fixture(scope="module")
def trained_run(trained) -> Path:
    return trained[0]


def test_run_writes_every_file(trained_run):
    d = trained_run
    for name in ("weights/last.pt", "weights/best.pt", "hyp.yaml", "opt.yaml", "results.csv", "results.png",
                 "labels.jpg", "labels_correlogram.jpg", "train_batch0.jpg", "train_batch1.jpg", "train_batch2.jpg",
                 "confusion_matrix.png", "PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png",
                 "val_batch0_labels.jpg", "val_batch0_pred.jpg"):
        assert (d / name).is_file(), f"{name} missing from {sorted(p.name for p in d.rglob('*'))}"
    assert not list(d.rglob("*.tmp*")), "temporary checkpoint files left behind"

    header = [c.strip() for c in (d / "results.csv").read_text().splitlines()[0].split(",")]
    assert header == ["epoch", *RESULTS_KEYS]
    assert read_results_epochs(d / "results.csv") == [0]

    opt_yaml = yaml.safe_load((d / "opt.yaml").read_text())
    assert opt_yaml["epochs"] == 1 and opt_yaml["imgsz"] == 64 and opt_yaml["hyp"]["lr0"] == 0.01
    assert yaml.safe_load((d / "hyp.yaml").read_text())["momentum"] == 0.937


def test_start_logs_options_layer_table_and_summary(trained):
    lines = trained[1]
    args = next(x for x in lines if "train: " in x)
    assert "cfg=yolov5n.yaml" in args and "epochs=1" in args and "entity=None" in args and "bucket=" in args
    table = next(i for i, x in enumerate(lines) if "from  n    params  module" in x)
    i, summary = next((i, x) for i, x in enumerate(lines) if " summary: " in x)
    assert i > table and "models.yolo.Detect" in lines[i - 1]  # right under the layer table, as in v7.0
    m = re.fullmatch(r"YOLOv5n summary: (\d+) layers, (\d+) parameters, (\d+) gradients, ([\d.]+) GFLOPs", summary)
    assert m, summary
    model = train.Model("yolov5n.yaml", nc=6)
    n_p = sum(p.numel() for p in model.parameters())
    assert (int(m[1]), int(m[2]), int(m[3])) == (len(list(model.modules())), n_p, n_p)
    assert float(m[4]) > 0
    assert not any("ignored" in x for x in lines)  # no v7.0 logger flag set, no warning


def test_v7_logger_flags_parse_and_only_bucket_is_reported(tmp_path, caplog):
    """W&B flags parse (CLI) and are accepted by run() (the W&B logger uses them); --bucket alone is reported unused,
    by one warning line, the same from the CLI and from Python."""
    flags = ["--entity", "team", "--upload_dataset", "--bbox_interval", "5", "--artifact_alias", "v3",
             "--bucket", "my-bucket"]
    defaults = train.parse_opt(argv=[])
    assert (defaults.entity, defaults.upload_dataset, defaults.bbox_interval, defaults.artifact_alias) == (
        None, False, -1, "latest")
    parsed = train.parse_opt(argv=flags)
    assert (parsed.entity, parsed.upload_dataset, parsed.bbox_interval, parsed.artifact_alias) == (
        "team", True, 5, "v3")
    assert train.parse_opt(argv=["--upload_dataset", "val"]).upload_dataset == "val"
    assert list(train.INACTIVE) == ["bucket"]
    missing = str(tmp_path / "missing.yaml")  # main() stops at the data check, after the options are reported
    opt = train.parse_opt(argv=["--cfg", "yolov5n.yaml", "--data", missing, *flags])
    with caplog.at_level(logging.INFO, logger="yolov5"), pytest.raises(FileNotFoundError, match="missing.yaml"):
        train.main(opt)
    cli = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "entity=team" in caplog.text and "bucket=my-bucket" in caplog.text  # the options line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="yolov5"), pytest.raises(FileNotFoundError, match="missing.yaml"):
        train.run(cfg="yolov5n.yaml", data=missing, entity="team", upload_dataset=True, bbox_interval=5,
                  artifact_alias="v3", bucket="my-bucket")
    from_python = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert cli == from_python == [
        "WARNING Google Cloud Storage option --bucket my-bucket ignored: this project has no cloud sync"]


def test_final_checkpoints_are_stripped_and_safe(trained_run):
    for f in ("last.pt", "best.pt"):
        ckpt = torch_safe_load(trained_run / "weights" / f)  # weights_only loading with the allowlist
        assert ckpt["epoch"] == -1 and ckpt["optimizer"] is None and ckpt["ema"] is None and ckpt["updates"] is None
        assert ckpt["git"] is None and isinstance(ckpt["date"], str)
        assert plain_types(ckpt["opt"])
        m = ckpt["model"]
        assert next(m.parameters()).dtype == torch.float16
        assert m.names == dict(enumerate(NAMES)) and m.nc == 6
        assert m.hyp["label_smoothing"] == 0.0
        assert m.hyp["obj"] == pytest.approx(1.0 * (64 / 640) ** 2)  # gains scaled by image size (3 layers)
        assert m.class_weights.shape == (6,)
    model = attempt_load(trained_run / "weights" / "best.pt")
    pred = model(torch.zeros(1, 3, 64, 64))[0]
    assert pred.shape == (1, 3 * (64 + 16 + 4), 11)


def test_resume_of_finished_run_is_refused(trained_run):
    before = (trained_run / "opt.yaml").read_text()
    with pytest.raises(ValueError, match="finished \\(stripped\\) checkpoint, nothing to resume"):
        train.run(resume=str(trained_run / "weights" / "last.pt"))
    assert (trained_run / "opt.yaml").read_text() == before  # nothing was written


def test_finetune_from_upstream_checkpoint(tiny_data, tmp_path):
    """Upstream YOLOv5 v7.0 yolov5n (nc=3) into a 6-class model: all but the 6 class-sized head tensors transfer;
    with --freeze 10 the backbone keeps exactly the upstream weights."""
    shapes = json.loads((FIXTURES / "upstream_v7_yolov5n_nc3_state_dict_shapes.json").read_text())
    n_head = sum(k.startswith("model.24.m.") for k in shapes)
    upstream = torch_safe_load(UPSTREAM)["model"].float().state_dict()
    args = base_args(tiny_data, tmp_path, cfg="", weights=str(UPSTREAM), epochs=1, noplots=True, freeze=[10],
                     multi_scale=True, image_weights=True, cos_lr=True, optimizer="AdamW", label_smoothing=0.1)
    with LogCapture() as log:
        opt = train.run(**args)
    assert f"Transferred {len(shapes) - n_head}/{len(shapes)} items from {UPSTREAM}" in log.lines
    best = torch_safe_load(Path(opt.save_dir) / "weights" / "best.pt")["model"].float()
    sd = best.state_dict()
    backbone = [k for k, v in best.named_parameters() if int(k.split(".")[1]) < 10]
    assert backbone and all(torch.allclose(sd[k], upstream[k], atol=1e-3) for k in backbone)
    assert best.hyp["label_smoothing"] == 0.1
    head = "model.24.m.0.weight"
    assert sd[head].shape[0] == 3 * (5 + 6) and upstream[head].shape[0] == 3 * (5 + 3)


def run_until(cmd: list[str], pattern: str, timeout: float = TIMEOUT) -> str:
    """Start cmd, read its output until pattern appears, then kill it with SIGKILL; return the output."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_one_thread(),
                         start_new_session=True)
    out, deadline = b"", time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
                if re.search(pattern, out.decode(errors="replace")):
                    return out.decode(errors="replace")
        raise AssertionError(f"pattern {pattern!r} never appeared:\n{out.decode(errors='replace')[-3000:]}")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def run_to_end(cmd: list[str], timeout: float = TIMEOUT) -> str:
    """Run cmd to completion (killing its process group after timeout); return output, fail on non-zero exit."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_one_thread(),
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise AssertionError(f"timed out after {timeout}s:\n{out.decode(errors='replace')[-3000:]}") from None
    text = out.decode(errors="replace")
    assert p.returncode == 0, text[-3000:]
    return text


@pytest.mark.slow
def test_resume_after_kill_mid_epoch(tiny_data, tmp_path):
    args = base_args(tiny_data, tmp_path, epochs=2, noplots=True)
    # epoch 1's progress bar shows "1/1" once its first batch is done: the run is then killed mid-epoch
    run_until([sys.executable, "train.py", *cli(args)], r"\b1/1\s+[\d.]+G\s")
    last = tmp_path / "exp" / "weights" / "last.pt"
    ckpt = torch_safe_load(last)
    assert ckpt["epoch"] == 0 and ckpt["optimizer"] is not None and ckpt["ema"] is not None and ckpt["updates"] > 0
    assert plain_types(ckpt["opt"])
    assert read_results_epochs(tmp_path / "exp" / "results.csv") == [0]

    out = run_to_end([sys.executable, "train.py", "--resume", str(last)])
    assert f"Resuming training from {last} from epoch 1 to 2 total epochs" in out
    assert read_results_epochs(tmp_path / "exp" / "results.csv") == [0, 1]
    assert torch_safe_load(last)["epoch"] == -1  # finished and stripped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # continued in place, no new run folder


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_data, tmp_path):
    args = base_args(tiny_data, tmp_path, epochs=1, noplots=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
           *cli(args)]
    out = run_to_end(cmd)
    assert "DDP: 2 processes, backend gloo, batch 2 per rank" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # only rank 0 made a run folder
    d = tmp_path / "exp"
    assert (d / "weights" / "last.pt").is_file() and (d / "weights" / "best.pt").is_file()
    assert read_results_epochs(d / "results.csv") == [0]
    assert torch_safe_load(d / "weights" / "best.pt")["model"].names == dict(enumerate(NAMES))


# Helpers -----------------------------------------------------------------------------------------------------


def test_results_csv_keeps_one_row_per_epoch(tmp_path):
    f = tmp_path / "results.csv"
    for e in (0, 1, 2):
        write_results_row(f, e, [float(e)] * len(RESULTS_KEYS))
    write_results_row(f, 2, [9.0] * len(RESULTS_KEYS))  # epoch 2 repeated after a resume
    write_results_row(f, 3, [3.0] * len(RESULTS_KEYS))
    assert read_results_epochs(f) == [0, 1, 2, 3]
    rows = [r.split(",") for r in f.read_text().splitlines()[1:]]
    assert float(rows[2][1]) == 9.0


def test_lr_schedule_helpers():
    f = one_cycle(1.0, 0.01, 100)
    assert f(0) == pytest.approx(1.0) and f(50) == pytest.approx(0.505) and f(100) == pytest.approx(0.01)


def test_class_and_image_weights():
    labels = [np.array([[0, 0.5, 0.5, 0.1, 0.1], [0, 0.2, 0.2, 0.1, 0.1]]), np.array([[1, 0.5, 0.5, 0.1, 0.1]]),
              np.zeros((0, 5))]
    w = labels_to_class_weights(labels, nc=3)
    assert w.tolist() == pytest.approx([0.5 / 2.5, 1 / 2.5, 1 / 2.5])  # 1/2, 1/1, and an absent class counts as 1
    iw = labels_to_image_weights(labels, nc=3, class_weights=np.array([1.0, 10.0, 100.0]))
    assert iw.tolist() == [2.0, 10.0, 0.0]
