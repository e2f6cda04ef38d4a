"""Weights & Biases: on when wandb is installed and not disabled (WANDB_MODE=disabled or `wandb disabled`), and
either logged in or offline (WANDB_MODE=offline); YOLOv5 v7.0's --entity, --bbox_interval, --upload_dataset and
--artifact_alias, and --resume continuing the same W&B run."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from utils.general import LOGGER, colorstr
from utils.loggers.base import ExperimentLogger, run_names

ID_FILE = "wandb_id.txt"  # in the run folder: the W&B run that --resume continues (v7.0 kept it in the checkpoint)
MAX_BOX_IMAGES = 16  # validation images with boxes logged per epoch, as in v7.0


def wandb_mode() -> str:
    """The mode W&B runs in from the environment ('online' when unset)."""
    mode = os.getenv("WANDB_MODE", "online").lower()
    return "disabled" if os.getenv("WANDB_DISABLED", "").lower() in ("true", "1") else mode


def logged_in() -> bool:
    """Whether an API key is configured (WANDB_API_KEY, or the W&B host in ~/.netrc) without contacting a server."""
    if os.getenv("WANDB_API_KEY"):
        return True
    host = urlparse(os.getenv("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        return netrc.netrc(os.getenv("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger(ExperimentLogger):
    """A W&B run in <run folder>/wandb: config, history per epoch, images, boxed val images, dataset and model
    artifacts."""

    name = "Weights & Biases"
    package = "wandb"
    hooks = (*ExperimentLogger.hooks, "on_val_image_end")

    @classmethod
    def on(cls, opt) -> bool:
        """Installed and not disabled; online needs a configured API key (training never waits on a login prompt)."""
        if not cls.installed() or wandb_mode() == "disabled":
            return False
        if wandb_mode() in ("offline", "dryrun") or logged_in():
            return True
        LOGGER.info(f"{colorstr('Weights & Biases: ')}not logged in, not logging this run: run 'wandb login', or set "
                    "WANDB_MODE=offline (sync later) or WANDB_MODE=disabled (no message)")
        return False

    def start(self) -> None:
        """wandb.init in the run folder; --resume reuses the run id this folder recorded."""
        import wandb

        self.wandb, self.run, self.boxes = wandb, None, []
        opt, id_file = self.opt, self.save_dir / ID_FILE
        run_id = id_file.read_text().strip() if opt.resume and id_file.is_file() else None
        interval = getattr(opt, "bbox_interval", -1)
        self.bbox_interval = interval if interval > 0 else (opt.epochs // 10 if opt.epochs > 10 else 1)
        self.run = wandb.init(dir=str(self.save_dir), id=run_id, resume="allow" if run_id else None,
                              job_type="Training", allow_val_change=True, **run_names(opt))
        if self.run is None or getattr(self.run, "disabled", False) or self.run.settings.mode == "disabled":
            self.active = False  # `wandb disabled` in W&B's own settings file: off without a message
            return
        id_file.write_text(self.run.id)
        LOGGER.info(f"{colorstr('Weights & Biases: ')}run {self.run.id} ({self.run.settings.mode}) in "
                    f"{self.save_dir / 'wandb'}")

    def log_params(self, params: dict[str, Any]) -> None:
        """The hyperparameters and options as the run's config ('hyp/lr0', 'opt/epochs')."""
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], epoch: int) -> None:
        """The epoch's row at step epoch, with this epoch's boxed validation images."""
        if self.boxes:
            metrics = {**metrics, "Bounding Box Debugger/Images": self.boxes}
        self.run.log(metrics, step=epoch)
        self.boxes, self.epoch = [], -1  # the closing validation of best.pt logs no boxes

    def log_images(self, files: list[Path], step: int) -> None:
        """Each image under its file's stem."""
        self.run.log({f.stem: self.wandb.Image(str(f), caption=f.name) for f in files}, step=step)

    def log_model(self, best: Path, epoch: int) -> None:
        """best.pt as a 'model' artifact (aliases latest, best and its epoch)."""
        art = self.wandb.Artifact(f"run_{self.run.id}_model", type="model", metadata={"epochs": epoch + 1})
        art.add_file(str(best), name=best.name)
        self.run.log_artifact(art, aliases=["latest", "best", f"epoch {epoch}"])

    def close(self) -> None:
        """Finish the run (offline: writes what `wandb sync` uploads); then, unless another run is active, tear W&B
        down, so that a later run in this process reads its settings (WANDB_MODE, ...) afresh."""
        if getattr(self, "run", None) is not None:
            self.run.finish()
            self.run = None
        if getattr(self, "wandb", None) is not None and self.wandb.run is None:
            self.wandb.teardown()

    def on_train_start(self) -> None:
        """--upload_dataset: the train and val images and labels (or only val's) as 'dataset' artifacts."""
        up = getattr(self.opt, "upload_dataset", False)
        if up and not self.opt.resume:
            from utils.loggers.wandb_dataset import dataset_artifacts

            alias = getattr(self.opt, "artifact_alias", "latest")
            for art in dataset_artifacts(self.wandb, self.opt.data, ("val",) if up == "val" else ("train", "val")):
                self.run.log_artifact(art, aliases=sorted({"latest", alias}))

    def on_val_image_end(self, pred, predn, path, names, im) -> None:
        """Every --bbox_interval epochs, up to 16 validation images with their predicted boxes."""
        if self.epoch < 0 or (self.epoch + 1) % self.bbox_interval or len(self.boxes) >= MAX_BOX_IMAGES:
            return
        names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else names
        box_data = [{"position": {"minX": x0, "minY": y0, "maxX": x1, "maxY": y1}, "class_id": int(c),
                     "box_caption": f"{names[int(c)]} {conf:.3f}", "scores": {"class_score": conf}, "domain": "pixel"}
                    for x0, y0, x1, y1, conf, c in pred[:, :6].tolist()]
        img = (im.float().permute(1, 2, 0).cpu().numpy() * 255).clip(0, 255).astype("uint8")
        boxes = {"predictions": {"box_data": box_data, "class_labels": {int(k): str(v) for k, v in names.items()}}}
        self.boxes.append(self.wandb.Image(img, boxes=boxes, caption=Path(path).name))
