"""Multi-seed ablation: train every (cfg, seed) pair, validate each best.pt, and report means with t intervals.

One training run per model is not evidence on a small dataset: the same recipe moves by a point of mAP or more from
seed to seed. This script trains each model once per seed through train.run(), validates every best.pt with
val.run(), measures parameters, GFLOPs and fused CPU latency once per model, and reports per model the mean ± sample
std and the 95% Student-t interval of P, R, mAP50 and mAP50-95, then every model's paired difference in mAP50-95 to
the first model over the seeds both completed.

Each run trained in the call also reports its training: epochs, minutes, seconds per epoch (training and
validation), the best mAP50 and mAP50-95 over its epochs (results.csv) and the first epoch mAP50 reached --target.
With one seed this is the single training benchmark of two models (formerly benchmarks/train_shapes.py).

Runs live in <project>/<cfg stem>/seed<N>. A run whose metrics were written (ablate.json) is not trained again; a
killed training continues from its last.pt with train.py's --resume; a run that fails is reported and left out of
the statistics while the others still count. A second call therefore only does the missing work.

Usage:
    python benchmarks/ablate.py --cfg yolov5n.yaml yolov5n-csppc.yaml --data shapes.yaml --epochs 30 --seeds 0 1 2
    python benchmarks/ablate.py --cfg yolov5n.yaml yolov5n-csppc.yaml --epochs 30 --imgsz 160 --project runs/abl
    python benchmarks/ablate.py --cfg yolov5n-csppc.yaml --seeds 0 --epochs 60 --threads 1 --workers 1   # one run

Writes <project>/runs.csv (one row per run), summary.csv (one row per model), ablation.md (the tables) and
ablation.png (mAP50-95 against CPU latency and against parameters, error bars the 95% intervals).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/ablate.py` finds the project's packages

import torch  # noqa: E402

import train  # noqa: E402
import val  # noqa: E402
from benchmarks.timing import loadavg, time_interleaved  # noqa: E402
from models.experimental import torch_safe_load  # noqa: E402
from models.yolo import DetectionModel  # noqa: E402
from utils.general import LOGGER, check_dataset, check_yaml, set_logging  # noqa: E402
from utils.plots import agg_pyplot as _pyplot  # noqa: E402
from utils.stats import paired_difference, summarize  # noqa: E402
from utils.torch_utils import get_flops  # noqa: E402

METRICS = ("P", "R", "mAP50", "mAP50-95")
DONE = "ablate.json"  # written into a run folder once its best.pt is validated
TRAINING = ("epochs", "train_min", "s_per_epoch", "best_mAP50", "best_mAP50-95", "target_epoch")


def run_state(run_dir: Path) -> str:
    """'done' (validated), 'trained' (finished, not validated), 'resume' (killed mid-training) or 'new'."""
    if (run_dir / DONE).is_file():
        return "done"
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        return "new"
    try:
        ckpt = torch_safe_load(last)
    except Exception as e:  # a checkpoint cut short by the kill: start over
        LOGGER.warning(f"WARNING ⚠️ {last}: unreadable ({e}), training this run again from scratch")
        return "new"
    if ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0:  # train.py strips last.pt when it ends
        return "resume"
    return "trained" if (run_dir / "weights" / "best.pt").is_file() else "new"


def train_and_validate(cfg: str, seed: int, run_dir: Path, data: str, epochs: int, imgsz: int, batch_size: int,
                       hyp: str, workers: int, device: str, target: float = 0.9) -> dict:
    """Bring one (cfg, seed) run to completion (train, resume or nothing); its validation metrics and its training
    record (minutes only for a run trained from scratch in this call: a resumed one measured only its rest)."""
    state = run_state(run_dir)
    if state == "done":
        return json.loads((run_dir / DONE).read_text())
    t = time.perf_counter()
    if state == "resume":
        LOGGER.info(f"ablate: resuming {run_dir} from its last.pt")
        train.run(resume=str(run_dir / "weights" / "last.pt"))
    elif state == "new":
        LOGGER.info(f"ablate: training {Path(cfg).stem} seed {seed} in {run_dir}")
        train.run(cfg=cfg, data=data, epochs=epochs, imgsz=imgsz, batch_size=batch_size, hyp=hyp, workers=workers,
                  device=device, seed=seed, project=str(run_dir.parent), name=run_dir.name, exist_ok=True,
                  noplots=True, patience=0)  # patience 0: every seed runs every epoch
    minutes = (time.perf_counter() - t) / 60 if state == "new" else None
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(f"{best}: training ended without a best.pt")
    results, _, _ = val.run(data, weights=str(best), batch_size=batch_size * 2, imgsz=imgsz, device=device,
                            workers=workers, project=str(run_dir), name="val", exist_ok=True, half=False, plots=False)
    metrics = {k: float(v) for k, v in zip(METRICS, results[:4])}
    metrics.update(training_record(run_dir / "results.csv", minutes, target))
    (run_dir / DONE).write_text(json.dumps(metrics))
    return metrics


def training_record(results_csv: Path, minutes: float | None, target: float) -> dict:
    """Epochs, minutes and seconds per epoch of a training, its best mAP50 and mAP50-95 over the epochs (EMA weights,
    as results.csv logs them) and the first epoch whose mAP50 reached target (None if none did)."""
    with open(results_csv, newline="") as f:
        rows = [{k.strip(): float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    map50 = [r["metrics/mAP_0.5"] for r in rows]
    reached = next((int(r["epoch"]) for r, m in zip(rows, map50) if m >= target), None)
    return {"epochs": len(rows), "train_min": minutes,
            "s_per_epoch": None if minutes is None else minutes * 60 / max(len(rows), 1),
            "best_mAP50": max(map50, default=math.nan),
            "best_mAP50-95": max((r["metrics/mAP_0.5:0.95"] for r in rows), default=math.nan),
            "target_epoch": reached}


def profile(cfg: str, nc: int, imgsz: int, runs: int = 30, warmup: int = 5) -> dict:
    """Parameters, GFLOPs and median batch-1 CPU latency (ms) of the fused model at imgsz; weights do not matter."""
    model = DetectionModel(check_yaml(cfg), nc=nc).eval().fuse()
    params, gflops = sum(p.numel() for p in model.parameters()), get_flops(model, imgsz)
    im = torch.rand(1, 3, imgsz, imgsz)
    with torch.inference_mode():
        ms = time_interleaved({cfg: lambda: model(im)}, runs, warmup)[cfg] if runs else math.nan
    return {"params": params, "gflops": gflops, "latency_ms": ms}


def _cell(s: dict) -> str:
    """'mean ± std [lo, hi]' of one summary, blanks where a statistic needs more runs."""
    if s["n"] == 0:
        return "-"
    if s["n"] < 2:
        return f"{s['mean']:.3f} (1 run)"
    return f"{s['mean']:.3f} ± {s['std']:.3f} [{s['ci_lo']:.3f}, {s['ci_hi']:.3f}]"


def markdown(summary: list[dict]) -> str:
    """The two report tables (per-model statistics, paired differences to the first model) as markdown."""
    lines = ["| model | runs | params | GFLOPs | CPU ms | " + " | ".join(METRICS) + " |",
             "|---|---:|---:|---:|---:|" + "---|" * len(METRICS)]
    for s in summary:
        lines.append(f"| {s['model']} | {s['n']} | {s['params']:,} | {s['gflops']:.2f} | {s['latency_ms']:.1f} | "
                     + " | ".join(_cell(s[m]) for m in METRICS) + " |")
    base = summary[0]["model"]
    lines += ["", f"| model | paired seeds | ΔmAP50-95 vs {base} | 95% CI | CI excludes 0 |", "|---|---:|---:|---|---|"]
    for s in summary[1:]:
        d = s["diff"]
        if d["n"] < 2:
            lines.append(f"| {s['model']} | {d['n']} | " + (f"{d['mean']:+.4f}" if d["n"] else "-") + " | - | - |")
            continue
        sig = "yes" if d["ci_lo"] > 0 or d["ci_hi"] < 0 else "no (within noise)"
        lines.append(f"| {s['model']} | {d['n']} | {d['mean']:+.4f} | [{d['ci_lo']:+.4f}, {d['ci_hi']:+.4f}] | {sig} |")
    return "\n".join(lines) + "\n"


def training_table(rows: list[dict], target: float) -> str:
    """One line per completed run: how long its training took and how its epoch mAP went."""

    def f(v, fmt: str) -> str:
        return "-" if v is None or v == "" else format(v, fmt)

    lines = [f"| model | seed | epochs | s / epoch (train + val) | best mAP50 | best mAP50-95 | mAP50 >= {target} "
             f"first at | minutes |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if r["status"] == "ok":
            lines.append(f"| {r['cfg']} | {r['seed']} | {r.get('epochs', '-')} | {f(r.get('s_per_epoch'), '.1f')} | "
                         f"{f(r.get('best_mAP50'), '.3f')} | {f(r.get('best_mAP50-95'), '.3f')} | "
                         f"{'-' if r.get('target_epoch') is None else 'epoch ' + str(r['target_epoch'])} | "
                         f"{f(r.get('train_min'), '.1f')} |")
    return "\n".join(lines) + "\n"


def write_csvs(project: Path, rows: list[dict], summary: list[dict]) -> None:
    """runs.csv: one row per (cfg, seed); summary.csv: one row per model with every statistic flattened."""
    with open(project / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["cfg", "seed", "status", *METRICS, *TRAINING, "run_dir", "error"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in w.fieldnames})
    flat = []
    for s in summary:
        d = {"model": s["model"], "runs": s["n"], "params": s["params"], "gflops": s["gflops"],
             "latency_ms": s["latency_ms"]}
        for m in (*METRICS, "diff"):
            name = "dmAP50-95" if m == "diff" else m
            d.update({f"{name}_{k}": s[m][k] for k in ("mean", "std", "ci_lo", "ci_hi")})
        d["dmAP50-95_pairs"] = s["diff"]["n"]
        flat.append(d)
    with open(project / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)


def plot(project: Path, summary: list[dict]) -> Path:
    """mAP50-95 (mean, 95% interval as error bars) against CPU latency and against parameters."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    for ax, key, label, scale in zip(axes, ("latency_ms", "params"),
                                     ("fused CPU latency (ms, batch 1)", "parameters (millions)"), (1, 1e-6)):
        for s in summary:
            m = s["mAP50-95"]
            err = 0.0 if m["n"] < 2 else (m["ci_hi"] - m["ci_lo"]) / 2
            ax.errorbar(s[key] * scale, m["mean"], yerr=err, fmt="o", capsize=4, label=s["model"])
        ax.set_xlabel(label)
        ax.set_ylabel("mAP50-95 (mean, 95% CI)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    f = project / "ablation.png"
    fig.savefig(f, dpi=120)
    plt.close(fig)
    return f


def run(cfg: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), data: str = "shapes.yaml", epochs: int = 30,
        seeds: tuple[int, ...] = (0, 1, 2), imgsz: int = 320, batch_size: int = 16,
        hyp: str = str(ROOT / "data/hyps/hyp.scratch-low.yaml"), workers: int = 2, device: str = "cpu",
        project: str = str(ROOT / "runs/ablate"), latency_runs: int = 30, target: float = 0.9,
        threads: int | None = None) -> list[dict]:
    """Train, validate and profile every (cfg, seed); write the CSVs, tables and plot; return the per-model summary."""
    cfg = tuple(cfg)
    if threads:
        torch.set_num_threads(threads)
    if len(cfg) < 1 or len(seeds) < 1:
        raise ValueError("ablate: give at least one --cfg and one --seeds value")
    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    nc = int(check_dataset(data)["nc"])  # generates shapes on first use, before the runs race to
    rows = []
    for seed in seeds:  # seed-major: a call stopped early still leaves complete pairs of models
        for c in cfg:
            run_dir = project / Path(c).stem / f"seed{seed}"
            row = {"cfg": Path(c).stem, "seed": seed, "run_dir": str(run_dir)}
            try:
                row.update(train_and_validate(c, seed, run_dir, data, epochs, imgsz, batch_size, hyp, workers, device,
                                              target))
                row["status"] = "ok"
            except Exception as e:  # one broken run must not cost the others
                LOGGER.warning(f"WARNING ⚠️ ablate: {Path(c).stem} seed {seed} failed in {run_dir}: {e!r}")
                row.update(status="failed", error=repr(e))
            rows.append(row)

    ok = [r for r in rows if r["status"] == "ok"]
    base = {r["seed"]: r["mAP50-95"] for r in ok if r["cfg"] == Path(cfg[0]).stem}
    summary = []
    for c in cfg:
        mine = [r for r in ok if r["cfg"] == Path(c).stem]
        paired = [r for r in mine if r["seed"] in base]
        try:
            prof = profile(c, nc, imgsz, latency_runs)
        except Exception as e:  # a YAML that does not build has failed its runs already; report it, keep the rest
            LOGGER.warning(f"WARNING ⚠️ ablate: could not profile {c}: {e!r}")
            prof = {"params": 0, "gflops": math.nan, "latency_ms": math.nan}
        s = {"model": Path(c).stem, "n": len(mine), **prof}
        s.update({m: summarize([r[m] for r in mine]) for m in METRICS})
        s["diff"] = paired_difference([r["mAP50-95"] for r in paired], [base[r["seed"]] for r in paired])
        summary.append(s)

    table = markdown(summary) + "\n" + training_table(rows, target)
    failed = [r for r in rows if r["status"] != "ok"]
    note = (f"{len(ok)}/{len(rows)} runs complete; {epochs} epochs, {imgsz} px, seeds {list(seeds)}, data {data}; "
            f"CPU latency on {torch.get_num_threads()} threads (load average {loadavg():.1f})\n")
    if failed:
        note += "failed: " + ", ".join(f"{r['cfg']} seed {r['seed']} ({r['run_dir']})" for r in failed) + "\n"
    (project / "ablation.md").write_text(table + "\n" + note)
    write_csvs(project, rows, summary)
    plot(project, summary)
    LOGGER.info("\n" + table + "\n" + note + f"Results saved to {project}")
    return summary


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Multi-seed ablation with means, std and 95% t intervals")
    parser.add_argument("--cfg", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"],
                        help="model YAMLs; the first is the baseline of the paired differences")
    parser.add_argument("--data", default="shapes.yaml", help="dataset YAML")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds, one run each")
    parser.add_argument("--imgsz", "--img", type=int, default=320, help="train, val and latency image size")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size")
    parser.add_argument("--hyp", default=str(ROOT / "data/hyps/hyp.scratch-low.yaml"), help="hyperparameter YAML")
    parser.add_argument("--workers", type=int, default=2, help="dataloader workers")
    parser.add_argument("--device", default="cpu", help="cuda device (0, 1, ...) or cpu")
    parser.add_argument("--project", default=str(ROOT / "runs/ablate"), help="run folders and reports go here")
    parser.add_argument("--latency-runs", type=int, default=30, help="timed forward passes per model")
    parser.add_argument("--target", type=float, default=0.9, help="mAP50 whose first epoch is reported per run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    set_logging()
    opt = parse_opt()
    run(**{**vars(opt), "cfg": tuple(opt.cfg), "seeds": tuple(opt.seeds)})
