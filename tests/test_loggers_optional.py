"""ClearML and Comet, optional (not in requirements.txt): in their offline modes, a 2-epoch run holds every epoch's
results.csv values, the hyperparameters, the images and best.pt. Each test is skipped when its package is absent."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.loggers import results, train_tiny
from utils.loggers import RESULTS_KEYS

CLOSE = dict(rel=1e-4, abs=1e-8)
IMAGES = {"labels", "train_batch0", "results", "confusion_matrix", "val_batch0_pred"}
HAVE = {p: importlib.util.find_spec(p) is not None for p in ("clearml", "comet_ml")}


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory) -> tuple[Path, Path]:
    """2 epochs with ClearML and Comet offline (whichever is installed): (run folder, ClearML's cache folder)."""
    if not any(HAVE.values()):
        pytest.skip("neither clearml nor comet_ml is installed (both optional)")
    tmp = tmp_path_factory.mktemp("optional")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARML_OFFLINE_MODE", "1")
        mp.setenv("CLEARML_CACHE_DIR", str(tmp / "clearml"))
        mp.setenv("COMET_MODE", "offline")
        return train_tiny(tiny_data, tmp / "runs", "optional"), tmp / "clearml"


def expected(run: Path) -> dict[tuple[str, int], float]:
    """{(key, epoch): value} of results.csv."""
    return {(k, e): v for e, row in results(run).items() for k, v in row.items()}


@pytest.mark.slow
@pytest.mark.skipif(not HAVE["clearml"], reason="clearml is optional and not installed")
def test_clearml_offline_session_holds_results_hyp_images_and_best(run):
    save_dir, cache = run
    (session,) = [p for p in (cache / "offline").glob("offline-*") if p.is_dir()]
    task = json.loads((session / "task.json").read_text())
    assert task["name"] == "optional" and task["project_name"] == "runs"
    assert task["hyperparams"]["Hyperparameters"]["lr0"]["value"] == "0.01"
    assert task["hyperparams"]["Args"]["epochs"]["value"] == "2"
    events = [e for line in (session / "metrics.jsonl").read_text().splitlines() for e in json.loads(line)]
    scalars = {(f"{e['metric']}/{e['variant']}", e["iter"]): e["value"] for e in events
               if e["type"] == "training_stats_scalar"}
    assert scalars == pytest.approx(expected(save_dir), **CLOSE)
    assert IMAGES <= {e["variant"] for e in events if e["type"] == "training_debug_image"}
    (best,) = [a for a in task["execution"]["artifacts"] if a["key"] == "best.pt"]
    assert Path(best["uri"]).stat().st_size == (save_dir / "weights" / "best.pt").stat().st_size


@pytest.mark.slow
@pytest.mark.skipif(not HAVE["comet_ml"], reason="comet_ml is optional and not installed")
def test_comet_offline_archive_holds_results_params_images_and_best(run):
    save_dir, _ = run
    (archive,) = (save_dir / "comet").glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        messages = [json.loads(x) for x in z.read("messages.json").decode().splitlines()]
    pay = [(m["type"], m["payload"]) for m in messages]
    metrics = {(p["metric"]["metricName"], p["metric"]["step"]): float(p["metric"]["metricValue"])
               for t, p in pay if t == "metric_msg" and p["metric"]["metricName"] in RESULTS_KEYS}
    assert metrics == pytest.approx(expected(save_dir), **CLOSE)
    params = {p["param"]["paramName"]: p["param"]["paramValue"] for t, p in pay if t == "parameter_msg"}
    assert params["hyp/lr0"] == 0.01 and params["opt/epochs"] == 2
    uploads = [p for t, p in pay if t == "file_upload"]
    images = {Path(p["additional_params"]["figName"]).stem for p in uploads if p["upload_type"] == "visualization"}
    assert IMAGES <= images, images
    (model,) = [p["additional_params"] for p in uploads if p["upload_type"] == "model-element"]
    assert (model["fileName"], model["groupingName"]) == ("best.pt", "best")
    with zipfile.ZipFile(archive) as z:  # the archive holds best.pt's bytes under the message's file name
        size = z.getinfo([p["file_path"] for p in uploads if p["upload_type"] == "model-element"][0]).file_size
    assert size == (save_dir / "weights" / "best.pt").stat().st_size
