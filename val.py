"""Validate a trained detector on a dataset: mAP, per-class metrics, speed, plots and COCO JSON.

Usage:
    $ python val.py --weights best.pt --data shapes.yaml --img 640
    $ python val.py --weights best.pt --data coco.yaml --save-json      # + COCOeval when pycocotools is installed
    $ python val.py --weights best.pt --data shapes.yaml --task speed   # timing only
    $ python val.py --weights best.pt --data shapes.yaml --task study   # mAP and speed over image sizes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision  # noqa: F401  loaded up front so its import time is not counted as NMS time
from tqdm import tqdm

FILE = Path(__file__).resolve()
ROOT = FILE.parents[0]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from models.common import DetectMultiBackend  # noqa: E402
from utils.callbacks import Callbacks  # noqa: E402
from utils.dataloaders import create_dataloader  # noqa: E402
from utils.general import (  # noqa: E402
    LOGGER,
    TQDM_BAR_FORMAT,
    Profile,
    check_dataset,
    check_img_size,
    check_yaml,
    colorstr,
    increment_path,
    non_max_suppression,
    scale_boxes,
    set_logging,
    xywh2xyxy,
    xyxy2xywh,
)
from utils.metrics import ConfusionMatrix, ap_per_class, match_predictions  # noqa: E402
from utils.plots import output_to_target, plot_images, plot_val_study  # noqa: E402
from utils.torch_utils import select_device, smart_inference_mode  # noqa: E402

STUDY_SIZES = tuple(range(256, 1536 + 128, 128))  # --task study image sizes, as YOLOv5


def coco80_to_coco91_class() -> list[int]:
    """COCO category ids (1-90, with gaps) of the 80 classes in YOLO order."""
    missing = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}  # ids unused by the 2017 detection annotations
    return [i for i in range(1, 91) if i not in missing]


def process_batch(detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor) -> torch.Tensor:
    """Correct-at-each-IoU matrix for detections [xyxy, conf, cls] against labels [cls, xyxy] (YOLOv5 name)."""
    return match_predictions(detections, labels, iouv)


def save_one_txt(predn: torch.Tensor, save_conf: bool, shape: tuple[int, int], file: Path) -> None:
    """Append detections in original-image pixels to a YOLO-format txt: cls x y w h [conf], normalised."""
    gn = torch.tensor(shape, dtype=torch.float32)[[1, 0, 1, 0]]  # whwh
    with open(file, "a") as f:
        for *xyxy, conf, cls in predn[:, :6].tolist():
            xywh = (xyxy2xywh(torch.tensor(xyxy).view(1, 4)) / gn).view(-1).tolist()
            line = (cls, *xywh, conf) if save_conf else (cls, *xywh)
            f.write(("%g " * len(line)).rstrip() % line + "\n")


def save_one_json(predn: torch.Tensor, jdict: list, path: Path, class_map: list[int]) -> None:
    """Append COCO results {image_id, category_id, bbox (x, y, w, h in original pixels), score} to jdict."""
    image_id = int(path.stem) if path.stem.isnumeric() else path.stem
    box = xyxy2xywh(predn[:, :4])
    box[:, :2] -= box[:, 2:] / 2  # centre to top-left corner
    for p, b in zip(predn.tolist(), box.tolist()):
        jdict.append({"image_id": image_id, "category_id": class_map[int(p[5])],
                      "bbox": [round(x, 3) for x in b], "score": round(p[4], 5)})


def coco_evaluate(jdict: list, pred_json: Path, data: dict, image_files: list[str], is_coco: bool):
    """Write pred_json and score it with COCOeval against the data's annotation JSON; (mAP, mAP50) or None."""
    with open(pred_json, "w") as f:
        json.dump(jdict, f)
    LOGGER.info(f"Saved {len(jdict)} COCO-format detections to {pred_json}")
    anno_json = data.get("anno_json") or Path(data.get("path") or "../coco") / "annotations/instances_val2017.json"
    anno_json = Path(anno_json)
    if not anno_json.is_absolute() and data.get("path"):
        anno_json = Path(data["path"]) / anno_json if not anno_json.exists() else anno_json
    if not anno_json.is_file():
        LOGGER.info(f"COCOeval skipped: annotation file {anno_json} not found (set 'anno_json' in the data YAML)")
        return None
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        LOGGER.info("COCOeval skipped: pycocotools is not installed (pip install pycocotools)")
        return None
    LOGGER.info(f"\nEvaluating pycocotools mAP with {anno_json}...")
    try:
        anno = COCO(str(anno_json))
        pred = anno.loadRes(str(pred_json))
        ev = COCOeval(anno, pred, "bbox")
        ids = [int(Path(x).stem) if Path(x).stem.isnumeric() else Path(x).stem for x in image_files]
        ev.params.imgIds = [i for i in ids if i in anno.imgs] if not is_coco else ids  # only the images evaluated
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    except Exception as e:  # a malformed annotation file must not discard the metrics computed above
        LOGGER.warning(f"WARNING COCOeval failed on {anno_json} and {pred_json}: {e}")
        return None
    return ev.stats[0], ev.stats[1]


def _set_precision(model: torch.nn.Module, half: bool) -> None:
    """Convert weights to FP16 or FP32 as ordinary tensors, even inside inference mode: train.py keeps using them."""
    with torch.inference_mode(False) if hasattr(torch, "inference_mode") else contextlib.nullcontext():
        model.half() if half else model.float()


def _model_nc(model) -> int | None:
    """Class count of a loaded PyTorch model: its nc attribute (YOLOv5 training sets it) or its Detect head's."""
    nc = getattr(model, "nc", None)
    if nc is None and hasattr(model, "model") and len(model.model):
        nc = getattr(model.model[-1], "nc", None)
    return int(nc) if nc is not None else None


@smart_inference_mode()
def run(
    data,
    weights=None,  # model.pt path(s)
    batch_size: int = 32,
    imgsz: int = 640,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    task: str = "val",  # train, val, test, speed or study
    device: str = "",
    workers: int = 8,
    single_cls: bool = False,
    augment: bool = False,
    verbose: bool = False,
    save_txt: bool = False,
    save_hybrid: bool = False,  # save label+prediction hybrid results to *.txt
    save_conf: bool = False,
    save_json: bool = False,
    project=ROOT / "runs/val",
    name: str = "exp",
    exist_ok: bool = False,
    half: bool | None = None,  # None: FP16 on CUDA, FP32 on CPU; True on CPU: bf16 where the CPU has it
    dnn: bool = False,
    model=None,
    dataloader=None,
    save_dir=Path(""),
    plots: bool = True,
    callbacks: Callbacks = Callbacks(),
    compute_loss=None,
):
    """Validate; returns ((P, R, mAP50, mAP50-95, box, obj, cls losses), per-class mAP50-95, (pre, inf, NMS) ms)."""
    training = model is not None
    if training:  # called by train.py with the live model and loader
        device, pt, jit = next(model.parameters()).device, True, False
        half = (half is None or half) and device.type != "cpu"  # half precision only on CUDA
        _set_precision(model, half)
    else:
        device = select_device(device, batch_size=batch_size)
        if half is None:  # the default: FP16 where it runs (CUDA), FP32 on CPU
            half = device.type != "cpu"
        save_dir = increment_path(Path(project) / name, exist_ok=exist_ok)
        (save_dir / "labels" if save_txt else save_dir).mkdir(parents=True, exist_ok=True)
        model = DetectMultiBackend(weights, device=device, dnn=dnn, data=data, fp16=half)
        stride, pt, jit = model.stride, model.pt, model.jit
        imgsz = check_img_size(imgsz, s=stride)
        half = model.fp16
        device = model.device
        if not (pt or jit):
            batch_size = 1  # exported models take one fixed-shape image
            LOGGER.info(f"Forcing --batch-size 1 square inference (1,3,{imgsz},{imgsz}) for non-PyTorch models")
        data = check_dataset(data)

    model.eval()
    cuda = device.type != "cpu"
    val_path = data.get("val")
    is_coco = isinstance(val_path, str) and val_path.endswith(f"coco{os.sep}val2017.txt")
    nc = 1 if single_cls else int(data["nc"])
    iouv = torch.linspace(0.5, 0.95, 10, device=device)  # IoU thresholds for mAP@0.5:0.95
    niou = iouv.numel()

    if not training:
        if pt and not single_cls:
            ncm = _model_nc(model.model)
            if ncm is not None and ncm != nc:
                raise ValueError(f"{weights} ({ncm} classes) trained on different --data than what you passed "
                                 f"({nc} classes). Pass --weights and --data that were trained together.")
        model.warmup(imgsz=(1 if pt else batch_size, 3, imgsz, imgsz))
        pad, rect = (0.0, False) if task == "speed" else (0.5, pt)  # rectangular batches for PyTorch only
        task = task if task in ("train", "val", "test") else "val"
        if not data.get(task):
            raise ValueError(f"The data YAML has no '{task}' split to validate on")
        dataloader = create_dataloader(data[task], imgsz, batch_size, stride, single_cls, pad=pad, rect=rect,
                                       workers=workers, prefix=colorstr(f"{task}: "), nc=nc)[0]

    seen = 0
    confusion_matrix = ConfusionMatrix(nc=nc)
    names = model.names if hasattr(model, "names") else model.module.names
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    class_map = coco80_to_coco91_class() if is_coco else list(range(1000))
    s = ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
    tp, fp, p, r, f1, mp, mr, map50, ap50, map = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    ap, ap_class = np.zeros((0, niou)), np.zeros(0, dtype=int)
    dt = Profile(device=device), Profile(device=device), Profile(device=device)  # pre-process, inference, NMS
    loss = torch.zeros(3, device=device)
    jdict, stats = [], []
    callbacks.run("on_val_start")
    pbar = tqdm(dataloader, desc=s, bar_format=TQDM_BAR_FORMAT)
    for batch_i, (im, targets, paths, shapes) in enumerate(pbar):
        callbacks.run("on_val_batch_start")
        with dt[0]:
            if cuda:
                im = im.to(device, non_blocking=True)
                targets = targets.to(device)
            im = im.half() if half else im.float()
            im /= 255
            nb, _, height, width = im.shape

        with dt[1]:
            preds, train_out = model(im) if compute_loss else (model(im, augment=augment), None)

        if compute_loss:
            loss += compute_loss(train_out, targets)[1]  # box, obj, cls

        targets[:, 2:] *= torch.tensor((width, height, width, height), device=device)  # to pixels
        lb = [targets[targets[:, 0] == i, 1:] for i in range(nb)] if save_hybrid else []
        with dt[2]:
            preds = non_max_suppression(preds, conf_thres, iou_thres, labels=lb, multi_label=True,
                                        agnostic=single_cls, max_det=max_det)

        for si, pred in enumerate(preds):
            labels = targets[targets[:, 0] == si, 1:]
            nl, npr = labels.shape[0], pred.shape[0]
            path, shape = Path(paths[si]), shapes[si][0]
            correct = torch.zeros(npr, niou, dtype=torch.bool, device=device)
            seen += 1

            if npr == 0:
                if nl:
                    stats.append((correct, *torch.zeros((2, 0), device=device), labels[:, 0]))
                    if plots:
                        confusion_matrix.process_batch(detections=None, labels=labels[:, 0])
                continue

            if single_cls:
                pred[:, 5] = 0
            predn = pred.clone()
            scale_boxes(im[si].shape[1:], predn[:, :4], shape, shapes[si][1])  # to original image pixels

            if nl:
                tbox = xywh2xyxy(labels[:, 1:5])
                scale_boxes(im[si].shape[1:], tbox, shape, shapes[si][1])
                labelsn = torch.cat((labels[:, 0:1], tbox), 1)
                correct = process_batch(predn, labelsn, iouv)
                if plots:
                    confusion_matrix.process_batch(predn, labelsn)
            stats.append((correct, pred[:, 4], pred[:, 5], labels[:, 0]))

            if save_txt:
                save_one_txt(predn, save_conf, shape, file=save_dir / "labels" / f"{path.stem}.txt")
            if save_json:
                save_one_json(predn, jdict, path, class_map)
            callbacks.run("on_val_image_end", pred, predn, path, names, im[si])

        if plots and batch_i < 3:
            plot_images(im, targets, paths, save_dir / f"val_batch{batch_i}_labels.jpg", names)
            plot_images(im, output_to_target(preds), paths, save_dir / f"val_batch{batch_i}_pred.jpg", names)
        callbacks.run("on_val_batch_end", batch_i, im, targets, paths, shapes, preds)

    # Metrics
    if stats:
        stats = [torch.cat(x, 0).cpu().numpy() for x in zip(*stats)]
    else:
        stats = [np.zeros((0, niou), dtype=bool), np.zeros(0), np.zeros(0), np.zeros(0)]
    if len(stats[3]):
        tp, fp, p, r, f1, ap, ap_class = ap_per_class(*stats, plot=plots, save_dir=save_dir, names=names)
        ap50, ap = ap[:, 0], ap.mean(1)  # AP@0.5, AP@0.5:0.95
        mp, mr, map50, map = p.mean(), r.mean(), ap50.mean(), ap.mean()
    nt = np.bincount(stats[3].astype(int), minlength=nc)  # instances per class

    pf = "%22s" + "%11i" * 2 + "%11.3g" * 4
    LOGGER.info(pf % ("all", seen, nt.sum(), mp, mr, map50, map))
    if nt.sum() == 0:
        LOGGER.warning(f"WARNING no labels found in {task} set, can not compute metrics without labels")
    if (verbose or (nc < 50 and not training)) and nc > 1 and len(ap_class):
        for i, c in enumerate(ap_class):
            LOGGER.info(pf % (names.get(int(c), str(c)), seen, nt[c], p[i], r[i], ap50[i], ap[i]))

    t = tuple(x.t / max(seen, 1) * 1e3 for x in dt)  # ms per image
    if not training:
        shape = (batch_size, 3, imgsz, imgsz)
        LOGGER.info(f"Speed: %.1fms pre-process, %.1fms inference, %.1fms NMS per image at shape {shape}" % t)

    if plots:
        confusion_matrix.plot(save_dir=save_dir, names=[names.get(i, str(i)) for i in range(nc)])
        callbacks.run("on_val_end", nt, tp, fp, p, r, f1, ap, ap50, ap_class, confusion_matrix)

    if save_json and jdict:
        w = Path(weights[0] if isinstance(weights, list) else weights).stem if weights is not None else ""
        image_files = getattr(getattr(dataloader, "dataset", None), "im_files", [])
        result = coco_evaluate(jdict, Path(save_dir) / f"{w}_predictions.json", data, image_files, is_coco)
        if result is not None:
            map, map50 = result  # COCOeval's figures replace ours, as in YOLOv5

    _set_precision(model, False)  # back to FP32 for training
    if not training:
        n = len(list(save_dir.glob("labels/*.txt")))
        s = f"\n{n} labels saved to {save_dir / 'labels'}" if save_txt else ""
        LOGGER.info(f"Results saved to {colorstr('bold', save_dir)}{s}")
    maps = np.zeros(nc) + map
    for i, c in enumerate(ap_class):
        maps[c] = ap[i]
    return (mp, mr, map50, map, *(loss.cpu() / max(len(dataloader), 1)).tolist()), maps, t


def study(opt: argparse.Namespace, sizes: tuple[int, ...] = STUDY_SIZES) -> Path:
    """--task study: validate every weight at each image size; writes study_<data>_<weights>.csv and study.png."""
    save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
    weights = opt.weights if isinstance(opt.weights, list) else [opt.weights]
    own = ("weights", "imgsz", "project", "name", "exist_ok", "task")
    kwargs = {k: v for k, v in vars(opt).items() if k not in own}
    header = "imgsz,P,R,mAP50,mAP50-95,box_loss,obj_loss,cls_loss,preprocess_ms,inference_ms,nms_ms"
    f = save_dir
    for w in weights:
        f = save_dir / f"study_{Path(opt.data).stem}_{Path(w).stem}.csv"
        rows = []
        for size in sizes:
            LOGGER.info(f"\nRunning {f} --imgsz {size}...")
            r, _, t = run(weights=w, imgsz=size, project=save_dir, name="runs", exist_ok=True, task="val",
                          **{**kwargs, "plots": False})
            rows.append([size, *r, *t])
        np.savetxt(f, np.array(rows), fmt="%10.4g", delimiter=",", header=header, comments="")
        plot_val_study(f)
        LOGGER.info(f"Study results saved to {f} and {f.with_suffix('.png')}")
    return f


def build_parser() -> argparse.ArgumentParser:
    """Command-line options, as YOLOv5 v7.0 val.py; segment/val.py adds to them."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=str, default=ROOT / "data/shapes.yaml", help="dataset YAML to score on")
    parser.add_argument("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt", help="model file(s) to score")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=640, help="square input side, in px")
    parser.add_argument("--conf-thres", type=float, default=0.001, help="lowest confidence scored (low for mAP)")
    parser.add_argument("--iou-thres", type=float, default=0.6, help="IoU above which NMS drops the weaker box")
    parser.add_argument("--max-det", type=int, default=300, help="keep at most this many detections per image")
    parser.add_argument("--task", default="val", help="train, val or test split; or speed, study")
    parser.add_argument("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    parser.add_argument("--workers", type=int, default=8, help="dataloader worker processes (at most)")
    parser.add_argument("--single-cls", action="store_true", help="score every class as one")
    parser.add_argument("--augment", action="store_true", help="test-time flips and rescales, merged")
    parser.add_argument("--verbose", action="store_true", help="print the metrics of each class")
    parser.add_argument("--save-txt", action="store_true", help="write predictions as YOLO label files")
    parser.add_argument("--save-hybrid", action="store_true", help="write labels plus predictions (inflates mAP)")
    parser.add_argument("--save-conf", action="store_true", help="add the confidence to each --save-txt line")
    parser.add_argument("--save-json", action="store_true", help="write predictions to a COCO-format JSON file")
    parser.add_argument("--project", default=ROOT / "runs/val", help="folder that holds the run folders")
    parser.add_argument("--name", default="exp", help="run folder name under --project, numbered when taken")
    parser.add_argument("--exist-ok", action="store_true", help="reuse --project/--name, no new number")
    parser.add_argument("--half", action="store_true", help="FP16 inference on CUDA; bf16 on CPUs that have it")
    parser.add_argument("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    return parser


def parse_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse val.py's options (or those of parser), resolving the data YAML and the options that imply others."""
    opt = (parser or build_parser()).parse_args(argv)
    opt.data = check_yaml(opt.data)
    opt.save_json |= opt.data.endswith("coco.yaml")
    opt.save_txt |= opt.save_hybrid
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


def main(opt: argparse.Namespace):
    """Dispatch on --task: a validation run, a speed run per weight, or an image-size study."""
    set_logging()
    LOGGER.info(colorstr("val: ") + ", ".join(f"{k}={v}" for k, v in vars(opt).items()))
    if opt.task in ("train", "val", "test"):
        if opt.conf_thres > 0.001:
            LOGGER.info(f"WARNING confidence threshold {opt.conf_thres} > 0.001 produces invalid results")
        if opt.save_hybrid:
            LOGGER.info("WARNING --save-hybrid will return high mAP from hybrid labels, not from predictions alone")
        return run(**vars(opt))
    if opt.task not in ("speed", "study"):
        raise ValueError(f"--task {opt.task} is not one of train, val, test, speed, study")
    weights = opt.weights if isinstance(opt.weights, list) else [opt.weights]
    opt.half = torch.cuda.is_available() and opt.device != "cpu"  # FP16 for fastest results
    if opt.task == "speed":
        opt.conf_thres, opt.iou_thres, opt.save_json = 0.25, 0.45, False
        results = []
        for opt.weights in weights:
            results.append(run(**vars(opt), plots=False))
        return results
    return study(opt)


if __name__ == "__main__":
    main(parse_opt())
