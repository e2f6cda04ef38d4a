"""TensorBoard, Weights & Biases (offline) and MLflow (file store) on one 2-epoch run, each read back with the
tracker's own reader: every epoch's metrics equal results.csv's, the hyperparameters, the images, best.pt."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.loggers import results, train_tiny
from tests.fixtures.wandb_offline import read_run, run_file
from utils.loggers import RESULTS_KEYS

CLOSE = dict(rel=1e-4, abs=1e-8)  # results.csv keeps 5 significant digits
IMAGES = ("labels", "train_batch0", "train_batch2", "results", "confusion_matrix", "PR_curve", "val_batch0_pred")


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory) -> Path:
    """2 epochs with all three trackers on, --bbox_interval 1 and --upload_dataset; the run folder."""
    tmp = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLOV5_TENSORBOARD", "1")
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("MLFLOW_TRACKING_URI", (tmp / "mlruns").as_uri())
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store for those who ask for it
        return train_tiny(tiny_data, tmp / "runs", "trackers", entity="team", bbox_interval=1, upload_dataset=True)


def test_tensorboard_events_hold_results_hyp_images_and_graph(run):
    pytest.importorskip("tensorboard")  # in requirements.txt; skipped only in a venv that predates it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0, "tensors": 0}).Reload()
    tags = ea.Tags()
    csv = results(run)
    for k in RESULTS_KEYS:
        assert {e.step: e.value for e in ea.Scalars(k)} == {i: pytest.approx(r[k], **CLOSE) for i, r in csv.items()}
    hyp_text = ea.Tensors("hyp/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "lr0: 0.01" in hyp_text and "momentum: 0.937" in hyp_text
    assert "epochs: 2" in ea.Tensors("opt/text_summary")[0].tensor_proto.string_val[0].decode()
    for name in IMAGES:
        (im,) = ea.Images(name)
        assert im.width > 0 and im.encoded_image_string[:4] == b"\x89PNG", name
    assert tags["graph"], "no model graph"


def test_wandb_offline_run_holds_results_config_images_boxes_and_artifacts(run):
    pytest.importorskip("wandb")
    (f,) = run_file(run / "wandb")
    w = read_run(f)
    assert (w["project"], w["entity"], w["name"]) == ("runs", "team", "trackers")
    assert w["id"] == (run / "wandb_id.txt").read_text()
    assert w["config"]["hyp/lr0"] == 0.01 and w["config"]["opt/epochs"] == 2 and w["config"]["opt/bbox_interval"] == 1
    steps = {}
    for row in w["history"]:
        steps.setdefault(row["_step"], {}).update(row)
    csv = results(run)
    assert set(csv) <= set(steps)
    for epoch, r in csv.items():
        assert {k: steps[epoch][k] for k in RESULTS_KEYS} == pytest.approx(r, **CLOSE)
        boxes = steps[epoch]["Bounding Box Debugger/Images/count"]  # --bbox_interval 1: every epoch
        assert 1 <= boxes <= 6 and steps[epoch]["Bounding Box Debugger/Images/all_boxes"]
    logged = {k.split("/")[0] for row in w["history"] for k in row if k.endswith("/_type")}
    assert set(IMAGES) <= logged
    media = list((f.parent / "files" / "media" / "images").rglob("*.png"))
    assert len(media) >= len(IMAGES)
    arts = {a["name"]: a for a in w["artifacts"]}
    model = arts[f"run_{w['id']}_model"]
    assert model["type"] == "model" and model["files"] == ["best.pt"] and "best" in model["aliases"]
    train, val = arts["tiny_train"], arts["tiny_val"]
    assert train["type"] == val["type"] == "dataset" and "latest" in val["aliases"]
    assert len([p for p in train["files"] if p.startswith("images/train/")]) == 12
    assert len([p for p in val["files"] if p.startswith("labels/val/")]) == 6


def test_mlflow_file_store_holds_results_params_images_and_best(run):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run.parent.parent / "mlruns").as_uri())
    exp = client.get_experiment_by_name("runs")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.run_name == "trackers" and r.info.status == "FINISHED"
    assert r.data.params["hyp/lr0"] == "0.01" and r.data.params["opt/epochs"] == "2"
    csv = results(run)
    for k in RESULTS_KEYS:
        history = {m.step: m.value for m in client.get_metric_history(r.info.run_id, k)}
        assert history == {i: pytest.approx(row[k], **CLOSE) for i, row in csv.items()}, k
    images = {Path(a.path).stem for a in client.list_artifacts(r.info.run_id, "images")}
    assert set(IMAGES) <= images
    assert [a.path for a in client.list_artifacts(r.info.run_id, "weights")] == ["weights/best.pt"]
