"""A fourth task defined entirely here, trained, validated and used for prediction through the engine.

The task finds the centre of a bright square: its own dataset, head, loss (L1), metric (PCK: the share of images
whose predicted centre lies within 0.1 of the true one), validator and predictor. No project file knows about it;
that it runs end to end is the proof that a new task (pose, oriented boxes) costs only its own files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from engine import runner
from engine.predictor import Predictor, predict
from engine.trainer import Trainer, TrainTask
from engine.validator import Validator
from models.experimental import attempt_load, torch_safe_load
from utils.general import LOGGER
from utils.sources import LoadImages

SIZE = 32  # image side, px
KEYS = ("train/l1_loss", "metrics/pck", "val/l1_loss", "x/lr0", "x/lr1", "x/lr2")


def square_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy HWC uint8 image with one 8x8 white square, and the square's centre as (x, y) in [0, 1]."""
    im = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    x0, y0 = rng.integers(0, SIZE - 8, 2)
    im[y0:y0 + 8, x0:x0 + 8] = 255
    return im, np.array([(x0 + 4) / SIZE, (y0 + 4) / SIZE], dtype=np.float32)


class SquareDataset(Dataset):
    """n seeded images and their centres; RGB CHW floats in [0, 1], as LoadImages would give them."""

    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.items = [square_image(rng) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        im, xy = self.items[i]
        return torch.from_numpy(im.transpose(2, 0, 1).copy()).float() / 255, torch.from_numpy(xy)


class PointHead(nn.Module):
    """The task's head: flattened features to (x, y) in [0, 1]."""

    def __init__(self, c1: int):
        super().__init__()
        self.fc = nn.Linear(c1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x.flatten(1)))


class PointNet(nn.Module):
    """Two strided convolutions and the PointHead."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.head = PointHead(16 * (SIZE // 4) ** 2)
        self.stride = torch.tensor([4.0])
        self.names = {0: "point"}

    def forward(self, x: torch.Tensor, augment: bool = False, visualize: bool = False) -> torch.Tensor:
        return self.head(self.body(x))


def pck(pred: torch.Tensor, target: torch.Tensor, thr: float = 0.1) -> torch.Tensor:
    """Per image: whether the predicted centre lies within thr of the true one."""
    return (pred - target).norm(dim=1) < thr


class PointValidator(Validator):
    """PCK@0.1 and the mean L1 loss over the val loader."""

    post_stage = "post-process"

    def setup(self, backend) -> None:
        a = self.args
        self.training, self.model, self.dataloader = True, a.model, a.dataloader
        self.device = next(a.model.parameters()).device
        self.model.eval()

    def progress(self):
        return self.dataloader

    def init_metrics(self) -> None:
        self.seen, self.hits, self.loss = 0, 0, 0.0

    def preprocess(self, batch):
        return batch[0].to(self.device), batch[1].to(self.device)

    def forward(self, batch) -> tuple:
        y = self.model(batch[0])
        return y, y

    def add_loss(self, train_out, batch) -> None:
        self.loss += float(self.args.compute_loss(train_out, batch[1]))

    def postprocess(self, preds, batch):
        return preds.float()

    def update_metrics(self, preds, batch) -> None:
        self.hits += int(pck(preds, batch[1]).sum())
        self.seen += len(preds)

    def compute_metrics(self) -> None:
        self.pck = self.hits / max(self.seen, 1)

    def print_results(self) -> None:
        LOGGER.info(f"PCK@0.1 {self.pck:.3f} over {self.seen} images")

    def speed_shape(self) -> tuple[int, ...]:
        return 1, 3, SIZE, SIZE

    def results(self, t) -> tuple[float, float]:
        return self.pck, self.loss / max(len(self.dataloader), 1)


class PointTask(TrainTask):
    """The new task's training hooks."""

    name = "point"
    loss_names = ("l1_loss",)
    result_keys = KEYS
    panels = KEYS[:4]
    scripts = ("point/val.py", "point/predict.py")

    def setup(self, t: Trainer) -> None:
        t.start_run(None)
        t.add_loggers()
        t.seed()
        t.model, t.amp, t.imgsz = PointNet().to(t.device), False, SIZE
        t.build_optimizer("SGD", 0.05, 0.9, 0.0, 0.1)
        t.train_loader = DataLoader(SquareDataset(16, 0), batch_size=8, shuffle=True,
                                    generator=torch.Generator().manual_seed(0))
        t.val_loader = DataLoader(SquareDataset(8, 1), batch_size=4)

    def preprocess(self, t: Trainer, batch, ni: int, epoch: int) -> dict:
        return {"img": batch[0].to(t.device), "targets": batch[1].to(t.device), "paths": None, "extra": ()}

    def loss(self, t: Trainer, pred, batch: dict):
        loss = F.l1_loss(pred, batch["targets"])
        return loss, loss.detach().reshape(1)

    def progress(self, t: Trainer, epoch: int, mem: str, batch: dict) -> str:
        return f"{epoch}/{t.epochs - 1} {mem} {float(t.mloss[0]):.4g}"

    def run_validator(self, t: Trainer, model: nn.Module) -> tuple:
        return PointValidator({"model": model, "dataloader": t.val_loader, "compute_loss": F.l1_loss})()

    def validate(self, t: Trainer) -> tuple:
        return self.run_validator(t, t.ema.ema)

    def validate_best(self, t: Trainer, best: Path) -> tuple:
        return self.run_validator(t, t.load_best(best))

    def fitness(self, results: tuple) -> float:
        return results[0]

    def log_values(self, t: Trainer) -> list[float]:
        return [float(t.mloss[0]), *t.results, *t.lr]

    def initial_results(self) -> tuple:
        return 0.0, 0.0


class PointPredictor(Predictor):
    """Each image's predicted centre: logged, written as 'x y' to --save-txt's file, drawn as a dot."""

    post_stage = "post-process"

    def load_source(self, source: str, webcam: bool):
        return LoadImages(source, img_size=self.imgsz, stride=self.model.stride, auto=False)

    def postprocess(self, out, x) -> list:
        return list(out.float())

    def prepare(self, xy, x, shape) -> str:
        return f"point {xy[0]:.2f},{xy[1]:.2f}, "

    def render(self, xy, im: np.ndarray, dest, draw: bool) -> np.ndarray:
        if self.opt.save_txt:
            with open(dest.labels, "a") as f:
                f.write(f"{xy[0]:.6f} {xy[1]:.6f}\n")
        if draw:
            cv2.circle(im, (int(xy[0] * im.shape[1]), int(xy[1] * im.shape[0])), 2, (0, 0, 255), -1)
        return im


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of the point task through engine.runner.main, the head allowed by the safe loader meanwhile."""
    save_dir = tmp_path_factory.mktemp("point") / "exp"
    opt = argparse.Namespace(save_dir=str(save_dir), epochs=1, batch_size=8, seed=0, cos_lr=False, nosave=False,
                             device="cpu", data="squares")
    with torch.serialization.safe_globals([PointNet, PointHead]):
        results = runner.main(opt, PointTask())
    return save_dir, results


def test_custom_task_trains_one_epoch_and_logs_its_keys(trained):
    """results.csv holds the task's own columns and one row, whose PCK is the validation's."""
    save_dir, results = trained
    rows = (save_dir / "results.csv").read_text().splitlines()
    assert [c.strip() for c in rows[0].split(",")] == ["epoch", *KEYS]
    assert len(rows) == 2
    row = [float(v) for v in rows[1].split(",")]
    assert row[0] == 0 and 0.0 <= row[2] <= 1.0 and row[1] > 0 and row[3] > 0
    assert (save_dir / "results.png").is_file()
    assert (save_dir / "weights" / "last.pt").is_file() and (save_dir / "weights" / "best.pt").is_file()


def test_custom_task_checkpoint_is_stripped_and_validates(trained):
    """best.pt loads (its head allowlisted), carries no optimizer, and PointValidator scores it as computed here."""
    save_dir, results = trained
    best = save_dir / "weights" / "best.pt"
    with torch.serialization.safe_globals([PointNet, PointHead]):
        ckpt = torch_safe_load(best)
        model = attempt_load(best, "cpu")
    assert ckpt["optimizer"] is None and ckpt["epoch"] == -1 and isinstance(ckpt["model"], PointNet)
    loader = DataLoader(SquareDataset(8, 1), batch_size=4)
    got_pck, got_loss = PointValidator({"model": model, "dataloader": loader, "compute_loss": F.l1_loss})()
    with torch.no_grad():
        ims, xys = map(torch.cat, zip(*loader))
        pred = model(ims)
    assert got_pck == pytest.approx(pck(pred, xys).float().mean().item())
    assert got_loss == pytest.approx(np.mean([F.l1_loss(model(a), b).item() for a, b in loader]), rel=1e-5)
    assert results == (got_pck, pytest.approx(got_loss))  # the Trainer's closing validation of the same best.pt


def test_custom_task_predicts_through_the_engine(trained, tmp_path):
    """engine.predictor.predict loads best.pt and runs PointPredictor: one 'x y' line per image, the model's."""
    save_dir, _ = trained
    rng = np.random.default_rng(7)
    src = tmp_path / "images"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"im{i}.png"), square_image(rng)[0])
    best = save_dir / "weights" / "best.pt"
    args = dict(weights=best, source=src, data=None, device="cpu", dnn=False, half=False, update=False,
                imgsz=(SIZE, SIZE), project=tmp_path, name="predict", save_txt=True, prefetch=False)
    with torch.serialization.safe_globals([PointNet, PointHead]):
        out = predict(PointPredictor, args)
        model = attempt_load(best, "cpu")
    for i in range(3):
        im = cv2.imread(str(src / f"im{i}.png"))[:, :, ::-1].transpose(2, 0, 1).copy()  # BGR file to RGB CHW
        with torch.no_grad():
            want = model(torch.from_numpy(im).float()[None] / 255)[0]
        got = [float(v) for v in (out / "labels" / f"im{i}.txt").read_text().split()]
        assert got == pytest.approx(want.tolist(), abs=1e-5)
        assert (out / f"im{i}.png").is_file()  # the annotated image
