"""Train a YOLOv5 model on a detection dataset, on one device or distributed.

Usage - single process:
    python train.py --cfg yolov5n-csppc.yaml --data shapes.yaml --imgsz 320 --epochs 30
    python train.py --weights yolov5n.pt --data shapes.yaml            # fine-tune (transfer matching tensors)
    python train.py --resume                                           # continue the latest interrupted run

Usage - distributed (DDP: NCCL on CUDA, gloo on CPU):
    torchrun --nproc_per_node 2 train.py --cfg yolov5n.yaml --data shapes.yaml --batch-size 64
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FILE = Path(__file__).resolve()
ROOT = FILE.parents[0]
if str(ROOT) not in sys.path:  # run as a script from another folder
    sys.path.append(str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

import val as validate  # noqa: E402
from models.experimental import attempt_load, strip_optimizer, torch_safe_load  # noqa: E402
from models.yolo import Model  # noqa: E402
from utils.autoanchor import check_anchors  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.dataloaders import create_dataloader  # noqa: E402
from utils.engine import (  # noqa: E402
    broadcast_stop,
    build_scheduler,
    grad_scaler,
    optimizer_step,
    prepare_run_dir,
    save_checkpoints,
    setup_ddp,
    teardown_ddp,
)
from utils.evolve import EVOLVE_META, EVOLVE_RESULT_KEYS, mutate_hyp  # noqa: E402
from utils.general import (  # noqa: E402
    LOCAL_RANK,
    LOGGER,
    RANK,
    TQDM_BAR_FORMAT,
    WORLD_SIZE,
    check_dataset,
    check_file,
    check_img_size,
    check_suffix,
    check_yaml,
    colorstr,
    get_latest_run,
    inactive_options,
    increment_path,
    intersect_dicts,
    labels_to_class_weights,
    labels_to_image_weights,
    print_args,
    set_logging,
    yaml_load,
)
from utils.loggers import RESULTS_KEYS, Loggers, print_mutation  # noqa: E402
from utils.loss import ComputeLoss  # noqa: E402
from utils.metrics import fitness  # noqa: E402
from utils.torch_utils import (  # noqa: E402
    EarlyStopping,
    ModelEMA,
    check_amp,
    de_parallel,
    init_seeds,
    select_device,
    smart_DDP,
    smart_optimizer,
    smart_resume,
    torch_distributed_zero_first,
)


@dataclass
class TrainTask:
    """What a task (detection, segmentation) brings to the shared training loop; the loop itself is train()."""

    name: str
    model_cls: type  # built from --cfg or a checkpoint's yaml
    loss_names: tuple[str, ...]  # the loss items, in the order the loss returns them
    result_keys: tuple[str, ...]  # results.csv columns: train losses, metrics, val losses, learning rates
    make_loss: Callable  # (model, opt) -> loss(pred, targets, *extra batch tensors)
    create_dataloader: Callable  # (opt) -> create_dataloader-like function
    validate: Callable  # (opt) -> val.run-like function
    fitness: Callable  # results rows -> fitness per row
    parse_opt: Callable  # (known, argv) -> the task's options
    scripts: tuple[str, str] = ("val.py", "detect.py")  # what to run next, for the closing hints

    @property
    def n_metrics(self) -> int:
        """How many metrics val returns before its losses."""
        return len(self.result_keys) - 2 * len(self.loss_names) - 3


def load_model(weights: str, cfg: str, nc: int, hyp: dict, resume: bool, device: torch.device,
               model_cls: type = Model):
    """Model from cfg and/or a checkpoint: every checkpoint tensor whose name and shape match is transferred."""
    if not weights:
        model = model_cls(cfg, ch=3, nc=nc, anchors=hyp.get("anchors")).to(device)
        model.info()  # the summary line under the layer table
        return model, None
    check_suffix(weights, ".pt")
    ckpt = torch_safe_load(weights)  # weights_only with the project's allowlist: never runs pickled code
    model = model_cls(cfg or deepcopy(ckpt["model"].yaml), ch=3, nc=nc, anchors=hyp.get("anchors")).to(device)
    model.info()
    exclude = ["anchor"] if (cfg or hyp.get("anchors")) and not resume else []  # the cfg's anchors win
    csd = intersect_dicts(ckpt["model"].float().state_dict(), model.state_dict(), exclude=exclude)
    model.load_state_dict(csd, strict=False)
    LOGGER.info(f"Transferred {len(csd)}/{len(model.state_dict())} items from {weights}")
    return model, ckpt


def train(hyp: dict | str, opt: argparse.Namespace, device: torch.device, callbacks: Callbacks,
          task: TrainTask | None = None):
    """Train one model; returns the final validation results (for detection: P, R, mAP50, mAP50-95, val losses)."""
    task = task or DETECT
    save_dir, epochs, batch_size, weights, single_cls, evolve, data, cfg, resume, noval, nosave, workers, freeze = (
        Path(opt.save_dir), opt.epochs, opt.batch_size, opt.weights, opt.single_cls, opt.evolve, opt.data, opt.cfg,
        opt.resume, opt.noval, opt.nosave, opt.workers, opt.freeze)
    callbacks.run("on_pretrain_routine_start")

    w = save_dir / "weights"
    last, best = w / "last.pt", w / "best.pt"
    hyp = yaml_load(hyp) if isinstance(hyp, (str, Path)) else dict(hyp)
    LOGGER.info(colorstr("hyperparameters: ") + ", ".join(f"{k}={v}" for k, v in hyp.items()))
    opt.hyp = hyp.copy()  # saved with the options, so a resumed run uses the same values
    prepare_run_dir(save_dir, opt, hyp, evolve)  # only rank 0 writes to the run folder

    plots = not evolve and not opt.noplots
    if RANK in {-1, 0}:
        loggers = Loggers(save_dir, opt, hyp)
        loggers.keys = task.result_keys
        loggers.plots = plots
        loggers.register(callbacks)

    cuda = device.type == "cuda"
    init_seeds(opt.seed + 1 + RANK, deterministic=True)
    with torch_distributed_zero_first(LOCAL_RANK):  # rank 0 generates or checks the dataset first
        data_dict = check_dataset(data)
    train_path, val_path = data_dict["train"], data_dict["val"]
    nc = 1 if single_cls else int(data_dict["nc"])
    names = {0: "item"} if single_cls and len(data_dict["names"]) != 1 else data_dict["names"]
    is_coco = isinstance(val_path, str) and val_path.endswith("coco/val2017.txt")

    model, ckpt = load_model(weights, cfg, nc, hyp, resume, device, task.model_cls)
    amp = check_amp(model)

    # Freeze the first N layers (or the listed layer indices)
    freeze = [f"model.{x}." for x in (freeze if len(freeze) > 1 else range(freeze[0]))]
    for k, v in model.named_parameters():
        v.requires_grad = True
        if any(x in k for x in freeze):
            LOGGER.info(f"freezing {k}")
            v.requires_grad = False

    gs = max(int(model.stride.max()), 32)  # grid size (max stride)
    imgsz = check_img_size(opt.imgsz, gs, floor=gs * 2)
    if batch_size == -1:
        LOGGER.warning("WARNING AutoBatch is not available in this project, using --batch-size 16")
        batch_size = 16

    # Optimizer: weight decay follows the nominal batch size, reached by accumulating gradients
    nbs = 64
    accumulate = max(round(nbs / batch_size), 1)
    hyp["weight_decay"] *= batch_size * accumulate / nbs
    optimizer = smart_optimizer(model, opt.optimizer, hyp["lr0"], hyp["momentum"], hyp["weight_decay"])
    scheduler, lf = build_scheduler(optimizer, epochs, hyp["lrf"], opt.cos_lr)
    ema = ModelEMA(model) if RANK in {-1, 0} else None

    best_fitness, start_epoch = 0.0, 0
    if ckpt is not None:
        if resume:
            best_fitness, start_epoch, epochs = smart_resume(ckpt, optimizer, ema, weights, epochs, resume)
        del ckpt

    if cuda and RANK == -1 and torch.cuda.device_count() > 1:
        LOGGER.warning("WARNING DataParallel is not recommended, use torchrun for multi-GPU DDP training")
        model = nn.DataParallel(model)
    if opt.sync_bn and cuda and RANK != -1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device)
        LOGGER.info("Using SyncBatchNorm()")
    elif opt.sync_bn:
        LOGGER.warning("WARNING --sync-bn only applies to DDP training on CUDA, ignoring it")

    create_loader = task.create_dataloader(opt)
    train_loader, dataset = create_loader(
        train_path, imgsz, batch_size // WORLD_SIZE, gs, single_cls, hyp=hyp, augment=True,
        cache=None if opt.cache == "val" else opt.cache, rect=opt.rect, rank=LOCAL_RANK, workers=workers,
        image_weights=opt.image_weights, quad=opt.quad, prefix=colorstr("train: "), shuffle=True, seed=opt.seed, nc=nc)
    labels = np.concatenate(dataset.labels, 0)

    if RANK in {-1, 0}:
        val_loader = create_loader(
            val_path, imgsz, batch_size // WORLD_SIZE * 2, gs, single_cls, hyp=hyp, cache=None if noval else opt.cache,
            rect=True, rank=-1, workers=workers * 2, pad=0.5, prefix=colorstr("val: "), nc=nc)[0]
        if not resume:
            if not opt.noautoanchor:
                check_anchors(dataset, model=model, thr=hyp["anchor_t"], imgsz=imgsz)
            model.half().float()  # round anchors to FP16 now, so the FP16 checkpoints hold exactly these
            callbacks.run("on_pretrain_routine_end", labels, names)

    if RANK != -1:
        model = smart_DDP(model)  # also broadcasts rank 0's parameters and buffers (e.g. evolved anchors)

    # Loss gains follow the number of detection layers, classes and image size
    m = de_parallel(model)
    nl = m.model[-1].nl
    hyp["box"] *= 3 / nl
    hyp["cls"] *= nc / 80 * 3 / nl
    hyp["obj"] *= (imgsz / 640) ** 2 * 3 / nl
    hyp["label_smoothing"] = opt.label_smoothing
    m.nc, m.hyp, m.names = nc, hyp, names
    m.class_weights = labels_to_class_weights(dataset.labels, nc).to(device) * nc

    t0 = time.time()
    nb = len(train_loader)
    nw = max(round(hyp["warmup_epochs"] * nb), 100)  # warmup iterations
    last_opt_step = -1
    maps = np.zeros(nc)
    results = (0,) * (task.n_metrics + len(task.loss_names))  # metrics, then the val losses
    scheduler.last_epoch = start_epoch - 1
    scaler = grad_scaler(amp)
    stopper, stop = EarlyStopping(patience=opt.patience), False
    compute_loss = task.make_loss(model, opt)
    validate_run = task.validate(opt)
    callbacks.run("on_train_start")
    LOGGER.info(f"Image sizes {imgsz} train, {imgsz} val\n"
                f"Using {train_loader.num_workers * WORLD_SIZE} dataloader workers\n"
                f"Logging results to {colorstr('bold', save_dir)}\n"
                f"Starting training for {epochs} epochs...")
    epoch = start_epoch
    for epoch in range(start_epoch, epochs):
        callbacks.run("on_train_epoch_start")
        model.train()
        if opt.image_weights:  # sample images holding poorly detected classes more often
            cw = m.class_weights.cpu().numpy() * (1 - maps) ** 2 / nc
            iw = labels_to_image_weights(dataset.labels, nc=nc, class_weights=cw)
            dataset.indices = random.choices(range(len(dataset)), weights=iw, k=len(dataset))
        mloss = torch.zeros(len(task.loss_names), device=device)
        if RANK != -1:
            train_loader.sampler.set_epoch(epoch)
        pbar = enumerate(train_loader)
        LOGGER.info(("\n" + "%11s" * (len(task.loss_names) + 4)) % ("Epoch", "GPU_mem", *task.loss_names, "Instances",
                                                                   "Size"))
        if RANK in {-1, 0}:
            pbar = tqdm(pbar, total=nb, bar_format=TQDM_BAR_FORMAT)
        optimizer.zero_grad()
        for i, (imgs, targets, paths, _, *extra) in pbar:  # extra: what a task adds per batch (masks)
            callbacks.run("on_train_batch_start")
            ni = i + nb * epoch  # batches since the start of training
            imgs = imgs.to(device, non_blocking=True).float() / 255

            if ni <= nw:  # warmup: lr from 0 (biases: from warmup_bias_lr), momentum from warmup_momentum
                xi = [0, nw]
                accumulate = max(1, np.interp(ni, xi, [1, nbs / batch_size]).round())
                for j, x in enumerate(optimizer.param_groups):
                    x["lr"] = np.interp(ni, xi, [hyp["warmup_bias_lr"] if j == 0 else 0.0, x["initial_lr"] * lf(epoch)])
                    if "momentum" in x:
                        x["momentum"] = np.interp(ni, xi, [hyp["warmup_momentum"], hyp["momentum"]])

            if opt.multi_scale:  # a random size in [0.5, 1.5] x imgsz, a multiple of the stride
                sz = random.randrange(int(imgsz * 0.5), int(imgsz * 1.5) + gs) // gs * gs
                sf = sz / max(imgs.shape[2:])
                if sf != 1:
                    ns = [math.ceil(x * sf / gs) * gs for x in imgs.shape[2:]]
                    imgs = nn.functional.interpolate(imgs, size=ns, mode="bilinear", align_corners=False)

            with torch.autocast(device_type=device.type, enabled=amp):
                pred = model(imgs)
                loss, loss_items = compute_loss(pred, targets.to(device), *(x.to(device).float() for x in extra))
                if RANK != -1:
                    loss *= WORLD_SIZE  # DDP averages gradients over ranks; the loss is a per-device sum
                if opt.quad:
                    loss *= 4.0

            scaler.scale(loss).backward()
            if ni - last_opt_step >= accumulate:
                optimizer_step(model, optimizer, scaler, ema)
                last_opt_step = ni

            if RANK in {-1, 0}:
                mloss = (mloss * i + loss_items) / (i + 1)
                mem = f"{torch.cuda.memory_reserved() / 1e9 if torch.cuda.is_available() else 0:.3g}G"
                pbar.set_description(("%11s" * 2 + "%11.4g" * (len(mloss) + 2)) % (
                    f"{epoch}/{epochs - 1}", mem, *mloss, targets.shape[0], imgs.shape[-1]))
                callbacks.run("on_train_batch_end", model, ni, imgs, targets, paths, list(mloss), *extra)
                if callbacks.stop_training:
                    return results

        lr = [x["lr"] for x in optimizer.param_groups]  # for the loggers
        scheduler.step()

        if RANK in {-1, 0}:
            callbacks.run("on_train_epoch_end", epoch=epoch)
            ema.update_attr(model, include=["yaml", "nc", "hyp", "names", "stride", "class_weights"])
            final_epoch = (epoch + 1 == epochs) or stopper.possible_stop
            if not noval or final_epoch:
                results, maps, _ = validate_run(
                    data_dict, batch_size=batch_size // WORLD_SIZE * 2, imgsz=imgsz, half=amp, model=ema.ema,
                    single_cls=single_cls, dataloader=val_loader, save_dir=save_dir, plots=False,
                    callbacks=callbacks, compute_loss=compute_loss)
                ema.ema.float()  # validation may have cast it to FP16; the average must stay FP32

            fi = float(task.fitness(np.array(results).reshape(1, -1))[0])  # weighted mAP50 and mAP50-95
            stop = stopper(epoch=epoch, fitness=fi)
            if fi > best_fitness:
                best_fitness = fi
            log_vals = [float(x) for x in mloss] + list(results) + lr
            callbacks.run("on_fit_epoch_end", log_vals, epoch, best_fitness, fi)

            if (not nosave) or (final_epoch and not evolve):
                save_checkpoints(w, epoch, best_fitness, fi, model, ema, optimizer, opt, opt.save_period)
                callbacks.run("on_model_save", last, epoch, final_epoch, best_fitness, fi)

        if broadcast_stop(stop):  # every rank learns whether rank 0 stopped early
            break

    if RANK in {-1, 0}:
        LOGGER.info(f"\n{epoch - start_epoch + 1} epochs completed in {(time.time() - t0) / 3600:.3f} hours.")
        for f in last, best:
            if f.exists():
                strip_optimizer(f)
                if f is best:
                    LOGGER.info(f"\nValidating {f}...")
                    results, _, _ = validate_run(
                        data_dict, batch_size=batch_size // WORLD_SIZE * 2, imgsz=imgsz,
                        model=attempt_load(f, device).half(), iou_thres=0.65 if is_coco else 0.60,
                        single_cls=single_cls, dataloader=val_loader, save_dir=save_dir, save_json=is_coco,
                        verbose=True, plots=plots, callbacks=callbacks, compute_loss=compute_loss)
        callbacks.run("on_train_end", last, best, epoch, results)
        if best.exists():
            LOGGER.info(f"\nBest weights: {best}\n"
                        f"Validate:  python {task.scripts[0]} --weights {best} --data {data} --img {imgsz}\n"
                        f"Predict:   python {task.scripts[1]} --weights {best} --source data/images --img {imgsz}\n"
                        f"Export:    python export.py --weights {best} --include onnx --img {imgsz}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return results


# YOLOv5 v7.0's logger and cloud flags: accepted so v7.0 command lines run, reported when set, otherwise unused
INACTIVE = {
    "entity": ("--entity", None, "Weights & Biases"),
    "upload_dataset": ("--upload_dataset", False, "Weights & Biases"),
    "bbox_interval": ("--bbox_interval", -1, "Weights & Biases"),
    "artifact_alias": ("--artifact_alias", "latest", "Weights & Biases"),
    "bucket": ("--bucket", "", "Google Cloud Storage"),
}


def build_parser() -> argparse.ArgumentParser:
    """train.py's options, as YOLOv5 v7.0's (defaults: --data shapes.yaml, --weights ''); segment/train.py adds some."""
    parser = argparse.ArgumentParser(description="Train a YOLOv5 model")
    add = parser.add_argument
    add("--weights", type=str, default="", help="checkpoint to start from; '' builds a new model from --cfg")
    add("--cfg", type=str, default="", help="model YAML, a path or a name under models/")
    add("--data", type=str, default="shapes.yaml", help="dataset YAML, a path or a name under data/")
    add("--hyp", type=str, default=str(ROOT / "data/hyps/hyp.scratch-low.yaml"),
        help="YAML of hyperparameters (lr0, loss gains, augmentation)")
    add("--epochs", type=int, default=100, help="number of epochs to train")
    add("--batch-size", type=int, default=16, help="images per step over all devices (-1 falls back to 16)")
    add("--imgsz", "--img", "--img-size", type=int, default=640, help="square side of train and val images, in px")
    add("--rect", action="store_true", help="train on aspect-preserving rectangular batches")
    add("--resume", nargs="?", const=True, default=False, help="continue the latest interrupted run, or this last.pt")
    add("--nosave", action="store_true", help="write checkpoints at the end only")
    add("--noval", action="store_true", help="validate after the last epoch only")
    add("--noautoanchor", action="store_true", help="keep the model's anchors: skip the anchor fit check")
    add("--noplots", action="store_true", help="write no images or plots to the run folder")
    add("--evolve", type=int, nargs="?", const=300, help="search hyperparameters by mutation, N generations (300)")
    add("--bucket", type=str, default="", help="Google Cloud Storage bucket of v7.0 evolve runs (unused here)")
    add("--cache", type=str, nargs="?", const="ram", help="keep decoded images in ram or on disk")
    add("--image-weights", action="store_true", help="draw images holding poorly detected classes more often")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--multi-scale", action="store_true", help="give each batch a random size within 50%% of --imgsz")
    add("--single-cls", action="store_true", help="merge every class into one")
    add("--optimizer", type=str, choices=["SGD", "Adam", "AdamW"], default="SGD", help="optimizer to train with")
    add("--sync-bn", action="store_true", help="share BatchNorm statistics across DDP processes")
    add("--workers", type=int, default=8, help="dataloader worker processes per rank (at most)")
    add("--project", default=str(ROOT / "runs/train"), help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--quad", action="store_true", help="collate four images into each batch item (quad loader)")
    add("--cos-lr", action="store_true", help="cosine learning-rate decay instead of linear")
    add("--label-smoothing", type=float, default=0.0, help="epsilon of label smoothing in the class loss")
    add("--patience", type=int, default=100, help="stop after this many epochs without a better fitness")
    add("--freeze", nargs="+", type=int, default=[0], help="freeze the first N layers (10: backbone), or these indices")
    add("--save-period", type=int, default=-1, help="also keep a checkpoint every N epochs (off below 1)")
    add("--seed", type=int, default=0, help="random seed of the run")
    add("--local_rank", "--local-rank", type=int, default=-1, help="set by torchrun for DDP; leave it alone")
    # Weights & Biases options of v7.0 (see INACTIVE)
    add("--entity", default=None, help="W&B team or user (W&B logging is not part of this project)")
    add("--upload_dataset", nargs="?", const=True, default=False, help="W&B dataset upload, or 'val' (unused here)")
    add("--bbox_interval", type=int, default=-1, help="W&B interval between logged box images (unused here)")
    add("--artifact_alias", type=str, default="latest", help="W&B dataset artifact version (unused here)")
    return parser


def parse_opt(known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of train.py."""
    parser = build_parser()
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def resume_options(opt: argparse.Namespace, parse: Callable = parse_opt) -> argparse.Namespace:
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


def main(opt: argparse.Namespace, callbacks: Callbacks | None = None, task: TrainTask | None = None) -> None:
    """Check options, set up DDP when launched by torchrun, then train (or evolve hyperparameters)."""
    callbacks = callbacks or Callbacks()
    task = task or DETECT
    if RANK in {-1, 0}:
        print_args(vars(opt))
        unused = inactive_options(vars(opt), INACTIVE, "this project has no W&B logger and no cloud sync")
        if unused:
            LOGGER.warning(unused)

    if opt.resume and not opt.evolve:
        opt = resume_options(opt, task.parse_opt)
    else:
        opt.data, opt.cfg, opt.weights, opt.project = check_file(opt.data), check_yaml(opt.cfg) if opt.cfg else "", \
            str(opt.weights), str(opt.project)
        if not isinstance(opt.hyp, dict):
            opt.hyp = check_yaml(opt.hyp)
        if not (opt.cfg or opt.weights):
            raise ValueError("either --cfg or --weights must be specified")
        if opt.evolve:
            if opt.project == str(ROOT / "runs/train"):
                opt.project = str(ROOT / "runs/evolve")
            opt.exist_ok, opt.resume = opt.resume, False  # --resume with --evolve means: reuse the evolve folder
        if opt.name == "cfg":
            opt.name = Path(opt.cfg).stem
        opt.save_dir = str(increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok))

    device = select_device(opt.device, batch_size=opt.batch_size)
    if LOCAL_RANK != -1:
        msg = "is not compatible with YOLOv5 DDP training"
        if opt.image_weights:
            raise ValueError(f"--image-weights {msg}")
        if opt.evolve:
            raise ValueError(f"--evolve {msg}")
    device = setup_ddp(device, opt.batch_size)

    try:
        if not opt.evolve:
            train(opt.hyp, opt, device, callbacks, task)
        else:
            evolve(opt, device, task)
    finally:
        teardown_ddp()


def evolve(opt: argparse.Namespace, device: torch.device, task: TrainTask | None = None) -> None:
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
        results = train(hyp.copy(), opt, device, Callbacks(), task)
        print_mutation(EVOLVE_RESULT_KEYS, results, {k: hyp[k] for k in meta if k in hyp}, save_dir)
    LOGGER.info(f"Hyperparameter evolution finished {opt.evolve} generations\n"
                f"Results saved to {colorstr('bold', save_dir)}\n"
                f"Usage example: $ python train.py --hyp {save_dir / 'hyp_evolve.yaml'}")


DETECT = TrainTask(
    name="detect",
    model_cls=Model,
    loss_names=("box_loss", "obj_loss", "cls_loss"),
    result_keys=RESULTS_KEYS,
    make_loss=lambda model, opt: ComputeLoss(model),
    create_dataloader=lambda opt: create_dataloader,
    validate=lambda opt: validate.run,
    fitness=fitness,
    parse_opt=parse_opt,
)


def run_task(task: TrainTask, **kwargs) -> argparse.Namespace:
    """Train task's model from Python with its default options, overridden by kwargs; returns the options."""
    opt = task.parse_opt(known=True, argv=[])
    for k, v in kwargs.items():
        setattr(opt, k, v)
    main(opt, task=task)
    return opt


def run(**kwargs) -> argparse.Namespace:
    """Train from Python: run(data='shapes.yaml', cfg='yolov5n-csppc.yaml', imgsz=320, epochs=10)."""
    return run_task(DETECT, **kwargs)


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
