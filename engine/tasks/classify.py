"""Classification's training hooks: the model from --model (a .pt, a YAML, a torchvision name), ImageFolder loaders,
cross-entropy with label smoothing, v7.0's optimizer defaults (Adam, lr0 0.001, momentum 0.9) and schedule (down to
LRF, no warmup), one optimizer step per batch, no early stopping, and the top-1/top-5 validation after each epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn as nn

from engine.options import classify_train_parser, parse
from engine.runner import resume_options
from engine.tasks.classify_val import ClassificationValidator
from engine.trainer import Trainer, TrainTask
from models.experimental import attempt_load, torch_safe_load
from models.yolo import ClassificationModel, DetectionModel
from utils.classify_data import check_cls_dataset, create_classification_dataloader
from utils.general import (
    LOCAL_RANK,
    LOGGER,
    RANK,
    WORLD_SIZE,
    check_yaml,
    colorstr,
    get_latest_run,
    increment_path,
    yaml_load,
)
from utils.plots import CLASSIFY_PANELS
from utils.torch_utils import check_amp, de_parallel, torch_distributed_zero_first

RESULTS_KEYS = ("train/loss", "val/loss", "metrics/accuracy_top1", "metrics/accuracy_top5", "x/lr0", "x/lr1", "x/lr2")
LRF = 0.01  # final LR as a fraction of lr0, as v7.0's classify/train.py


def _torchvision_model(name: str, pretrained: bool) -> nn.Module:
    """A torchvision classifier; its ImageNet weights only when already in the torch hub cache (never downloaded)."""
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        f = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if f.is_file():
            model.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
            LOGGER.info(f"Loaded {name} ImageNet weights from {f}")
        else:
            LOGGER.warning(f"WARNING {name}: pretrained weights not found at {f} (nothing is downloaded); training "
                           f"from scratch")
    return model


def reshape_classifier_output(model: nn.Module, n: int) -> None:
    """Give a classifier n outputs: a new last Linear (or 1x1 Conv2d) where its class count differs."""
    if isinstance(model, ClassificationModel):
        head = model.model[-1]
        if head.linear.out_features != n:
            head.linear = nn.Linear(head.linear.in_features, n)
        model.nc = n
        return
    name, m = list(model.named_children())[-1]
    if isinstance(m, nn.Linear) and m.out_features != n:
        setattr(model, name, nn.Linear(m.in_features, n))
    elif isinstance(m, nn.Sequential):
        types = [type(x) for x in m]
        for cls in (nn.Linear, nn.Conv2d):
            if cls in types:
                i = len(types) - 1 - types[::-1].index(cls)
                old = m[i]
                if isinstance(old, nn.Linear) and old.out_features != n:
                    m[i] = nn.Linear(old.in_features, n)
                elif isinstance(old, nn.Conv2d) and old.out_channels != n:
                    m[i] = nn.Conv2d(old.in_channels, n, old.kernel_size, old.stride, bias=old.bias is not None)
                break


def check_model_name(name: str) -> None:
    """Raise a ValueError naming --model when it is neither a .pt, a YAML nor a torchvision classifier name."""
    if str(name).endswith((".pt", ".yaml", ".yml")):
        return
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(f"--model {name!r}: not a .pt file, a model YAML or a torchvision classifier name; "
                         f"torchvision has e.g. {', '.join(known[:6])} ...")


def build_model(name: str, nc: int, cutoff: int | None = None, pretrained: bool = True,
                dropout: float | None = None) -> nn.Module:
    """--model: a .pt checkpoint, a model YAML (detection ones are cut at cutoff), or a torchvision model name."""
    name = str(name)
    if name.endswith(".pt"):
        if not Path(name).is_file():
            raise FileNotFoundError(f"--model {name}: weights file not found (classify/train.py downloads nothing)")
        model = attempt_load(name, device="cpu", fuse=False)
    elif name.endswith((".yaml", ".yml")):
        cfg = yaml_load(check_yaml(name))
        is_cls = (cfg.get("head") or [[None, None, None]])[-1][2] == "Classify"
        model = ClassificationModel(cfg=check_yaml(name), nc=nc) if is_cls else DetectionModel(check_yaml(name))
    else:
        check_model_name(name)
        model = _torchvision_model(name, pretrained)
    if isinstance(model, DetectionModel):
        LOGGER.info(f"{name}: a detection model, cut at layer {cutoff or 10} under a Classify head")
        model = ClassificationModel(model=model, nc=nc, cutoff=cutoff or 10)
    reshape_classifier_output(model, nc)
    for m in model.modules():
        if not pretrained and name.endswith(".pt") and hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, nn.Dropout) and dropout is not None:
            m.p = dropout
    for p in model.parameters():
        p.requires_grad = True
    return model


class ClassifyTask(TrainTask):
    """Classes of whole images: YOLOv5 v7.0's classify/train.py."""

    name = "classify"
    loss_names = ("loss",)
    result_keys = RESULTS_KEYS
    panels = CLASSIFY_PANELS
    scripts = ("classify/val.py", "classify/predict.py")
    hint_source = "im.jpg"
    hints_before_end = True
    arg_prefix = "classify/train"

    def parse_opt(self, known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
        """classify/train.py's options."""
        return parse(classify_train_parser(), known, argv)

    def prepare_options(self, opt: argparse.Namespace) -> argparse.Namespace:
        """Check --model; --resume reads the run's own options, else number a new run folder."""
        check_model_name(opt.model)
        if opt.resume:
            if opt.resume is True:  # the latest interrupted classification run, not a detection one elsewhere
                opt.resume = get_latest_run(opt.project)
                if not opt.resume:
                    raise FileNotFoundError(f"--resume: no last.pt found under {opt.project}; pass a path")
            opt = resume_options(opt, self.parse_opt)  # the run's own opt.yaml, pointed at its last.pt
            opt.model = opt.weights
        else:
            opt.save_dir = str(increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok))
        return opt

    def setup(self, t: Trainer) -> None:
        """v7.0's order: run folder, data and loaders, loggers, model, optimizer, resume, DDP, criterion."""
        opt, bs = t.opt, t.batch_size // WORLD_SIZE
        t.start_run(None)
        t.seed()
        with torch_distributed_zero_first(LOCAL_RANK):
            data = check_cls_dataset(opt.data)
        t.nc, t.names, t.imgsz = data["nc"], data["names"], opt.imgsz
        t.train_loader, _ = create_classification_dataloader(
            data["train"], opt.imgsz, bs, augment=True, cache=opt.cache, rank=LOCAL_RANK, workers=opt.workers,
            seed=opt.seed, prefix=colorstr("train: "))
        if RANK in {-1, 0}:
            t.val_loader = create_classification_dataloader(
                data["val"], opt.imgsz, bs * 2, augment=False, cache=opt.cache, rank=-1, workers=opt.workers * 2,
                shuffle=False, prefix=colorstr("val: "))[0]
        t.add_loggers()
        with torch_distributed_zero_first(LOCAL_RANK):
            t.model = build_model(opt.model, t.nc, opt.cutoff, opt.pretrained, opt.dropout).to(t.device)
        t.model.names, t.model.nc = t.names, t.nc
        if isinstance(t.model, ClassificationModel):
            t.model.info(img_size=opt.imgsz)
        t.amp = check_amp(t.model)
        t.build_optimizer(opt.optimizer, opt.lr0, 0.9, opt.decay, LRF)
        if opt.resume:  # build_model loaded the EMA; training continues from the raw weights, as detection's does
            ckpt = torch_safe_load(opt.model)
            de_parallel(t.model).load_state_dict(ckpt["model"].float().state_dict())
            t.resume(ckpt, opt.model)
            del ckpt
        t.wrap_ddp()
        t.criterion = nn.CrossEntropyLoss(label_smoothing=opt.label_smoothing)

    def start_message(self, t: Trainer) -> str:
        """The model, data, classes, epochs, size and workers; then the table's header."""
        opt, workers = t.opt, t.train_loader.num_workers * WORLD_SIZE
        return (f"Starting {opt.model} training on {opt.data} ({t.nc} classes) for {t.epochs} epochs at {opt.imgsz} "
                f"px, {workers} dataloader workers; logging results to {colorstr('bold', t.save_dir)}\n\n"
                f"{'Epoch':>10}{'GPU_mem':>10}{'train_loss':>12}{'val_loss':>12}{'top1_acc':>12}{'top5_acc':>12}")

    def new_mloss(self, t: Trainer) -> torch.Tensor:
        """A float64 running mean: the same figures as v7.0's Python-float one."""
        return torch.zeros(1, dtype=torch.float64)

    def preprocess(self, t: Trainer, batch: tuple, ni: int, epoch: int) -> dict:
        """Images and class indices on the device."""
        images, labels = batch
        return {"img": images.to(t.device, non_blocking=True), "targets": labels.to(t.device), "paths": None,
                "extra": ()}

    def loss(self, t: Trainer, pred: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy with label smoothing."""
        loss = t.criterion(pred, batch["targets"])
        return loss, torch.tensor([loss.item()], dtype=torch.float64)

    def progress(self, t: Trainer, epoch: int, mem: str, batch: dict) -> str:
        """Epoch (from 1), memory, the mean training loss."""
        return f"{f'{epoch + 1}/{t.epochs}':>10}{mem:>10}{float(t.mloss[0]):>12.3g}"

    def validate(self, t: Trainer) -> tuple:
        """(top1, top5, val loss) of the EMA model."""
        return self.run_validator(t, t.ema.ema, t.opt.verbose)

    def validate_best(self, t: Trainer, best: Path) -> tuple:
        """best.pt, with the table per class."""
        return self.run_validator(t, t.load_best(best), True)

    def run_validator(self, t: Trainer, model: nn.Module, verbose: bool) -> tuple:
        """The classification validator on the val loader."""
        return ClassificationValidator(dict(model=model, dataloader=t.val_loader, criterion=t.criterion,
                                            verbose=verbose, half=False, pbar=None))()

    def epoch_report(self, t: Trainer, epoch: int) -> None:
        """v7.0's row per epoch under the header of the start message."""
        top1, top5, vloss = t.results
        LOGGER.info(f"{f'{epoch + 1}/{t.epochs}':>10}{'':>10}{float(t.mloss[0]):>12.3g}{vloss:>12.3g}{top1:>12.3g}"
                    f"{top5:>12.3g}")

    def fitness(self, results: tuple) -> float:
        """Top-1 accuracy."""
        return results[0]

    def log_values(self, t: Trainer) -> list[float]:
        """Train loss, val loss, top-1, top-5, the learning rates."""
        top1, top5, vloss = t.results
        return [float(t.mloss[0]), vloss, top1, top5, *t.lr]

    def initial_results(self) -> tuple:
        """(top1, top5, loss) before any validation."""
        return 0.0, 0.0, 0.0

    def done_message(self, t: Trainer, epoch: int, hours: float) -> str:
        """v7.0's closing line."""
        return f"\nTraining complete ({hours:.3f} hours)"


CLASSIFY = ClassifyTask()
