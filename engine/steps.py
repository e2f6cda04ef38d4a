"""Steps of the training loop that do not depend on the task: run folder, LR schedule, optimizer step, checkpoints, DDP.

engine/trainer.py's Trainer calls these for every task, so a change to how checkpoints are written or how DDP starts
reaches detection, segmentation and classification at once.
"""

from __future__ import annotations

import argparse
from copy import deepcopy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.optim import lr_scheduler

from utils.general import LOCAL_RANK, LOGGER, RANK, WORLD_SIZE, one_cycle, yaml_save
from utils.torch_utils import ModelEMA, de_parallel, save_atomic


def plain_options(d: dict) -> dict:
    """Options as plain YAML/pickle-safe values: Paths become strings."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def prepare_run_dir(save_dir: Path, opt: argparse.Namespace, hyp: dict | None, evolve: bool = False) -> None:
    """Rank 0 creates save_dir/weights and records hyp.yaml (when given) and opt.yaml; evolution writes neither."""
    if RANK not in {-1, 0}:
        return
    w = save_dir / "weights"
    (w.parent if evolve else w).mkdir(parents=True, exist_ok=True)
    if not evolve:
        if hyp is not None:
            yaml_save(save_dir / "hyp.yaml", hyp)
        yaml_save(save_dir / "opt.yaml", plain_options(vars(opt)))


def lr_lambda(epochs: int, lrf: float, cos: bool = False) -> Callable[[float], float]:
    """LR factor per epoch, from 1 down to lrf: linear, or a cosine half-period (one_cycle) with cos."""
    if cos:
        return one_cycle(1, lrf, epochs)
    return lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf


def build_scheduler(optimizer: torch.optim.Optimizer, epochs: int, lrf: float, cos: bool = False):
    """(LambdaLR, its factor function) for lr_lambda's schedule."""
    lf = lr_lambda(epochs, lrf, cos)
    return lr_scheduler.LambdaLR(optimizer, lr_lambda=lf), lf


def grad_scaler(amp: bool):
    """A CUDA GradScaler (a no-op when amp is off), under whichever name this torch has it."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=amp)
    return torch.cuda.amp.GradScaler(enabled=amp)


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler, ema: ModelEMA | None,
                   max_norm: float = 10.0) -> None:
    """Unscale, clip the gradient norm to max_norm, step, zero the gradients and update the EMA."""
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    if ema:
        ema.update(model)


def save_checkpoints(weights_dir: Path, epoch: int, best_fitness: float, fitness: float, model: nn.Module,
                     ema: ModelEMA, optimizer: torch.optim.Optimizer, opt: argparse.Namespace,
                     save_period: int = -1) -> Path:
    """Write last.pt, best.pt when this epoch is the best, and epoch<N>.pt every save_period; return last.pt.

    The layout is YOLOv5's: the FP16 model and EMA objects, the optimizer state and the options, so --resume and
    attempt_load read them.
    """
    ckpt = {
        "epoch": epoch,
        "best_fitness": float(best_fitness),
        "model": deepcopy(de_parallel(model)).half(),
        "ema": deepcopy(ema.ema).half(),
        "updates": ema.updates,
        "optimizer": optimizer.state_dict(),
        "opt": plain_options(vars(opt)),
        "git": None,
        "date": datetime.now().isoformat(),
    }
    last = weights_dir / "last.pt"
    save_atomic(ckpt, last)
    if best_fitness == fitness:
        save_atomic(ckpt, weights_dir / "best.pt")
    if save_period > 0 and epoch % save_period == 0:
        save_atomic(ckpt, weights_dir / f"epoch{epoch}.pt")
    return last


def setup_ddp(device: torch.device, batch_size: int) -> torch.device:
    """Under torchrun, check the batch split, pin this rank's GPU and join the process group; the device to use."""
    if LOCAL_RANK == -1:
        return device
    msg = "is not compatible with YOLOv5 DDP training"
    if batch_size == -1:
        raise ValueError(f"AutoBatch with --batch-size -1 {msg}, please pass a valid --batch-size")
    if batch_size % WORLD_SIZE:
        raise ValueError(f"--batch-size {batch_size} must be a multiple of WORLD_SIZE {WORLD_SIZE}")
    if device.type == "cuda":
        if torch.cuda.device_count() <= LOCAL_RANK:
            raise ValueError("insufficient CUDA devices for DDP command")
        torch.cuda.set_device(LOCAL_RANK)
        device = torch.device("cuda", LOCAL_RANK)
    backend = "nccl" if dist.is_nccl_available() and device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=10800))
    if RANK == 0:
        LOGGER.info(f"DDP: {WORLD_SIZE} processes, backend {backend}, batch {batch_size // WORLD_SIZE} per rank")
    return device


def teardown_ddp() -> None:
    """Leave the process group, if this process joined one."""
    if WORLD_SIZE > 1 and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_stop(stop: bool) -> bool:
    """Every rank learns whether rank 0 decided to stop; this also keeps the ranks in step each epoch."""
    if RANK == -1:
        return stop
    box = [stop if RANK == 0 else None]
    dist.broadcast_object_list(box, 0)
    return box[0]
