"""Classification's validator: top-1 and top-5 accuracy and the mean loss, overall and per class (v7.0's table)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from engine.validator import Validator
from utils.classify_data import check_cls_dataset, create_classification_dataloader
from utils.general import LOGGER, ROOT, TQDM_BAR_FORMAT, increment_path
from utils.torch_utils import select_device

# classify/val.run's arguments and defaults (YOLOv5 v7.0's)
CLS_VAL_DEFAULTS = dict(
    data="shapes-cls", weights=None, batch_size=128, imgsz=224, device="", workers=8, verbose=False,
    project=ROOT / "runs/val-cls", name="exp", exist_ok=False, half=False, dnn=False, model=None, dataloader=None,
    criterion=None, pbar=None)


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


class ClassificationValidator(Validator):
    """Logits of every image, then top-1/top-5 accuracy; returns (top1, top5, mean loss with a criterion)."""

    post_stage = "post-process"

    def __init__(self, args: dict):
        super().__init__({**CLS_VAL_DEFAULTS, **args})

    def setup(self, backend: Callable | None) -> None:
        """The Trainer's EMA model and loader, or weights (loaded by backend) and the data's val split."""
        a = self.args
        self.training = a.model is not None
        if self.training:
            self.model, self.dataloader = a.model, a.dataloader
            self.device = next(a.model.parameters()).device
            a.half &= self.device.type != "cpu"
            self.model.half() if a.half else self.model.float()
            self.names = getattr(a.model, "names", None) or {}
        else:
            self.device = select_device(a.device, batch_size=a.batch_size)
            self.save_dir = increment_path(Path(a.project) / a.name, exist_ok=a.exist_ok)
            self.save_dir.mkdir(parents=True, exist_ok=True)
            self.model = backend(a.weights, device=self.device, dnn=a.dnn, fp16=a.half)
            a.half, self.names = self.model.fp16, self.model.names
            if not (self.model.pt or self.model.jit):
                a.batch_size = 1  # ONNX and OpenVINO exports were traced for one image
                LOGGER.info(f"Forcing --batch-size 1 for the non-PyTorch model {a.weights}")
            data = check_cls_dataset(a.data)
            self.dataloader = create_classification_dataloader(data["val"], a.imgsz, a.batch_size, augment=False,
                                                               rank=-1, workers=a.workers, shuffle=False)[0]
        self.model.eval()

    def progress(self) -> Iterable:
        """A 'validating' bar under the Trainer's (shown only when the Trainer passes its bar)."""
        a = self.args
        desc = f"{a.pbar.desc[:-36] if a.pbar else '':<30}{'validating':>10}"
        return tqdm(self.dataloader, desc, total=len(self.dataloader), leave=not self.training,
                    bar_format=TQDM_BAR_FORMAT, position=0, disable=self.training and a.pbar is None)

    def init_metrics(self) -> None:
        """No logits, targets or loss yet."""
        self.logits, self.targets, self.loss, self.seen = [], [], 0.0, 0

    @property
    def computes_loss(self) -> bool:
        """Whether a criterion scores the batches."""
        return self.args.criterion is not None

    def preprocess(self, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in the model's precision and labels, on the device."""
        images, labels = batch
        images, labels = images.to(self.device, non_blocking=True), labels.to(self.device)
        self.shape = images.shape
        return images.half() if self.args.half else images.float(), labels

    def forward(self, batch: tuple) -> tuple:
        """The logits, also for the loss."""
        y = self.model(batch[0])
        return y, y

    def add_loss(self, train_out: torch.Tensor, batch: tuple) -> None:
        """The criterion's mean over the batch, summed as a Python float (v7.0's figures)."""
        self.loss += float(self.args.criterion(train_out.float(), batch[1]))

    def postprocess(self, preds: torch.Tensor, batch: tuple) -> torch.Tensor:
        """FP32 logits."""
        return preds.float()

    def update_metrics(self, preds: torch.Tensor, batch: tuple) -> None:
        """Keep the logits and labels."""
        self.logits.append(preds)
        self.targets.append(batch[1])
        self.seen += len(batch[1])

    def compute_metrics(self) -> None:
        """Mean loss per batch; whether each image's class is in the top one and top five."""
        self.loss /= max(len(self.dataloader), 1)
        self.target = torch.cat(self.targets)
        self.acc = topk_correct(torch.cat(self.logits), self.target)
        self.top1, self.top5 = self.acc.mean(0).tolist()

    def print_results(self) -> None:
        """The table, per epoch with --verbose and always at the end and standalone."""
        if self.shows_speed():
            print_table(self.acc, self.target, self.names)

    def shows_speed(self) -> bool:
        """Verbose or standalone."""
        return bool(self.args.verbose) or not self.training

    def speed_shape(self) -> tuple[int, ...]:
        """One image at the batch's size."""
        return 1, 3, *self.shape[2:]

    def results(self, t: tuple[float, float, float]) -> tuple[float, float, float]:
        """(top1, top5, mean loss)."""
        return self.top1, self.top5, self.loss
