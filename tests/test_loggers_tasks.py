"""Trackers beyond one detection run: --resume continues the same W&B run, and segmentation and classification log
their own results.csv keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

import train
from engine.tasks.classify import CLASSIFY
from engine.tasks.segment import SEGMENT
from tests.fixtures.loggers import results, train_tiny
from tests.fixtures.wandb_offline import read_run, run_file
from utils.callbacks import Callbacks


class Interrupted(Exception):
    """Raised by a callback to stop a run after its first checkpoint, as a kill would."""


def interrupted_then_resumed(tiny_data: str, tmp_path: Path) -> Path:
    """A 2-epoch run stopped after its first checkpoint, as a kill would stop it, then train.py --resume; its folder.
    The trackers are those the caller's environment turns on."""
    opt = train.parse_opt(known=True, argv=[])
    for k, v in dict(cfg="yolov5n.yaml", data=tiny_data, imgsz=64, batch_size=4, workers=0, device="cpu",
                     epochs=2, project=str(tmp_path / "runs"), name="resumed", noplots=True).items():
        setattr(opt, k, v)
    callbacks = Callbacks()

    def interrupt(last, epoch, *args):
        raise Interrupted(f"stopped after epoch {epoch}")

    callbacks.register_action("on_model_save", callback=interrupt)
    with pytest.raises(Interrupted):
        train.main(opt, callbacks)
    if "wandb" in sys.modules:
        sys.modules["wandb"].finish()  # what the interpreter's exit does for a killed run's W&B process
    run = Path(opt.save_dir)
    train.run(resume=str(run / "weights" / "last.pt"))
    return run


@pytest.mark.slow
def test_resume_continues_the_same_wandb_run(tiny_data, tmp_path):
    pytest.importorskip("wandb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        run = interrupted_then_resumed(tiny_data, tmp_path)
    first, second = (read_run(f) for f in run_file(run / "wandb"))
    assert first["id"] == second["id"] == (run / "wandb_id.txt").read_text()
    steps = [{r["_step"] for r in w["history"] if "train/box_loss" in r} for w in (first, second)]
    assert steps == [{0}, {1}]
    assert sorted(results(run)) == [0, 1]


@pytest.mark.slow
def test_resume_continues_the_same_mlflow_run(tiny_data, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        run = interrupted_then_resumed(tiny_data, tmp_path)
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.run_id == (run / "mlflow_run_id.txt").read_text()
    assert runs[0].info.status == "FINISHED"
    csv = results(run)
    history = client.get_metric_history(runs[0].info.run_id, "train/box_loss")
    assert {m.step: m.value for m in history} == {e: pytest.approx(r["train/box_loss"], rel=1e-4) for e, r in
                                                   csv.items()}
    assert sorted(csv) == [0, 1] and runs[0].data.params["opt/resume"] == "False"  # the first start's parameters


def tensorboard_scalars(run: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the scalars in a run folder's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    return {k: {e.step: e.value for e in ea.Scalars(k)} for k in ea.Tags()["scalars"]}


def assert_task_keys_logged(run: Path, keys: tuple[str, ...]) -> None:
    """TensorBoard holds exactly results.csv's columns (the task's keys), with its values."""
    csv = results(run)
    assert tuple(csv[0]) == keys
    scalars = tensorboard_scalars(run)
    assert set(scalars) == set(keys)
    for k in keys:
        assert scalars[k] == {e: pytest.approx(row[k], rel=1e-4, abs=1e-8) for e, row in csv.items()}, k


@pytest.mark.slow
def test_segmentation_logs_its_own_keys(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from utils.shapes import NAMES, generate_shapes_dataset

    root = generate_shapes_dataset(tmp_path / "seg", train=4, val=2, imgsz=64, segments=True, seed=2)
    data = tmp_path / "seg.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": dict(enumerate(NAMES))}))
    monkeypatch.setenv("YOLOV5_TENSORBOARD", "1")
    run = train_tiny(str(data), tmp_path / "runs", "seg", epochs=1, task="segment", noplots=True)
    assert "metrics/mAP_0.5:0.95(M)" in SEGMENT.result_keys
    assert_task_keys_logged(run, SEGMENT.result_keys)


@pytest.mark.slow
def test_classification_logs_its_own_keys(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from utils.classify_data import generate_shapes_cls

    data = generate_shapes_cls(tmp_path / "cls", train=4, val=2, imgsz=32, seed=4)
    monkeypatch.setenv("YOLOV5_TENSORBOARD", "1")
    run = train_tiny(str(data), tmp_path / "runs", "cls", epochs=1, task="classify")
    assert "metrics/accuracy_top1" in CLASSIFY.result_keys
    assert_task_keys_logged(run, CLASSIFY.result_keys)
