"""Validate a YOLOv5 classifier on an ImageFolder dataset: top-1 and top-5 accuracy, overall and per class.

Usage:
    python classify/val.py --weights runs/train-cls/exp/weights/best.pt --data shapes-cls --img 64
    python classify/val.py --weights best.onnx --data path/to/imagefolder   # .torchscript, _openvino_model/ alike
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: `import train` / `import detect` must find the root scripts, not ours
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models.backends import DetectMultiBackend  # noqa: E402
from utils.classify_data import check_cls_dataset, create_classification_dataloader  # noqa: E402
from utils.general import (  # noqa: E402
    LOGGER,
    TQDM_BAR_FORMAT,
    Profile,
    colorstr,
    increment_path,
    print_args,
    set_logging,
)
from utils.torch_utils import select_device, smart_inference_mode  # noqa: E402


def topk_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(n, 2) floats: whether each image's class is the top prediction, and whether it is among the top five."""
    pred = logits.argsort(1, descending=True)[:, :5]
    correct = (targets[:, None] == pred).float()
    return torch.stack((correct[:, 0], correct.max(1).values), 1)


def print_table(acc: torch.Tensor, targets: torch.Tensor, names: dict[int, str]) -> None:
    """v7.0's table: Class, Images, top1_acc, top5_acc, for all images and then for each class."""
    LOGGER.info(f"{'Class':>24}{'Images':>12}{'top1_acc':>12}{'top5_acc':>12}")
    top1, top5 = acc.mean(0).tolist()
    LOGGER.info(f"{'all':>24}{targets.shape[0]:>12}{top1:>12.3g}{top5:>12.3g}")
    for i, c in names.items():
        aci = acc[targets == i]
        if len(aci):
            top1i, top5i = aci.mean(0).tolist()
            LOGGER.info(f"{c:>24}{aci.shape[0]:>12}{top1i:>12.3g}{top5i:>12.3g}")


@smart_inference_mode()
def run(data: str | Path = "shapes-cls", weights: str | Path | None = None, batch_size: int = 128, imgsz: int = 224,
        device: str = "", workers: int = 8, verbose: bool = False, project: str | Path = ROOT / "runs/val-cls",
        name: str = "exp", exist_ok: bool = False, half: bool = False, dnn: bool = False, model=None,
        dataloader=None, criterion=None, pbar=None) -> tuple[float, float, float]:
    """Top-1 and top-5 accuracy and the mean loss (with criterion) of weights, or of a model in training."""
    training = model is not None
    if training:  # called by classify/train.py with the EMA model and its loader
        device = next(model.parameters()).device
        half &= device.type != "cpu"
        model.half() if half else model.float()
        names = getattr(model, "names", None) or {}
    else:
        device = select_device(device, batch_size=batch_size)
        save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
        save_dir.mkdir(parents=True, exist_ok=True)
        model = DetectMultiBackend(weights, device=device, dnn=dnn, fp16=half)
        half, names = model.fp16, model.names
        if not (model.pt or model.jit):
            batch_size = 1  # ONNX and OpenVINO exports were traced for one image
            LOGGER.info(f"Forcing --batch-size 1 for the non-PyTorch model {weights}")
        data = check_cls_dataset(data)
        dataloader = create_classification_dataloader(data["val"], imgsz, batch_size, augment=False, rank=-1,
                                                      workers=workers, shuffle=False)[0]
    model.eval()
    logits, targets, loss = [], [], 0.0
    dt = Profile(device=device), Profile(device=device), Profile(device=device)
    desc = f"{pbar.desc[:-36] if pbar else '':<30}{'validating':>10}"
    bar = tqdm(dataloader, desc, total=len(dataloader), leave=not training, bar_format=TQDM_BAR_FORMAT,
               position=0, disable=training and pbar is None)
    for images, labels in bar:
        with dt[0]:
            images, labels = images.to(device, non_blocking=True), labels.to(device)
            images = images.half() if half else images.float()
        with dt[1]:
            y = model(images)
        with dt[2]:
            y = y.float()
            logits.append(y)
            targets.append(labels)
            if criterion:
                loss += float(criterion(y, labels))
    loss /= max(len(dataloader), 1)
    targets = torch.cat(targets)
    acc = topk_correct(torch.cat(logits), targets)
    top1, top5 = acc.mean(0).tolist()
    if verbose or not training:
        print_table(acc, targets, names)
        t = tuple(x.t / len(dataloader.dataset) * 1e3 for x in dt)
        shape = (1, 3, *images.shape[2:])
        LOGGER.info(f"Speed: {t[0]:.1f}ms pre-process, {t[1]:.1f}ms inference, {t[2]:.1f}ms post-process per image "
                    f"at shape {shape}")
        if not training:
            LOGGER.info(f"Results saved to {colorstr('bold', save_dir)}")
    return top1, top5, loss


def main(opt: argparse.Namespace) -> tuple[float, float, float]:
    """Echo the flags, then validate."""
    print_args(vars(opt))
    return run(**vars(opt))


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """YOLOv5 v7.0's classify/val.py options."""
    parser = argparse.ArgumentParser(description="Validate a YOLOv5 classifier")
    add = parser.add_argument
    add("--data", type=str, default="shapes-cls", help="ImageFolder root, a name under datasets/, or a dataset YAML")
    add("--weights", nargs="+", type=str, default=str(ROOT / "yolov5s-cls.pt"),
        help="model file: .pt, .torchscript, .onnx or an _openvino_model folder")
    add("--batch-size", type=int, default=128, help="images per batch")
    add("--imgsz", "--img", "--img-size", type=int, default=224, help="square inference size, in px")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--workers", type=int, default=8, help="dataloader worker processes (at most)")
    add("--verbose", nargs="?", const=True, default=True, help="print the per-class table")
    add("--project", default=str(ROOT / "runs/val-cls"), help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--half", action="store_true", help="FP16 inference on CUDA")
    add("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    opt = parser.parse_args(argv)
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
