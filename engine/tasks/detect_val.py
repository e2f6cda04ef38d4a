"""Detection's validator: NMS, box-IoU matching, P, R, mAP50 and mAP50-95 per class, plots, label files, COCO JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from engine.tasks.detect_predict import write_labels
from engine.validator import TIME_COLUMNS, Validator, set_precision
from utils.coco_eval import coco_evaluate, save_one_json
from utils.coco_json import coco80_to_coco91_class
from utils.dataloaders import create_dataloader
from utils.general import (
    LOGGER,
    ROOT,
    TQDM_BAR_FORMAT,
    check_dataset,
    check_img_size,
    colorstr,
    increment_path,
    non_max_suppression,
    scale_boxes,
    xywh2xyxy,
)
from utils.metrics import ConfusionMatrix, ap_per_class, match_predictions
from utils.plots import output_to_target, plot_images
from utils.torch_utils import select_device

# val.run's arguments and defaults (YOLOv5 v7.0's), for the Trainer and the segmentation script, which take them all
VAL_DEFAULTS = dict(
    weights=None, batch_size=32, imgsz=640, conf_thres=0.001, iou_thres=0.6, max_det=300, task="val", device="",
    workers=8, single_cls=False, augment=False, verbose=False, save_txt=False, save_hybrid=False, save_conf=False,
    save_json=False, project=ROOT / "runs/val", name="exp", exist_ok=False, half=None, dnn=False, model=None,
    dataloader=None, save_dir=Path(""), plots=True, callbacks=None, compute_loss=None)


def val_args(data, **kwargs) -> dict:
    """val.run's arguments: its defaults overridden by kwargs; an argument it does not take raises TypeError."""
    unknown = [k for k in kwargs if k not in VAL_DEFAULTS]
    if unknown:
        raise TypeError(f"run() got an unexpected keyword argument {unknown[0]!r}")
    return {"data": data, **VAL_DEFAULTS, **kwargs}


def is_coco_val(path) -> bool:
    """Whether a dataset's val split is COCO's val2017 list (its own IoU threshold and JSON scoring apply)."""
    return isinstance(path, str) and Path(path).as_posix().endswith("coco/val2017.txt")


def save_one_txt(predn: torch.Tensor, save_conf: bool, shape: tuple[int, int], file: Path) -> None:
    """Append detections in original-image pixels to a YOLO-format txt: cls x y w h [conf], normalised (v7.0 name)."""
    write_labels(file, predn[:, :6], shape, save_conf)


def model_nc(model) -> int | None:
    """Class count of a loaded PyTorch model: its nc attribute (YOLOv5 training sets it) or its head's."""
    nc = getattr(model, "nc", None)
    if nc is None and hasattr(model, "model") and len(model.model):
        nc = getattr(model.model[-1], "nc", None)
    return int(nc) if nc is not None else None


class DetectionValidator(Validator):
    """Boxes: P, R, mAP50 and mAP50-95 per class, box-IoU matching, plot_images, COCO box JSON.

    Returns ((metrics..., losses...), per-class mAP50-95, (pre-process, inference, NMS) ms per image). A box task
    built on it (segmentation) overrides the hooks under 'box-task hooks'.
    """

    header = ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")  # the printed columns
    metric_names = ("P", "R", "mAP50", "mAP50-95")  # as CSV names (study), 4 per iouType: P R mAP50 mAP50-95
    loss_names = ("box_loss", "obj_loss", "cls_loss")
    iou_types: tuple[str, ...] = ("bbox",)  # COCOeval kinds of --save-json, in the order of metric_names' groups
    n_match = 1  # correct-at-each-IoU matrices per prediction (boxes; masks and boxes)
    nm = 0  # mask coefficients after [xyxy, conf, cls] in the NMS output
    bf16_on_cpu = True  # whether half=True on a CPU means bf16 (else FP32)
    create_dataloader = staticmethod(create_dataloader)

    def __init__(self, args: dict):
        super().__init__(args)
        self.coco_stats: dict[str, tuple[float, float]] = {}

    @classmethod
    def study_columns(cls) -> tuple[str, ...]:
        """The study CSV's columns after imgsz: the metrics, the losses and the three timings."""
        return (*cls.metric_names, *cls.loss_names, *TIME_COLUMNS)

    def setup(self, backend: Callable | None) -> None:
        """Device, precision, model, data and dataloader: the live ones in training, else loaded from weights."""
        a = self.args
        self.training = a.model is not None
        if self.training:
            self.model, self.pt, self.data, self.dataloader = a.model, True, a.data, a.dataloader
            self.device, self.save_dir = next(a.model.parameters()).device, Path(a.save_dir)
            a.half = (a.half is None or a.half) and self.device.type != "cpu"  # half precision only on CUDA
            set_precision(self.model, a.half)
        else:
            device = select_device(a.device, batch_size=a.batch_size)
            if a.half is None:  # the default: FP16 where it runs (CUDA), FP32 on CPU
                a.half = device.type != "cpu"
            a.half = a.half and (device.type != "cpu" or self.bf16_on_cpu)
            self.save_dir = increment_path(Path(a.project) / a.name, exist_ok=a.exist_ok)
            (self.save_dir / "labels" if a.save_txt else self.save_dir).mkdir(parents=True, exist_ok=True)
            self.model = backend(a.weights, device=device, dnn=a.dnn, data=a.data, fp16=a.half)
            self.pt, self.device, a.half = self.model.pt, self.model.device, self.model.fp16
            a.imgsz = check_img_size(a.imgsz, s=self.model.stride)
            if not (self.model.pt or self.model.jit):
                a.batch_size = 1  # exported models take one fixed-shape image
                LOGGER.info(f"Forcing --batch-size 1 square inference (1,3,{a.imgsz},{a.imgsz}) "
                            "for non-PyTorch models")
            self.data = check_dataset(a.data)
        self.init_scoring()
        if not self.training:
            if self.pt and not a.single_cls:
                ncm = model_nc(self.model.model)
                if ncm is not None and ncm != self.nc:
                    raise ValueError(f"{a.weights} ({ncm} classes) trained on different --data than what you passed "
                                     f"({self.nc} classes). Pass --weights and --data that were trained together.")
            self.model.warmup(imgsz=(1 if self.pt else a.batch_size, 3, a.imgsz, a.imgsz))
            pad, rect = (0.0, False) if a.task == "speed" else (0.5, self.pt)  # rectangular batches for PyTorch only
            a.task = a.task if a.task in ("train", "val", "test") else "val"
            if not self.data.get(a.task):
                raise ValueError(f"The data YAML has no '{a.task}' split to validate on")
            self.dataloader = self.build_dataloader(self.data[a.task], self.model.stride, pad, rect)

    def init_scoring(self) -> None:
        """Once model, device and data are set: eval mode, class count and map, IoU thresholds, class names."""
        self.model.eval()
        self.cuda = self.device.type != "cpu"
        self.is_coco = is_coco_val(self.data.get("val"))
        self.class_map = coco80_to_coco91_class() if self.is_coco else list(range(1000))
        self.nc = 1 if self.args.single_cls else int(self.data["nc"])
        self.iouv = torch.linspace(0.5, 0.95, 10, device=self.device)  # IoU thresholds for mAP@0.5:0.95
        names = self.model.names if hasattr(self.model, "names") else self.model.module.names
        self.names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else names

    def progress(self) -> Iterable:
        """The dataloader under a bar titled with the table's columns."""
        desc = ("%22s" + "%11s" * (len(self.header) - 1)) % self.header
        return tqdm(self.dataloader, desc=desc, bar_format=TQDM_BAR_FORMAT)

    def init_metrics(self) -> None:
        """Zeros until AP is computed: what YOLOv5 reports for a split without labels."""
        self.seen, self.stats, self.jdict = 0, [], []
        self.confusion_matrix = ConfusionMatrix(nc=self.nc)
        self.loss = torch.zeros(len(self.loss_names), device=self.device)
        self.tp, self.fp, self.p, self.r, self.f1, self.ap50 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        self.mp, self.mr, self.map50, self.map = 0.0, 0.0, 0.0, 0.0
        self.ap, self.ap_class = np.zeros((0, self.iouv.numel())), np.zeros(0, dtype=int)

    def preprocess(self, batch: tuple) -> dict:
        """Images to the device in the model's precision and 0-1; targets to the device."""
        im, targets, paths, shapes = batch[:4]
        if self.cuda:
            im = im.to(self.device, non_blocking=True)
            targets = targets.to(self.device)
        im = im.half() if self.args.half else im.float()
        im /= 255
        return {"img": im, "targets": targets, "paths": paths, "shapes": shapes}

    def forward(self, batch: dict) -> tuple:
        """Eval output; in training (compute_loss given) the model also returns its raw maps for the loss."""
        a = self.args
        return self.model(batch["img"]) if a.compute_loss else (self.model(batch["img"], augment=a.augment), None)

    def batch_loss(self, train_out, batch: dict) -> torch.Tensor:
        """box, obj, cls."""
        return self.args.compute_loss(train_out, batch["targets"])[1]

    def add_loss(self, train_out, batch: dict) -> None:
        """The batch's loss items join the running sum."""
        self.loss += self.batch_loss(train_out, batch)

    def postprocess(self, preds, batch: dict) -> list[torch.Tensor]:
        """NMS per image; with --save-hybrid the labels join the candidates."""
        a, targets = self.args, batch["targets"]
        height, width = batch["img"].shape[2:]
        targets[:, 2:] *= torch.tensor((width, height, width, height), device=self.device)  # to pixels
        lb = [targets[targets[:, 0] == i, 1:] for i in range(len(batch["img"]))] if a.save_hybrid else []
        return non_max_suppression(preds, a.conf_thres, a.iou_thres, labels=lb, multi_label=True,
                                   agnostic=a.single_cls, max_det=a.max_det, nm=self.nm)

    def update_metrics(self, preds: list[torch.Tensor], batch: dict) -> None:
        """Per image: scale predictions and labels to original pixels, match them, save txt/JSON, count."""
        a, im, targets = self.args, batch["img"], batch["targets"]
        for si, pred in enumerate(preds):
            labels = targets[targets[:, 0] == si, 1:]
            nl, npr = labels.shape[0], pred.shape[0]
            path, (shape, ratio_pad) = Path(batch["paths"][si]), batch["shapes"][si]
            self.seen += 1
            if npr == 0:
                if nl:
                    self.stats.append((*self.no_matches(0), *torch.zeros((2, 0), device=self.device), labels[:, 0]))
                    if a.plots:
                        self.confusion_matrix.process_batch(detections=None, labels=labels[:, 0])
                continue

            extra = self.prepare_pred(si, pred, batch)
            if a.single_cls:
                pred[:, 5] = 0
            predn = pred.clone()
            scale_boxes(im[si].shape[1:], predn[:, :4], shape, ratio_pad)  # to original image pixels
            correct = self.no_matches(npr)
            if nl:
                tbox = xywh2xyxy(labels[:, 1:5])
                scale_boxes(im[si].shape[1:], tbox, shape, ratio_pad)
                labelsn = torch.cat((labels[:, 0:1], tbox), 1)
                correct = self.match(si, predn, labelsn, batch, extra)
                if a.plots:
                    self.confusion_matrix.process_batch(predn, labelsn)
            self.stats.append((*correct, pred[:, 4], pred[:, 5], labels[:, 0]))

            if a.save_txt:
                save_one_txt(predn, a.save_conf, shape, file=self.save_dir / "labels" / f"{path.stem}.txt")
            if a.save_json:
                self.pred_to_json(si, pred, predn, path, batch, extra)
            self.callbacks.run("on_val_image_end", pred, predn, path, self.names, im[si])

    def no_matches(self, n: int) -> tuple[torch.Tensor, ...]:
        """All-false correct matrices for n predictions, one per kind of match."""
        return tuple(torch.zeros(n, self.iouv.numel(), dtype=torch.bool, device=self.device)
                     for _ in range(self.n_match))

    def compute_metrics(self) -> None:
        """Stack the per-image statistics, count the labels per class and let the task compute its AP."""
        if self.stats:
            stats = [torch.cat(x, 0).cpu().numpy() for x in zip(*self.stats)]
        else:
            stats = [np.zeros((0, self.iouv.numel()), dtype=bool)] * self.n_match + [np.zeros(0)] * 3
        self.nt = np.bincount(stats[-1].astype(int), minlength=self.nc)  # instances per class
        if len(stats[-1]):
            self.update_ap(stats)

    def print_results(self) -> None:
        """The 'all' row, then one row per class when verbose (or standalone with fewer than 50 classes)."""
        a = self.args
        pf = "%22s" + "%11i" * 2 + "%11.3g" * (len(self.header) - 3)
        LOGGER.info(pf % ("all", self.seen, self.nt.sum(), *self.mean_results()))
        if self.nt.sum() == 0:
            LOGGER.warning(f"WARNING no labels found in {a.task} set, can not compute metrics without labels")
        classes = self.ap_class_index
        if (a.verbose or (self.nc < 50 and not self.training)) and self.nc > 1 and len(classes):
            for i, c in enumerate(classes):
                LOGGER.info(pf % (self.names.get(int(c), str(c)), self.seen, self.nt[c], *self.class_result(i)))

    def final_results(self) -> tuple[float, ...]:
        """mean_results with COCOeval's mAP50 and mAP50-95 in place of ours where it scored that kind (YOLOv5)."""
        r = list(self.mean_results())
        for k, iou_type in enumerate(self.iou_types):
            if iou_type in self.coco_stats:
                r[4 * k + 3], r[4 * k + 2] = self.coco_stats[iou_type]
        return tuple(r)

    # task hooks
    def speed_shape(self) -> tuple[int, ...]:
        """The batch shape of a standalone run."""
        a = self.args
        return a.batch_size, 3, a.imgsz, a.imgsz

    def batch_end_args(self, batch: dict, preds: list[torch.Tensor]) -> tuple:
        """YOLOv5's: batch_i, images, targets, paths, shapes, predictions."""
        return self.batch_i, batch["img"], batch["targets"], batch["paths"], batch["shapes"], preds

    def finalize(self) -> None:
        """The confusion matrix plot and on_val_end; --save-json's file and COCOeval's scores."""
        a = self.args
        if a.plots:
            names = [self.names.get(i, str(i)) for i in range(self.nc)]
            self.confusion_matrix.plot(save_dir=self.save_dir, names=names)
            self.callbacks.run("on_val_end", *self.val_end_args())
        if a.save_json and self.jdict:
            w = Path(a.weights[0] if isinstance(a.weights, list) else a.weights).stem if a.weights is not None else ""
            image_files = getattr(getattr(self.dataloader, "dataset", None), "im_files", [])
            self.coco_stats = coco_evaluate(self.jdict, Path(self.save_dir) / f"{w}_predictions.json", self.data,
                                            image_files, self.is_coco, self.iou_types) or {}

    def saved_note(self) -> str:
        """How many label files --save-txt wrote, and where."""
        n = len(list(self.save_dir.glob("labels/*.txt")))
        return f"\n{n} labels saved to {self.save_dir / 'labels'}" if self.args.save_txt else ""

    def results(self, t: tuple[float, float, float]) -> tuple[tuple, np.ndarray, tuple[float, float, float]]:
        """((metrics..., losses...), per-class mAP50-95, (pre-process, inference, NMS) ms per image)."""
        losses = (self.loss.cpu() / max(len(self.dataloader), 1)).tolist()
        return (*self.final_results(), *losses), self.get_maps(), t

    # box-task hooks
    def prepare_pred(self, si: int, pred: torch.Tensor, batch: dict):
        """Anything the task derives from image si's predictions before matching (masks); None for boxes."""
        return None

    def build_dataloader(self, path: str, stride: int, pad: float, rect: bool, **kwargs):
        """The task's create_dataloader with val.py's settings (no augmentation, labels of nc classes)."""
        a = self.args
        return self.create_dataloader(path, a.imgsz, a.batch_size, stride, a.single_cls, pad=pad, rect=rect,
                                      workers=a.workers, prefix=colorstr(f"{a.task}: "), nc=self.nc, **kwargs)[0]

    def match(self, si: int, predn: torch.Tensor, labelsn: torch.Tensor, batch: dict, extra) -> tuple:
        """Box IoU."""
        return (match_predictions(predn, labelsn, self.iouv),)

    def pred_to_json(self, si: int, pred: torch.Tensor, predn: torch.Tensor, path: Path, batch: dict, extra) -> None:
        """Boxes in original pixels."""
        save_one_json(predn, self.jdict, path, self.class_map)

    def plot_batch(self, batch: dict, preds: list[torch.Tensor]) -> None:
        """Labels and predictions drawn on the batch."""
        im, paths, f = batch["img"], batch["paths"], self.save_dir / f"val_batch{self.batch_i}"
        plot_images(im, batch["targets"], paths, f"{f}_labels.jpg", self.names)
        plot_images(im, output_to_target(preds), paths, f"{f}_pred.jpg", self.names)

    def update_ap(self, stats: list[np.ndarray]) -> None:
        """ap_per_class on box matches (and its curves when plotting)."""
        a = self.args
        self.tp, self.fp, self.p, self.r, self.f1, ap, self.ap_class = ap_per_class(
            *stats, plot=a.plots, save_dir=self.save_dir, names=self.names)
        self.ap50, self.ap = ap[:, 0], ap.mean(1)  # AP@0.5, AP@0.5:0.95
        self.mp, self.mr, self.map50, self.map = self.p.mean(), self.r.mean(), self.ap50.mean(), self.ap.mean()

    def mean_results(self) -> tuple[float, ...]:
        """P, R, mAP50, mAP50-95."""
        return self.mp, self.mr, self.map50, self.map

    def class_result(self, i: int) -> tuple[float, ...]:
        """P, R, AP50, AP50-95 of the i-th class with labels."""
        return self.p[i], self.r[i], self.ap50[i], self.ap[i]

    @property
    def ap_class_index(self):
        """Class ids with labels."""
        return self.ap_class

    def get_maps(self) -> np.ndarray:
        """Per-class mAP50-95; classes without labels get the overall mAP50-95 (COCOeval's when it ran)."""
        maps = np.zeros(self.nc) + self.final_results()[3]
        for i, c in enumerate(self.ap_class):
            maps[c] = self.ap[i]
        return maps

    def val_end_args(self) -> tuple:
        """YOLOv5's: nt, tp, fp, p, r, f1, ap, ap50, ap_class, confusion_matrix."""
        return (self.nt, self.tp, self.fp, self.p, self.r, self.f1, self.ap, self.ap50, self.ap_class,
                self.confusion_matrix)


