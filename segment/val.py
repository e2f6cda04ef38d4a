"""Validate a trained segmentation model: box and mask P, R, mAP per class, speed, plots and COCO JSON.

Usage:
    $ python segment/val.py --weights best.pt --data shapes-seg.yaml --img 320
    $ python segment/val.py --weights best.pt --data shapes-seg.yaml --task speed   # timing only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: `import val` / `import train` must find the root scripts, not this folder's
    sys.path.insert(0, str(ROOT))

import val as detect_val  # noqa: E402
from models.common import DetectMultiBackend  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.general import (  # noqa: E402
    LOGGER,
    TQDM_BAR_FORMAT,
    Profile,
    check_dataset,
    check_img_size,
    colorstr,
    increment_path,
    non_max_suppression,
    print_args,
    scale_boxes,
    set_logging,
    xywh2xyxy,
)
from utils.metrics import ConfusionMatrix, match_predictions  # noqa: E402
from utils.plots import output_to_target  # noqa: E402
from utils.segment.dataloaders import create_dataloader  # noqa: E402
from utils.segment.general import mask_iou, process_mask, process_mask_native, scale_image  # noqa: E402
from utils.segment.metrics import Metrics, ap_per_class_box_and_mask  # noqa: E402
from utils.segment.plots import plot_images_and_masks  # noqa: E402
from utils.torch_utils import select_device, smart_inference_mode  # noqa: E402

HEADER = ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)", "Mask(P", "R", "mAP50", "mAP50-95)")


def gt_masks_for(masks: torch.Tensor, n_labels: int, overlap: bool) -> torch.Tensor:
    """One binary mask per label from an image's masks: (n, h, w) as they are, or decoded from an overlap map."""
    if not overlap:
        return masks.float()
    index = torch.arange(1, n_labels + 1, device=masks.device).view(-1, 1, 1)
    return (masks.repeat(n_labels, 1, 1) == index).float()


def match_masks(detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor, pred_masks: torch.Tensor,
                gt_masks: torch.Tensor) -> torch.Tensor:
    """Correct-at-each-IoU matrix by mask IoU; ground-truth masks are resized to the predicted masks' size first."""
    if gt_masks.shape[1:] != pred_masks.shape[1:]:
        gt_masks = F.interpolate(gt_masks[None], pred_masks.shape[1:], mode="bilinear", align_corners=False)[0]
        gt_masks = gt_masks.gt_(0.5)
    iou = mask_iou(gt_masks.view(gt_masks.shape[0], -1), pred_masks.view(pred_masks.shape[0], -1).float())
    return match_predictions(detections, labels, iouv, iou=iou)


def save_one_json(predn: torch.Tensor, jdict: list, path: Path, class_map: list[int], masks: np.ndarray) -> None:
    """Append COCO-style results with run-length-encoded masks (masks: (h, w, n) at the original image size)."""
    from pycocotools.mask import encode  # requirements.txt installs it; only --save-json needs it

    n = len(jdict)
    detect_val.save_one_json(predn, jdict, path, class_map)  # the box entries, then each one's mask
    for i, entry in enumerate(jdict[n:]):
        rle = encode(np.asarray(masks[:, :, i : i + 1] > 0.5, order="F", dtype="uint8"))[0]
        rle["counts"] = rle["counts"].decode("utf-8")
        entry["segmentation"] = rle


@smart_inference_mode()
def run(
    data,
    weights=None,  # model.pt path(s)
    batch_size: int = 32,
    imgsz: int = 640,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    task: str = "val",  # train, val, test or speed
    device: str = "",
    workers: int = 8,
    single_cls: bool = False,
    augment: bool = False,
    verbose: bool = False,
    save_txt: bool = False,
    save_hybrid: bool = False,
    save_conf: bool = False,
    save_json: bool = False,
    project=ROOT / "runs/val-seg",
    name: str = "exp",
    exist_ok: bool = False,
    half: bool = True,
    dnn: bool = False,
    model=None,
    dataloader=None,
    save_dir=Path(""),
    plots: bool = True,
    overlap: bool = False,
    mask_downsample_ratio: int = 1,
    compute_loss=None,
    callbacks: Callbacks = Callbacks(),
    retina_masks: bool = False,
):
    """Validate; returns ((box P, R, mAP50, mAP50-95, mask P, R, mAP50, mAP50-95, losses), per-class maps, ms)."""
    training = model is not None
    if training:  # called by segment/train.py with the live model and loader
        device, pt, jit = next(model.parameters()).device, True, False
        half &= device.type != "cpu"
        detect_val._set_precision(model, half)
        nm = model.model[-1].nm
    else:
        device = select_device(device, batch_size=batch_size)
        save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
        (save_dir / "labels" if save_txt else save_dir).mkdir(parents=True, exist_ok=True)
        model = DetectMultiBackend(weights, device=device, dnn=dnn, data=data, fp16=half and device.type != "cpu")
        stride, pt, jit = model.stride, model.pt, model.jit
        imgsz = check_img_size(imgsz, s=stride)
        half, device = model.fp16, model.device
        nm = model.model.model[-1].nm if pt else 32
        if not (pt or jit):
            batch_size = 1
            LOGGER.info(f"Forcing --batch-size 1 square inference (1,3,{imgsz},{imgsz}) for non-PyTorch models")
        data = check_dataset(data)

    if augment:
        raise ValueError("--augment (test-time augmentation) is not supported for segmentation models")
    model.eval()
    cuda = device.type != "cpu"
    nc = 1 if single_cls else int(data["nc"])
    iouv = torch.linspace(0.5, 0.95, 10, device=device)
    niou = iouv.numel()

    if not training:
        model.warmup(imgsz=(1 if pt else batch_size, 3, imgsz, imgsz))
        pad, rect = (0.0, False) if task == "speed" else (0.5, pt)
        task = task if task in ("train", "val", "test") else "val"
        if not data.get(task):
            raise ValueError(f"The data YAML has no '{task}' split to validate on")
        dataloader = create_dataloader(data[task], imgsz, batch_size, stride, single_cls, pad=pad, rect=rect,
                                       workers=workers, prefix=colorstr(f"{task}: "), nc=nc,
                                       overlap_mask=overlap, mask_downsample_ratio=mask_downsample_ratio)[0]

    seen = 0
    confusion_matrix = ConfusionMatrix(nc=nc)
    names = model.names if hasattr(model, "names") else model.module.names
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    class_map = list(range(1000))
    s = ("%22s" + "%11s" * 10) % HEADER
    dt = Profile(device=device), Profile(device=device), Profile(device=device)
    metrics = Metrics()
    loss = torch.zeros(4, device=device)
    jdict, stats = [], []
    callbacks.run("on_val_start")
    pbar = tqdm(dataloader, desc=s, bar_format=TQDM_BAR_FORMAT)
    for batch_i, (im, targets, paths, shapes, masks) in enumerate(pbar):
        with dt[0]:
            if cuda:
                im, targets, masks = im.to(device, non_blocking=True), targets.to(device), masks.to(device)
            masks = masks.float()
            im = im.half() if half else im.float()
            im /= 255
            nb, _, height, width = im.shape

        with dt[1]:
            out = model(im)
            preds, protos = out[0], out[1]
            train_out = out[2] if compute_loss else None

        if compute_loss:
            loss += compute_loss((train_out, protos), targets, masks)[1]  # box, seg, obj, cls

        targets[:, 2:] *= torch.tensor((width, height, width, height), device=device)
        lb = [targets[targets[:, 0] == i, 1:] for i in range(nb)] if save_hybrid else []
        with dt[2]:
            preds = non_max_suppression(preds, conf_thres, iou_thres, labels=lb, multi_label=True,
                                        agnostic=single_cls, max_det=max_det, nm=nm)

        plot_masks = []
        for si, pred in enumerate(preds):
            labels = targets[targets[:, 0] == si, 1:]
            nl, npr = labels.shape[0], pred.shape[0]
            path, shape = Path(paths[si]), shapes[si][0]
            correct_masks = torch.zeros(npr, niou, dtype=torch.bool, device=device)
            correct_bboxes = torch.zeros(npr, niou, dtype=torch.bool, device=device)
            seen += 1

            if npr == 0:
                if nl:
                    stats.append((correct_masks, correct_bboxes, *torch.zeros((2, 0), device=device), labels[:, 0]))
                    if plots:
                        confusion_matrix.process_batch(detections=None, labels=labels[:, 0])
                continue

            gt_masks = gt_masks_for(masks[[si]] if overlap else masks[targets[:, 0] == si], nl, overlap)
            proto = protos[si]
            pred_masks = process_mask(proto, pred[:, 6:], pred[:, :4], shape=im[si].shape[1:])
            if single_cls:
                pred[:, 5] = 0
            predn = pred.clone()
            scale_boxes(im[si].shape[1:], predn[:, :4], shape, shapes[si][1])

            if nl:
                tbox = xywh2xyxy(labels[:, 1:5])
                scale_boxes(im[si].shape[1:], tbox, shape, shapes[si][1])
                labelsn = torch.cat((labels[:, 0:1], tbox), 1)
                correct_bboxes = match_predictions(predn, labelsn, iouv)
                correct_masks = match_masks(predn, labelsn, iouv, pred_masks, gt_masks)
                if plots:
                    confusion_matrix.process_batch(predn, labelsn)
            stats.append((correct_masks, correct_bboxes, pred[:, 4], pred[:, 5], labels[:, 0]))

            if plots and batch_i < 3:
                plot_masks.append(pred_masks[:15].cpu())
            if save_txt:
                detect_val.save_one_txt(predn, save_conf, shape, file=save_dir / "labels" / f"{path.stem}.txt")
            if save_json:
                if retina_masks:
                    full = process_mask_native(proto, pred[:, 6:], predn[:, :4], shape)
                    full = full.permute(1, 2, 0).cpu().numpy()
                else:
                    up = F.interpolate(pred_masks[None].float(), im[si].shape[1:], mode="bilinear",
                                       align_corners=False)[0].gt_(0.5)
                    full = scale_image(im[si].shape[1:], up.permute(1, 2, 0).cpu().numpy(), shape, shapes[si][1])
                save_one_json(predn, jdict, path, class_map, full)

        if plots and batch_i < 3:
            plot_images_and_masks(im, targets, masks, paths, save_dir / f"val_batch{batch_i}_labels.jpg", names,
                                  overlap=overlap)
            pred_masks = torch.cat(plot_masks, 0) if plot_masks else torch.zeros(0, *protos.shape[2:])
            plot_images_and_masks(im, output_to_target(preds, max_det=15), pred_masks, paths,
                                  save_dir / f"val_batch{batch_i}_pred.jpg", names)

    # Metrics
    if stats:
        stats = [torch.cat(x, 0).cpu().numpy() for x in zip(*stats)]
    else:
        stats = [np.zeros((0, niou), dtype=bool), np.zeros((0, niou), dtype=bool), np.zeros(0), np.zeros(0),
                 np.zeros(0)]
    if len(stats[4]):
        metrics.update(ap_per_class_box_and_mask(*stats, plot=plots, save_dir=save_dir, names=names))
    nt = np.bincount(stats[4].astype(int), minlength=nc)

    pf = "%22s" + "%11i" * 2 + "%11.3g" * 8
    LOGGER.info(pf % ("all", seen, nt.sum(), *metrics.mean_results()))
    if nt.sum() == 0:
        LOGGER.warning(f"WARNING no labels found in {task} set, can not compute metrics without labels")
    if (verbose or (nc < 50 and not training)) and nc > 1 and len(metrics.ap_class_index):
        for i, c in enumerate(metrics.ap_class_index):
            LOGGER.info(pf % (names.get(int(c), str(c)), seen, nt[c], *metrics.class_result(i)))

    t = tuple(x.t / max(seen, 1) * 1e3 for x in dt)
    if not training:
        shape = (batch_size, 3, imgsz, imgsz)
        LOGGER.info(f"Speed: %.1fms pre-process, %.1fms inference, %.1fms NMS per image at shape {shape}" % t)
    if plots:
        confusion_matrix.plot(save_dir=save_dir, names=[names.get(i, str(i)) for i in range(nc)])

    if save_json and jdict:
        w = Path(weights[0] if isinstance(weights, list) else weights).stem if weights is not None else ""
        pred_json = Path(save_dir) / f"{w}_predictions.json"
        with open(pred_json, "w") as f:
            json.dump(jdict, f)
        LOGGER.info(f"Saved {len(jdict)} predictions with masks to {pred_json}")

    detect_val._set_precision(model, False)
    if not training:
        n = len(list(save_dir.glob("labels/*.txt")))
        s = f"\n{n} labels saved to {save_dir / 'labels'}" if save_txt else ""
        LOGGER.info(f"Results saved to {colorstr('bold', save_dir)}{s}")
    results = (*metrics.mean_results(), *(loss.cpu() / max(len(dataloader), 1)).tolist())
    return results, metrics.get_maps(nc), t


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """val.py's options with a segmentation dataset and run folder by default, plus --retina-masks."""
    parser = detect_val.build_parser()
    parser.set_defaults(data=ROOT / "data/shapes-seg.yaml", weights=ROOT / "yolov5s-seg.pt",
                        project=ROOT / "runs/val-seg")
    parser.add_argument("--retina-masks", action="store_true", help="masks at the original image resolution")
    return detect_val.parse_opt(argv, parser)


def main(opt: argparse.Namespace):
    """A validation run, or timing (--task speed) per weight."""
    set_logging()
    print_args(vars(opt))
    if opt.task in ("train", "val", "test"):
        if opt.conf_thres > 0.001:
            LOGGER.info(f"WARNING confidence threshold {opt.conf_thres} > 0.001 produces invalid results")
        return run(**vars(opt))
    if opt.task != "speed":
        raise ValueError(f"--task {opt.task} is not one of train, val, test, speed (study is detection only)")
    opt.half = torch.cuda.is_available() and opt.device != "cpu"
    opt.conf_thres, opt.iou_thres, opt.save_json = 0.25, 0.45, False
    weights = opt.weights if isinstance(opt.weights, list) else [opt.weights]
    return [run(**{**vars(opt), "weights": w}, plots=False) for w in weights]


if __name__ == "__main__":
    main(parse_opt())
