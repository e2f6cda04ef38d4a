"""val.py's mAP50-95 of an in-memory OpenVINO model on chosen images of the --data val split: the metric that
export.py --int8 holds within --int8-max-drop (NNCF's accuracy control calls it on all and on single images)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from engine.tasks.detect_val import DetectionValidator, val_args
from utils.dataloaders import create_dataloader
from utils.general import check_dataset, colorstr
from utils.int8_accuracy import AccuracyMetric


class _Batches:
    """Batches of one image each, for the given indices of a dataset, as val.py's loader collates them."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator:
        for i in self.indices:
            yield self.dataset.collate_fn([self.dataset[i]])


class CompiledModel(torch.nn.Module):
    """A compiled OpenVINO model as the validator calls a backend: BCHW float tensor in, first output as a tensor."""

    pt = jit = fp16 = False

    def __init__(self, compiled, names: dict, stride: int):
        super().__init__()
        self.compiled, self.names, self.stride, self.device = compiled, names, stride, torch.device("cpu")

    def forward(self, im: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """The decoded predictions for im."""
        return torch.from_numpy(np.ascontiguousarray(self.compiled(im.numpy())[0]))


class SubsetValidator(DetectionValidator):
    """DetectionValidator on a given backend object and loader, quietly: no run folder, table, plots or speed line."""

    def setup(self, backend) -> None:
        """The backend is the model itself; the loader comes in args."""
        a = self.args
        self.training = True  # as in the training loop: nothing written, no standalone log lines
        self.model, self.pt, self.device, self.data, self.dataloader = backend, False, backend.device, a.data, a.loader
        self.save_dir, a.half = Path(a.save_dir), False  # plots=False: nothing is written there
        self.init_scoring()

    def progress(self) -> Iterable:
        """No bar: NNCF calls this once per image while ranking layers."""
        return self.dataloader

    def print_results(self) -> None:
        """The caller logs the figure it needs."""


class ValMetric:
    """mAP50-95 of compiled models on images of the val split, letterboxed at imgsz as val.py feeds exports."""

    def __init__(self, data: str, imgsz: int, stride: int, names: dict):
        self.data = check_dataset(data)  # a YAML without a val split is refused here, naming the file
        self.dataset = create_dataloader(self.data["val"], imgsz, 1, stride, pad=0.5, rect=False, workers=0,
                                         prefix=colorstr("INT8 val: "), nc=int(self.data["nc"]))[1]
        self.names, self.stride = names, stride

    def __call__(self, compiled, items: Iterable[int]) -> float:
        """mAP50-95 of the compiled model on the images with these indices."""
        loader = _Batches(self.dataset, list(items))
        validator = SubsetValidator({**val_args(self.data, batch_size=1, plots=False), "loader": loader})
        return float(validator(CompiledModel(compiled, self.names, self.stride))[0][3])

    def image(self, i: int) -> np.ndarray:
        """Image i as the exported model takes it: float32 1x3xHxW in [0, 1]."""
        return self.dataset[i][0].numpy()[None].astype(np.float32) / 255.0

    def metric(self) -> AccuracyMetric:
        """The metric in the form utils.int8_accuracy takes it."""
        return AccuracyMetric("mAP50-95", list(range(len(self.dataset))), self, self.image)
