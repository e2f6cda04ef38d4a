"""How a training run starts and ends, for every task: options, resume, device and DDP, then the Trainer or evolution.

train.py, segment/train.py and classify/train.py are thin CLIs over run_task(task, **kwargs) and main(opt, task).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from engine.steps import setup_ddp, teardown_ddp
from engine.trainer import Trainer, TrainTask, log_options
from models.experimental import torch_safe_load
from utils.callbacks import Callbacks
from utils.evolve import EVOLVE_META, EVOLVE_RESULT_KEYS, mutate_hyp
from utils.general import (
    LOCAL_RANK,
    LOGGER,
    RANK,
    check_file,
    colorstr,
    get_latest_run,
    inactive_options,
    yaml_load,
)
from utils.loggers import print_mutation
from utils.torch_utils import select_device


def resume_options(opt: argparse.Namespace, parse) -> argparse.Namespace:
    """The options of the run being resumed (from its opt.yaml), pointed at its last.pt and run folder."""
    last = opt.resume if isinstance(opt.resume, str) else get_latest_run(Path(opt.project).parent)
    if not last:
        raise FileNotFoundError(f"--resume: no last.pt found under {Path(opt.project).parent}; pass a path")
    last = Path(check_file(last))
    ckpt = torch_safe_load(last)
    if ckpt.get("optimizer") is None or ckpt.get("epoch", -1) < 0:  # checked before anything is written
        raise ValueError(f"{last} is a finished (stripped) checkpoint, nothing to resume. Start a new training "
                         f"from it without --resume, i.e. python train.py --weights {last}")
    opt_yaml = last.parent.parent / "opt.yaml"
    d = yaml_load(opt_yaml) if opt_yaml.is_file() else ckpt["opt"]
    del ckpt
    new = argparse.Namespace(**{**vars(parse(known=True, argv=[])), **d})  # options added since keep defaults
    new.cfg, new.weights, new.resume = "", str(last), True
    new.save_dir = str(last.parent.parent)  # the run folder may have moved since it was written
    new.local_rank = opt.local_rank
    return new


def main(opt: argparse.Namespace, task: TrainTask, callbacks: Callbacks | None = None):
    """Check options, set up DDP when launched by torchrun, then train (or evolve hyperparameters); the results."""
    callbacks = callbacks or Callbacks()
    if RANK in {-1, 0}:
        log_options(task, opt)
        unused = inactive_options(vars(opt), task.inactive, "this project has no cloud sync")
        if unused:
            LOGGER.warning(unused)
    opt = task.prepare_options(opt)
    device = select_device(opt.device, batch_size=opt.batch_size)
    if LOCAL_RANK != -1:
        msg = "is not compatible with YOLOv5 DDP training"
        if getattr(opt, "image_weights", False):
            raise ValueError(f"--image-weights {msg}")
        if getattr(opt, "evolve", None):
            raise ValueError(f"--evolve {msg}")
    device = setup_ddp(device, opt.batch_size)
    try:
        if not getattr(opt, "evolve", None):
            return Trainer(task, opt, device, callbacks)()
        return evolve(opt, device, task)
    finally:
        teardown_ddp()


def evolve(opt: argparse.Namespace, device: torch.device, task: TrainTask) -> None:
    """Genetic hyperparameter evolution: train opt.evolve generations, each from a mutation of the best so far."""
    hyp = yaml_load(opt.hyp) if not isinstance(opt.hyp, dict) else dict(opt.hyp)
    meta = dict(EVOLVE_META)
    if "anchors" not in hyp:
        hyp["anchors"] = 3
    if opt.noautoanchor:
        del hyp["anchors"], meta["anchors"]
    opt.noval, opt.nosave, save_dir = True, True, Path(opt.save_dir)  # only the final epoch is validated
    save_dir.mkdir(parents=True, exist_ok=True)
    evolve_csv = save_dir / "evolve.csv"
    rng = np.random.default_rng(opt.seed + int(time.time()))
    for _ in range(opt.evolve):
        hyp = mutate_hyp(hyp, meta, evolve_csv, rng)
        opt.hyp = hyp.copy()
        results = Trainer(task, opt, device, Callbacks())()
        print_mutation(EVOLVE_RESULT_KEYS, results, {k: hyp[k] for k in meta if k in hyp}, save_dir)
    LOGGER.info(f"Hyperparameter evolution finished {opt.evolve} generations\n"
                f"Results saved to {colorstr('bold', save_dir)}\n"
                f"Usage example: $ python train.py --hyp {save_dir / 'hyp_evolve.yaml'}")


def run_task(task: TrainTask, **kwargs) -> argparse.Namespace:
    """Train task's model from Python with its default options, overridden by kwargs; returns the options."""
    opt = task.parse_opt(known=True, argv=[])
    for k, v in kwargs.items():
        setattr(opt, k, v)
    main(opt, task)
    return opt
