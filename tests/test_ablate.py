"""benchmarks/ablate.py at a tiny size: tables, CSVs, a failed run, a resumed killed run, a call that trains nothing."""

import csv
import math

import pytest

import train
from benchmarks import ablate
from models.experimental import torch_safe_load
from utils.callbacks import Callbacks
from utils.loggers import read_results_epochs
from utils.stats import paired_difference, summarize

CFGS = ("yolov5n.yaml", "yolov5n-csppc.yaml")


def kill_after_first_epoch(data: str, run_dir) -> None:
    """Leave run_dir as a training killed after epoch 0 of 2 would: an unstripped last.pt, no best.pt validation."""

    class Killed(Exception):
        pass

    def stop(last, epoch, final_epoch, best_fitness, fi):
        raise Killed

    opt = train.parse_opt(known=True, argv=[])
    for k, v in {"cfg": CFGS[1], "data": data, "epochs": 2, "imgsz": 64, "batch_size": 4, "workers": 0,
                 "device": "cpu", "seed": 1, "project": str(run_dir.parent), "name": run_dir.name, "exist_ok": True,
                 "noplots": True}.items():
        setattr(opt, k, v)
    callbacks = Callbacks()
    callbacks.register_action("on_model_save", "kill", stop)
    with pytest.raises(Killed):
        train.main(opt, callbacks)
    ckpt = torch_safe_load(run_dir / "weights" / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["optimizer"] is not None


def read_csv(f) -> list[dict]:
    with open(f) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_ablate_tables_csvs_failure_and_resume(tiny_data, tmp_path, monkeypatch):
    project = tmp_path / "abl"
    killed = project / "yolov5n-csppc" / "seed1"
    kill_after_first_epoch(tiny_data, killed)

    calls, fail = [], {("yolov5n", 1)}
    real_run = train.run

    def spy(**kw):
        key = ("resume", kw["resume"]) if "resume" in kw else (kw["name"].replace("seed", ""), kw["cfg"])
        calls.append(key)
        if "resume" not in kw and (kw["cfg"].split(".")[0], kw["seed"]) in fail:
            raise RuntimeError("simulated crash")
        return real_run(**kw)

    monkeypatch.setattr(train, "run", spy)
    args = {"cfg": CFGS, "data": tiny_data, "epochs": 1, "seeds": (0, 1), "imgsz": 64, "batch_size": 4, "workers": 0,
            "device": "cpu", "project": str(project), "latency_runs": 2}

    # 1st call: yolov5n seed 1 crashes, yolov5n-csppc seed 1 continues its killed training
    summary = ablate.run(**args)
    assert calls == [("0", "yolov5n.yaml"), ("0", "yolov5n-csppc.yaml"), ("1", "yolov5n.yaml"),
                     ("resume", str(killed / "weights" / "last.pt"))]
    assert read_results_epochs(killed / "results.csv") == [0, 1]  # continued in place, not restarted
    assert torch_safe_load(killed / "weights" / "last.pt")["epoch"] == -1
    rows = read_csv(project / "runs.csv")
    assert [(r["cfg"], r["seed"], r["status"]) for r in rows] == [
        ("yolov5n", "0", "ok"), ("yolov5n-csppc", "0", "ok"), ("yolov5n", "1", "failed"), ("yolov5n-csppc", "1", "ok")]
    assert "simulated crash" in rows[2]["error"]
    assert [s["n"] for s in summary] == [1, 2] and summary[1]["diff"]["n"] == 1  # only seed 0 is paired
    md = (project / "ablation.md").read_text()
    assert "3/4 runs complete" in md and "failed: yolov5n seed 1" in md and "(1 run)" in md

    # 2nd call: only the failed run trains; finished runs keep their weights untouched
    fail.clear()
    done = {p: p.stat().st_mtime_ns for p in project.glob("*/seed*/weights/best.pt")}
    calls.clear()
    summary = ablate.run(**args)
    assert calls == [("1", "yolov5n.yaml")]
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    rows = read_csv(project / "runs.csv")
    assert [r["status"] for r in rows] == ["ok"] * 4

    # the reports agree with the per-run metrics
    vals = {(r["cfg"], int(r["seed"])): {m: float(r[m]) for m in ablate.METRICS} for r in rows}
    for s in summary:
        for m in ablate.METRICS:
            ref = summarize([vals[(s["model"], k)][m] for k in (0, 1)])
            assert s[m]["n"] == 2 and s[m]["mean"] == pytest.approx(ref["mean"], abs=1e-12)
            assert s[m]["ci_lo"] == pytest.approx(ref["ci_lo"], abs=1e-12)
        assert s["params"] > 100_000 and s["gflops"] > 0 and s["latency_ms"] > 0
    diff = paired_difference([vals[("yolov5n-csppc", k)]["mAP50-95"] for k in (0, 1)],
                             [vals[("yolov5n", k)]["mAP50-95"] for k in (0, 1)])
    assert summary[1]["diff"]["mean"] == pytest.approx(diff["mean"], abs=1e-12)
    assert summary[0]["diff"]["mean"] == 0.0  # the baseline against itself
    assert summary[1]["params"] < summary[0]["params"]  # CSPPC's partial convolutions are lighter

    md = (project / "ablation.md").read_text()
    m = summary[1]["mAP50-95"]
    assert f"| yolov5n-csppc | 2 | {summary[1]['params']:,} |" in md
    assert f"{m['mean']:.3f} ± {m['std']:.3f} [{m['ci_lo']:.3f}, {m['ci_hi']:.3f}]" in md
    if math.isfinite(diff["ci_lo"]):
        assert f"[{diff['ci_lo']:+.4f}, {diff['ci_hi']:+.4f}]" in md
    assert "4/4 runs complete" in md and "failed" not in md

    summ = read_csv(project / "summary.csv")
    assert [r["model"] for r in summ] == ["yolov5n", "yolov5n-csppc"]
    assert float(summ[1]["mAP50-95_mean"]) == pytest.approx(m["mean"], abs=1e-9)
    assert float(summ[1]["dmAP50-95_ci_hi"]) == pytest.approx(diff["ci_hi"], abs=1e-9, nan_ok=True)
    assert int(summ[1]["dmAP50-95_pairs"]) == 2
    png = project / "ablation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # 3rd call: everything is complete, nothing trains
    calls.clear()
    ablate.run(**args)
    assert calls == []


def test_run_state_reads_the_run_folder(tmp_path):
    assert ablate.run_state(tmp_path / "missing") == "new"
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "last.pt").write_bytes(b"cut short by a kill")
    assert ablate.run_state(tmp_path) == "new"  # unreadable checkpoint: train again
    (tmp_path / ablate.DONE).write_text("{}")
    assert ablate.run_state(tmp_path) == "done"


def test_markdown_marks_differences_within_noise():
    def s(name, vals, diff):
        return {"model": name, "n": len(vals), "params": 1000, "gflops": 1.0, "latency_ms": 2.0,
                **{m: summarize(vals) for m in ablate.METRICS}, "diff": diff}

    base = [0.50, 0.52, 0.51]
    rows = [s("a", base, paired_difference(base, base)),
            s("b", [0.52, 0.50, 0.53], paired_difference([0.52, 0.50, 0.53], base)),  # +0.02, -0.02, +0.02
            s("c", [0.60, 0.61, 0.61], paired_difference([0.60, 0.61, 0.61], base))]  # +0.10, +0.09, +0.10
    md = ablate.markdown(rows)
    assert "| b | 3 | +0.0067 |" in md and "no (within noise)" in md.split("| b |")[-1].split("\n")[0]
    assert md.split("| c |")[-1].split("\n")[0].rstrip().endswith("| yes |")
    assert "0.510 ± 0.010 [0.485, 0.535]" in md  # mean 0.51, s = 0.01, t(0.975, 2) = 4.303


def test_training_record_and_table_from_results_csv(tmp_path):
    """The one-seed training figures (formerly benchmarks/train_shapes.py): read from a run's results.csv."""
    from utils.loggers import write_results_row

    f = tmp_path / "results.csv"
    for epoch, (m50, m5095) in enumerate([(0.5, 0.3), (0.92, 0.61), (0.9, 0.66)]):
        write_results_row(f, epoch, [0.1, 0.1, 0.1, 0.8, 0.7, m50, m5095, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    record = ablate.training_record(f, minutes=3.0, target=0.9)
    assert record == {"epochs": 3, "train_min": 3.0, "s_per_epoch": 60.0, "best_mAP50": 0.92,
                      "best_mAP50-95": 0.66, "target_epoch": 1}
    assert ablate.training_record(f, minutes=None, target=0.95)["target_epoch"] is None
    rows = [{"cfg": "yolov5n", "seed": 0, "status": "ok", **record},
            {"cfg": "yolov5n-csppc", "seed": 0, "status": "failed"}]
    table = ablate.training_table(rows, 0.9)
    assert "| yolov5n | 0 | 3 | 60.0 | 0.920 | 0.660 | epoch 1 | 3.0 |" in table
    assert "yolov5n-csppc" not in table  # a failed run has no training figures
