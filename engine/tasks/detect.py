"""Detection's training hooks: the model from --cfg or a checkpoint, freezing, warmup, the anchor check, the loss gains,
image weights, multi-scale batches, the box loss, and val.py's validation after each epoch.

Segmentation (engine/tasks/segment.py) is detection plus masks, so it subclasses DetectTask.
"""

from __future__ import annotations

import argparse
import math
import random
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from engine.options import INACTIVE, parse, train_parser
from engine.runner import resume_options
from engine.tasks.detect_val import VAL_DEFAULTS, DetectionValidator, is_coco_val
from engine.trainer import Trainer, TrainTask
from models.backends import DetectMultiBackend
from models.experimental import torch_safe_load
from models.yolo import Model
from utils.autoanchor import check_anchors
from utils.dataloaders import create_dataloader
from utils.general import (
    LOCAL_RANK,
    LOGGER,
    RANK,
    ROOT,
    WORLD_SIZE,
    check_dataset,
    check_file,
    check_img_size,
    check_suffix,
    check_yaml,
    colorstr,
    increment_path,
    intersect_dicts,
    labels_to_class_weights,
    labels_to_image_weights,
    yaml_load,
)
from utils.loggers import RESULTS_KEYS
from utils.loss import ComputeLoss
from utils.metrics import fitness
from utils.plots import RESULTS_PANELS, plot_images
from utils.torch_utils import EarlyStopping, check_amp, de_parallel, torch_distributed_zero_first

NBS = 64  # nominal batch size: weight decay follows it, and gradients are accumulated up to it


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


def freeze_layers(model: nn.Module, freeze: list[int]) -> None:
    """Freeze the first N layers (--freeze N) or the listed layer indices; train every other parameter."""
    names = [f"model.{x}." for x in (freeze if len(freeze) > 1 else range(freeze[0]))]
    for k, v in model.named_parameters():
        v.requires_grad = True
        if any(x in k for x in names):
            LOGGER.info(f"freezing {k}")
            v.requires_grad = False


class DetectTask(TrainTask):
    """Boxes: YOLOv5 v7.0's train.py."""

    name = "detect"
    model_cls = Model
    validator = DetectionValidator
    loss_names = ("box_loss", "obj_loss", "cls_loss")
    result_keys = RESULTS_KEYS
    panels = RESULTS_PANELS
    ema_attrs = ("yaml", "nc", "hyp", "names", "stride", "class_weights")
    inactive = INACTIVE
    default_project = ROOT / "runs/train"

    def parse_opt(self, known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
        """train.py's options."""
        return parse(train_parser(), known, argv)

    def prepare_options(self, opt: argparse.Namespace) -> argparse.Namespace:
        """--resume reads the run's own options; otherwise resolve files and number a new run folder."""
        if opt.resume and not opt.evolve:
            return resume_options(opt, self.parse_opt)
        opt.data, opt.cfg, opt.weights, opt.project = check_file(opt.data), check_yaml(opt.cfg) if opt.cfg else "", \
            str(opt.weights), str(opt.project)
        if not isinstance(opt.hyp, dict):
            opt.hyp = check_yaml(opt.hyp)
        if not (opt.cfg or opt.weights):
            raise ValueError("either --cfg or --weights must be specified")
        if opt.evolve:
            if opt.project == str(self.default_project):
                opt.project = str(ROOT / "runs/evolve")
            opt.exist_ok, opt.resume = opt.resume, False  # --resume with --evolve means: reuse the evolve folder
        if opt.name == "cfg":
            opt.name = Path(opt.cfg).stem
        opt.save_dir = str(increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok))
        return opt

    def make_loss(self, model: nn.Module, opt: argparse.Namespace):
        """The loss of pred and targets (and the task's extra batch tensors)."""
        return ComputeLoss(model)

    def create_dataloader(self, opt: argparse.Namespace):
        """A create_dataloader-like function for this task's data."""
        return create_dataloader

    def validator_args(self, opt: argparse.Namespace) -> dict:
        """Arguments the task's validator takes beyond val.run's."""
        return {}

    def plot_train_batch(self, opt: argparse.Namespace):
        """Training batches drawn with their boxes."""
        return plot_images

    # Set-up ----------------------------------------------------------------------------------------------------------

    def setup(self, t: Trainer) -> None:
        """v7.0's order: run folder, loggers, data, model, optimizer, loaders, anchors, loss gains."""
        opt = t.opt
        hyp = yaml_load(opt.hyp) if isinstance(opt.hyp, (str, Path)) else dict(opt.hyp)
        LOGGER.info(colorstr("hyperparameters: ") + ", ".join(f"{k}={v}" for k, v in hyp.items()))
        opt.hyp = hyp.copy()  # saved with the options, so a resumed run uses the same values
        t.hyp = hyp
        t.start_run(hyp, opt.evolve)
        t.plots = not opt.evolve and not opt.noplots
        t.add_loggers(hyp, t.plots)
        t.seed()
        with torch_distributed_zero_first(LOCAL_RANK):  # rank 0 generates or checks the dataset first
            t.data_dict = check_dataset(opt.data)
        t.nc = 1 if opt.single_cls else int(t.data_dict["nc"])
        t.names = {0: "item"} if opt.single_cls and len(t.data_dict["names"]) != 1 else t.data_dict["names"]
        self.setup_model(t)
        self.setup_optimizer(t)
        self.setup_loaders(t)
        t.wrap_ddp()
        self.scale_loss_gains(t)
        t.nw = max(round(t.hyp["warmup_epochs"] * len(t.train_loader)), 100)  # warmup iterations
        t.maps = np.zeros(t.nc)
        t.stopper = EarlyStopping(patience=opt.patience)
        t.compute_loss = self.make_loss(t.model, opt)
        t.validate_args = self.validator_args(opt)

    def setup_model(self, t: Trainer) -> None:
        """The model (transferring a checkpoint's matching tensors), AMP, frozen layers, image size."""
        opt = t.opt
        t.model, t.ckpt = load_model(opt.weights, opt.cfg, t.nc, t.hyp, opt.resume, t.device, self.model_cls)
        t.amp = check_amp(t.model)
        freeze_layers(t.model, opt.freeze)
        t.gs = max(int(t.model.stride.max()), 32)  # grid size (max stride)
        t.imgsz = check_img_size(opt.imgsz, t.gs, floor=t.gs * 2)
        if t.batch_size == -1:
            LOGGER.warning("WARNING AutoBatch is not available in this project, using --batch-size 16")
            t.batch_size = 16

    def setup_optimizer(self, t: Trainer) -> None:
        """SGD/Adam/AdamW with weight decay scaled to the nominal batch size; resume; DataParallel and SyncBN."""
        opt, hyp = t.opt, t.hyp
        t.accumulate = max(round(NBS / t.batch_size), 1)
        hyp["weight_decay"] *= t.batch_size * t.accumulate / NBS
        t.build_optimizer(opt.optimizer, hyp["lr0"], hyp["momentum"], hyp["weight_decay"], hyp["lrf"])
        if t.ckpt is not None:
            if opt.resume:
                t.resume(t.ckpt, opt.weights)
            t.ckpt = None
        cuda = t.device.type == "cuda"
        if cuda and RANK == -1 and torch.cuda.device_count() > 1:
            LOGGER.warning("WARNING DataParallel is not recommended, use torchrun for multi-GPU DDP training")
            t.model = nn.DataParallel(t.model)
        if opt.sync_bn and cuda and RANK != -1:
            t.model = nn.SyncBatchNorm.convert_sync_batchnorm(t.model).to(t.device)
            LOGGER.info("Using SyncBatchNorm()")
        elif opt.sync_bn:
            LOGGER.warning("WARNING --sync-bn only applies to DDP training on CUDA, ignoring it")

    def setup_loaders(self, t: Trainer) -> None:
        """Train and val loaders; before the first epoch of a new run, the anchor check and the labels plot."""
        opt, hyp, bs = t.opt, t.hyp, t.batch_size // WORLD_SIZE
        create = self.create_dataloader(opt)
        t.train_loader, t.dataset = create(
            t.data_dict["train"], t.imgsz, bs, t.gs, opt.single_cls, hyp=hyp, augment=True,
            cache=None if opt.cache == "val" else opt.cache, rect=opt.rect, rank=LOCAL_RANK, workers=opt.workers,
            image_weights=opt.image_weights, quad=opt.quad, prefix=colorstr("train: "), shuffle=True, seed=opt.seed,
            nc=t.nc)
        labels = np.concatenate(t.dataset.labels, 0)
        if RANK in {-1, 0}:
            t.val_loader = create(
                t.data_dict["val"], t.imgsz, bs * 2, t.gs, opt.single_cls, hyp=hyp,
                cache=None if opt.noval else opt.cache, rect=True, rank=-1, workers=opt.workers * 2, pad=0.5,
                prefix=colorstr("val: "), nc=t.nc)[0]
            if not opt.resume:
                if not opt.noautoanchor:
                    check_anchors(t.dataset, model=t.model, thr=hyp["anchor_t"], imgsz=t.imgsz)
                t.model.half().float()  # round anchors to FP16 now, so the FP16 checkpoints hold exactly these
                t.callbacks.run("on_pretrain_routine_end", labels, t.names)

    def scale_loss_gains(self, t: Trainer) -> None:
        """Loss gains follow the number of detection layers, classes and image size; class weights from labels."""
        hyp, nc, m = t.hyp, t.nc, de_parallel(t.model)
        nl = m.model[-1].nl
        hyp["box"] *= 3 / nl
        hyp["cls"] *= nc / 80 * 3 / nl
        hyp["obj"] *= (t.imgsz / 640) ** 2 * 3 / nl
        hyp["label_smoothing"] = t.opt.label_smoothing
        m.nc, m.hyp, m.names = nc, hyp, t.names
        m.class_weights = labels_to_class_weights(t.dataset.labels, nc).to(t.device) * nc

    def start_message(self, t: Trainer) -> str:
        """Image sizes, workers, the run folder, the epochs."""
        return (f"Image sizes {t.imgsz} train, {t.imgsz} val\n"
                f"Using {t.train_loader.num_workers * WORLD_SIZE} dataloader workers\n"
                f"Logging results to {colorstr('bold', t.save_dir)}\n"
                f"Starting training for {t.epochs} epochs...")

    # Each epoch and batch --------------------------------------------------------------------------------------------

    def epoch_start(self, t: Trainer, epoch: int) -> None:
        """--image-weights: draw images holding poorly detected classes more often."""
        if t.opt.image_weights:
            m, nc, dataset = de_parallel(t.model), t.nc, t.dataset
            cw = m.class_weights.cpu().numpy() * (1 - t.maps) ** 2 / nc
            iw = labels_to_image_weights(dataset.labels, nc=nc, class_weights=cw)
            dataset.indices = random.choices(range(len(dataset)), weights=iw, k=len(dataset))

    def epoch_header(self, t: Trainer) -> str:
        """Epoch, GPU_mem, the loss names, Instances, Size."""
        return ("\n" + "%11s" * (len(self.loss_names) + 4)) % ("Epoch", "GPU_mem", *self.loss_names, "Instances",
                                                                "Size")

    def preprocess(self, t: Trainer, batch: tuple, ni: int, epoch: int) -> dict:
        """Images to 0-1 on the device; the warmup's LR and momentum; --multi-scale's random size."""
        imgs, targets, paths, _, *extra = batch  # extra: what a task adds per batch (masks)
        imgs = imgs.to(t.device, non_blocking=True).float() / 255
        if ni <= t.nw:
            self.warmup(t, ni, epoch)
        if t.opt.multi_scale:  # a random size in [0.5, 1.5] x imgsz, a multiple of the stride
            sz = random.randrange(int(t.imgsz * 0.5), int(t.imgsz * 1.5) + t.gs) // t.gs * t.gs
            sf = sz / max(imgs.shape[2:])
            if sf != 1:
                ns = [math.ceil(x * sf / t.gs) * t.gs for x in imgs.shape[2:]]
                imgs = nn.functional.interpolate(imgs, size=ns, mode="bilinear", align_corners=False)
        return {"img": imgs, "targets": targets, "paths": paths, "extra": extra}

    def warmup(self, t: Trainer, ni: int, epoch: int) -> None:
        """LR from 0 (biases: from warmup_bias_lr), momentum from warmup_momentum; accumulation up to NBS."""
        xi, hyp = [0, t.nw], t.hyp
        t.accumulate = max(1, np.interp(ni, xi, [1, NBS / t.batch_size]).round())
        for j, x in enumerate(t.optimizer.param_groups):
            x["lr"] = np.interp(ni, xi, [hyp["warmup_bias_lr"] if j == 0 else 0.0, x["initial_lr"] * t.lf(epoch)])
            if "momentum" in x:
                x["momentum"] = np.interp(ni, xi, [hyp["warmup_momentum"], hyp["momentum"]])

    def loss(self, t: Trainer, pred, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The box loss (a per-device sum, scaled for DDP's gradient mean and the quad loader)."""
        dev = t.device
        loss, loss_items = t.compute_loss(pred, batch["targets"].to(dev), *(x.to(dev).float() for x in batch["extra"]))
        if RANK != -1:
            loss *= WORLD_SIZE  # DDP averages gradients over ranks; the loss is a per-device sum
        if t.opt.quad:
            loss *= 4.0
        return loss, loss_items

    def progress(self, t: Trainer, epoch: int, mem: str, batch: dict) -> str:
        """Epoch, memory, the mean losses, instances and image size."""
        return ("%11s" * 2 + "%11.4g" * (len(t.mloss) + 2)) % (
            f"{epoch}/{t.epochs - 1}", mem, *t.mloss, batch["targets"].shape[0], batch["img"].shape[-1])

    # Validation and results ------------------------------------------------------------------------------------------

    def val_kwargs(self, t: Trainer) -> dict:
        """The validator arguments a training run passes every time."""
        return dict(data=t.data_dict, batch_size=t.batch_size // WORLD_SIZE * 2, imgsz=t.imgsz,
                    single_cls=t.opt.single_cls, dataloader=t.val_loader, save_dir=t.save_dir, callbacks=t.callbacks,
                    compute_loss=t.compute_loss, **t.validate_args)

    def run_validator(self, **kwargs) -> tuple:
        """The task's validator with val.run's defaults, overridden by kwargs."""
        return self.validator({**VAL_DEFAULTS, **kwargs})(DetectMultiBackend)

    def validate(self, t: Trainer) -> tuple:
        """The EMA model on the val split (FP16 on CUDA); per-class maps kept for --image-weights."""
        results, t.maps, _ = self.run_validator(**self.val_kwargs(t), half=t.amp, model=t.ema.ema, plots=False)
        t.ema.ema.float()  # validation may have cast it to FP16; the average must stay FP32
        return results

    def validate_best(self, t: Trainer, best: Path) -> tuple:
        """best.pt in FP16 with the table per class, plots, and COCO scoring on COCO."""
        coco = is_coco_val(t.data_dict["val"])
        return self.run_validator(**self.val_kwargs(t), model=t.load_best(best).half(),
                                  iou_thres=0.65 if coco else 0.60, save_json=coco, verbose=True, plots=t.plots)[0]

    def fitness(self, results: tuple) -> float:
        """0.1 mAP50 + 0.9 mAP50-95."""
        return float(fitness(np.array(results).reshape(1, -1))[0])

    def log_values(self, t: Trainer) -> list[float]:
        """Mean train losses, the metrics and val losses, the learning rates."""
        return [float(x) for x in t.mloss] + list(t.results) + t.lr


DETECT = DetectTask()
