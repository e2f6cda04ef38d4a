"""Train a YOLOv5 classifier on an ImageFolder dataset (train/ and val/, one folder per class).

Usage - single process:
    python classify/train.py --model yolov5n-csppc.yaml --data shapes-cls --img 64 --epochs 10   # from scratch
    python classify/train.py --model runs/train-cls/exp/weights/best.pt --data path/to/imagefolder  # fine-tune
    python classify/train.py --model resnet18 --data shapes-cls     # torchvision; weights only if cached locally

Usage - distributed:
    torchrun --nproc_per_node 2 classify/train.py --model yolov5n.yaml --data shapes-cls --batch-size 128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: `import train` / `import detect` must find the root scripts, not ours
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

import train as detect_train  # noqa: E402
from classify import val as validate  # noqa: E402
from models.experimental import attempt_load, strip_optimizer, torch_safe_load  # noqa: E402
from models.yolo import ClassificationModel, DetectionModel  # noqa: E402
from utils import engine, torch_utils  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.classify_data import check_cls_dataset, create_classification_dataloader  # noqa: E402
from utils.general import (  # noqa: E402
    LOCAL_RANK,
    LOGGER,
    RANK,
    TQDM_BAR_FORMAT,
    WORLD_SIZE,
    check_yaml,
    colorstr,
    get_latest_run,
    increment_path,
    print_args,
    set_logging,
    yaml_load,
)
from utils.loggers import Loggers  # noqa: E402

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


def train(opt: argparse.Namespace, device: torch.device, callbacks: Callbacks) -> tuple[float, float, float]:
    """Train a classifier; returns the best model's (top1, top5, val loss)."""
    save_dir, epochs, bs = Path(opt.save_dir), opt.epochs, opt.batch_size // WORLD_SIZE
    w = save_dir / "weights"
    callbacks.run("on_pretrain_routine_start")
    engine.prepare_run_dir(save_dir, opt, None)
    torch_utils.init_seeds(opt.seed + 1 + RANK, deterministic=True)
    with torch_utils.torch_distributed_zero_first(LOCAL_RANK):
        data = check_cls_dataset(opt.data)
    nc, names = data["nc"], data["names"]
    train_loader, _ = create_classification_dataloader(
        data["train"], opt.imgsz, bs, augment=True, cache=opt.cache, rank=LOCAL_RANK, workers=opt.workers,
        seed=opt.seed, prefix=colorstr("train: "))
    if RANK in {-1, 0}:
        val_loader = create_classification_dataloader(
            data["val"], opt.imgsz, bs * 2, augment=False, cache=opt.cache, rank=-1, workers=opt.workers * 2,
            shuffle=False, prefix=colorstr("val: "))[0]
        loggers = Loggers(save_dir, opt)
        loggers.keys = RESULTS_KEYS
        loggers.register(callbacks)

    with torch_utils.torch_distributed_zero_first(LOCAL_RANK):
        model = build_model(opt.model, nc, opt.cutoff, opt.pretrained, opt.dropout).to(device)
    model.names, model.nc = names, nc
    if isinstance(model, ClassificationModel):
        model.info(img_size=opt.imgsz)
    amp = torch_utils.check_amp(model)
    optimizer = torch_utils.smart_optimizer(model, opt.optimizer, opt.lr0, momentum=0.9, decay=opt.decay)
    scheduler, _ = engine.build_scheduler(optimizer, epochs, LRF, opt.cos_lr)
    ema = torch_utils.ModelEMA(model) if RANK in {-1, 0} else None
    best_fitness, start_epoch = 0.0, 0
    if opt.resume:  # build_model loaded the EMA; training continues from the raw weights, as detection's does
        ckpt = torch_safe_load(opt.model)
        torch_utils.de_parallel(model).load_state_dict(ckpt["model"].float().state_dict())
        best_fitness, start_epoch, epochs = torch_utils.smart_resume(ckpt, optimizer, ema, opt.model, epochs, True)
        del ckpt
    scheduler.last_epoch = start_epoch - 1
    if RANK != -1:
        model = torch_utils.smart_DDP(model)
    criterion = nn.CrossEntropyLoss(label_smoothing=opt.label_smoothing)
    scaler = engine.grad_scaler(amp)

    t0, results = time.time(), (0.0, 0.0, 0.0)
    callbacks.run("on_train_start")
    workers = train_loader.num_workers * WORLD_SIZE
    LOGGER.info(f"Starting {opt.model} training on {opt.data} ({nc} classes) for {epochs} epochs at {opt.imgsz} px, "
                f"{workers} dataloader workers; logging results to {colorstr('bold', save_dir)}\n\n"
                f"{'Epoch':>10}{'GPU_mem':>10}{'train_loss':>12}{'val_loss':>12}{'top1_acc':>12}{'top5_acc':>12}")
    for epoch in range(start_epoch, epochs):
        model.train()
        callbacks.run("on_train_epoch_start")
        tloss = 0.0
        if RANK != -1:
            train_loader.sampler.set_epoch(epoch)
        pbar = enumerate(train_loader)
        if RANK in {-1, 0}:
            pbar = tqdm(pbar, total=len(train_loader), bar_format=TQDM_BAR_FORMAT)
        for i, (images, labels) in pbar:
            images, labels = images.to(device, non_blocking=True), labels.to(device)
            with torch.autocast(device_type=device.type, enabled=amp):
                loss = criterion(model(images), labels)
            scaler.scale(loss).backward()
            engine.optimizer_step(model, optimizer, scaler, ema)
            if RANK in {-1, 0}:
                tloss = (tloss * i + loss.item()) / (i + 1)
                mem = f"{torch.cuda.memory_reserved() / 1e9 if torch.cuda.is_available() else 0:.3g}G"
                pbar.set_description(f"{f'{epoch + 1}/{epochs}':>10}{mem:>10}{tloss:>12.3g}")
        lr = [x["lr"] for x in optimizer.param_groups]
        scheduler.step()

        if RANK in {-1, 0}:
            callbacks.run("on_train_epoch_end", epoch=epoch)
            top1, top5, vloss = validate.run(model=ema.ema, dataloader=val_loader, criterion=criterion,
                                             verbose=opt.verbose)
            LOGGER.info(f"{f'{epoch + 1}/{epochs}':>10}{'':>10}{tloss:>12.3g}{vloss:>12.3g}{top1:>12.3g}{top5:>12.3g}")
            best_fitness = max(best_fitness, top1)
            callbacks.run("on_fit_epoch_end", [tloss, vloss, top1, top5, *lr], epoch, best_fitness, top1)
            final_epoch = epoch + 1 == epochs
            if not opt.nosave or final_epoch:
                last = engine.save_checkpoints(w, epoch, best_fitness, top1, model, ema, optimizer, opt)
                callbacks.run("on_model_save", last, epoch, final_epoch, best_fitness, top1)
        if engine.broadcast_stop(False):
            break

    if RANK in {-1, 0}:
        last, best = w / "last.pt", w / "best.pt"
        LOGGER.info(f"\nTraining complete ({(time.time() - t0) / 3600:.3f} hours)")
        for f in last, best:
            if f.exists():
                strip_optimizer(f)
        if best.exists():
            LOGGER.info(f"\nValidating {best}...")
            results = validate.run(model=attempt_load(best, device), dataloader=val_loader, criterion=criterion,
                                   verbose=True)
            LOGGER.info(f"\nBest weights: {best}\n"
                        f"Validate:  python classify/val.py --weights {best} --data {opt.data} --img {opt.imgsz}\n"
                        f"Predict:   python classify/predict.py --weights {best} --source im.jpg --img {opt.imgsz}\n"
                        f"Export:    python export.py --weights {best} --include onnx --img {opt.imgsz}")
        callbacks.run("on_train_end", last, best, epochs - 1, results)
    return results


def parse_opt(known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """YOLOv5 v7.0's classify/train.py options (defaults that run offline: a CSPPC YAML on shapes-cls)."""
    parser = argparse.ArgumentParser(description="Train a YOLOv5 classifier")
    add = parser.add_argument
    add("--model", type=str, default="yolov5n-csppc.yaml",
        help="a .pt checkpoint, a model YAML (detection YAMLs are cut at --cutoff) or a torchvision model name")
    add("--data", type=str, default="shapes-cls", help="ImageFolder root, a name under datasets/, or a dataset YAML")
    add("--epochs", type=int, default=10, help="number of epochs to train")
    add("--batch-size", type=int, default=64, help="images per step over all devices")
    add("--imgsz", "--img", "--img-size", type=int, default=224, help="square side of train and val images, in px")
    add("--nosave", action="store_true", help="write checkpoints at the end only")
    add("--cache", type=str, nargs="?", const="ram", help="keep decoded images in ram or on disk")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--workers", type=int, default=8, help="dataloader worker processes per rank (at most)")
    add("--project", default=str(ROOT / "runs/train-cls"), help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--pretrained", nargs="?", const=True, default=True, type=lambda s: str(s).lower() not in ("false", "0"),
        help="start from the model's weights (--pretrained False re-initialises a .pt or a torchvision model)")
    add("--optimizer", choices=["SGD", "Adam", "AdamW", "RMSProp"], default="Adam", help="optimizer to train with")
    add("--lr0", type=float, default=0.001, help="initial learning rate")
    add("--decay", type=float, default=5e-5, help="weight decay")
    add("--label-smoothing", type=float, default=0.1, help="epsilon of label smoothing in the cross-entropy loss")
    add("--cutoff", type=int, default=None, help="cut a detection model before this layer index (default 10)")
    add("--dropout", type=float, default=None, help="dropout probability of the head (default: the model's)")
    add("--cos-lr", action="store_true", help="cosine learning-rate decay instead of linear")
    add("--resume", nargs="?", const=True, default=False, help="continue the latest interrupted run, or this last.pt")
    add("--verbose", action="store_true", help="print the per-class table after every epoch, not only at the end")
    add("--seed", type=int, default=0, help="random seed of the run")
    add("--local_rank", "--local-rank", type=int, default=-1, help="set by torchrun for DDP; leave it alone")
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def main(opt: argparse.Namespace, callbacks: Callbacks | None = None) -> tuple[float, float, float]:
    """Check options, set up DDP when launched by torchrun, then train."""
    if RANK in {-1, 0}:
        print_args(vars(opt))
    check_model_name(opt.model)
    if opt.resume:
        if opt.resume is True:  # the latest interrupted classification run, not a detection one elsewhere in runs/
            opt.resume = get_latest_run(opt.project)
            if not opt.resume:
                raise FileNotFoundError(f"--resume: no last.pt found under {opt.project}; pass a path")
        opt = detect_train.resume_options(opt, parse_opt)  # the run's own opt.yaml, pointed at its last.pt
        opt.model = opt.weights
    else:
        opt.save_dir = str(increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok))
    device = engine.setup_ddp(torch_utils.select_device(opt.device, batch_size=opt.batch_size), opt.batch_size)
    try:
        return train(opt, device, callbacks or Callbacks())
    finally:
        engine.teardown_ddp()


def run(**kwargs) -> argparse.Namespace:
    """Train from Python: run(model='yolov5n-csppc.yaml', data='shapes-cls', imgsz=64, epochs=5)."""
    opt = parse_opt(known=True, argv=[])
    for k, v in kwargs.items():
        setattr(opt, k, v)
    main(opt)
    return opt


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
