"""TensorBoard: scalars under results.csv's keys, the hyperparameters and options as text, run-folder images and
the model graph; on by default (as in YOLOv5 v7.0), off with YOLOV5_TENSORBOARD=0."""

from __future__ import annotations

import os
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from utils.general import LOGGER, colorstr
from utils.loggers.base import ExperimentLogger


def read_rgb(file: Path):
    """An image file as an HxWx3 uint8 RGB array; a clear error when it cannot be read."""
    import cv2

    im = cv2.imread(str(file))
    if im is None:
        raise OSError(f"cannot read image {file}")
    return im[..., ::-1]


class TensorBoardLogger(ExperimentLogger):
    """Event files in the run folder, read by `tensorboard --logdir runs/train`."""

    name = "TensorBoard"
    package = "tensorboard"
    hooks = (*ExperimentLogger.hooks, "on_train_batch_end")

    @classmethod
    def on(cls, opt) -> bool:
        """Installed, and not switched off with YOLOV5_TENSORBOARD=0/false."""
        return cls.installed() and os.getenv("YOLOV5_TENSORBOARD", "1").lower() not in ("0", "false", "off")

    def start(self) -> None:
        """A SummaryWriter on the run folder."""
        from torch.utils.tensorboard import SummaryWriter

        self.tb = None
        self.tb = SummaryWriter(str(self.save_dir))
        LOGGER.info(f"{colorstr('TensorBoard: ')}Start with 'tensorboard --logdir {self.save_dir.parent}', "
                    "view at http://localhost:6006/")

    def log_params(self, params: dict[str, Any]) -> None:
        """The hyperparameters and options as YAML text (TensorBoard's TEXT tab)."""
        for group in ("hyp", "opt"):
            d = {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(f"{group}/")}
            text = yaml.safe_dump(d, sort_keys=False)
            self.tb.add_text(group, "    " + text.replace("\n", "\n    "), 0)  # indented: shown as code

    def log_metrics(self, metrics: dict[str, float], epoch: int) -> None:
        """One scalar per key at step epoch."""
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, epoch)
        self.tb.flush()

    def log_images(self, files: list[Path], step: int) -> None:
        """Each file under its own name (labels, train_batch0, results, ...)."""
        for f in files:
            self.tb.add_image(f.stem, read_rgb(f), step, dataformats="HWC")
        self.tb.flush()

    def on_train_batch_end(self, model, ni: int, imgs, *args) -> None:
        """The model graph, once, traced on a copy (tracing the training model itself would move its BN statistics);
        a model that does not trace gets one note and no graph, and the logger stays on."""
        if ni != 0 or getattr(self.opt, "sync_bn", False):
            return
        import torch

        m = deepcopy(model.module if hasattr(model, "module") else model).float().train()  # no grid cache
        im = torch.zeros((1, *imgs.shape[1:]), device=next(m.parameters()).device)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes
                # traced here without trace checking: the checker's second trace differs (Detect's grid cache)
                self.tb.add_graph(torch.jit.trace(m, im, strict=False, check_trace=False), [])
        except Exception as e:  # tracing is best effort: a graph is a nice-to-have, the scalars are not
            reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
            LOGGER.info(f"{colorstr('TensorBoard: ')}model graph not logged ({type(e).__name__}: {reason})")

    def close(self) -> None:
        """Flush and close the event file."""
        if getattr(self, "tb", None) is not None:
            self.tb.close()
