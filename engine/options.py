"""The command-line options of the scripts, as YOLOv5 v7.0 names them; one parser per stage, shared by the tasks.

Every task's train, val and predict script starts from the same stage parser and changes its defaults (or adds its
own flags), so no script has to import another script to reuse its options.
"""

from __future__ import annotations

import argparse

from utils.general import ROOT, check_yaml

# YOLOv5 v7.0's cloud flag: accepted so v7.0 command lines run, reported when set, otherwise unused
INACTIVE = {
    "bucket": ("--bucket", "", "Google Cloud Storage"),
}


def parse(parser: argparse.ArgumentParser, known: bool = False, argv: list[str] | None = None) -> argparse.Namespace:
    """parser's options from argv; with known, unknown flags are ignored (run(**kwargs) starts from the defaults)."""
    return parser.parse_known_args(argv)[0] if known else parser.parse_args(argv)


def train_parser() -> argparse.ArgumentParser:
    """train.py's options, as YOLOv5 v7.0's (defaults: --data shapes.yaml, --weights ''); segment/train.py adds some."""
    parser = argparse.ArgumentParser(description="Train a YOLOv5 model")
    add = parser.add_argument
    add("--weights", type=str, default="", help="checkpoint to start from; '' builds a new model from --cfg")
    add("--cfg", type=str, default="", help="model YAML, a path or a name under models/")
    add("--data", type=str, default="shapes.yaml", help="dataset YAML, a path or a name under data/")
    add("--hyp", type=str, default=str(ROOT / "data/hyps/hyp.scratch-low.yaml"),
        help="YAML of hyperparameters (lr0, loss gains, augmentation)")
    add("--epochs", type=int, default=100, help="number of epochs to train")
    add("--batch-size", type=int, default=16, help="images per step over all devices (-1 falls back to 16)")
    add("--imgsz", "--img", "--img-size", type=int, default=640, help="square side of train and val images, in px")
    add("--rect", action="store_true", help="train on aspect-preserving rectangular batches")
    add("--resume", nargs="?", const=True, default=False, help="continue the latest interrupted run, or this last.pt")
    add("--nosave", action="store_true", help="write checkpoints at the end only")
    add("--noval", action="store_true", help="validate after the last epoch only")
    add("--noautoanchor", action="store_true", help="keep the model's anchors: skip the anchor fit check")
    add("--noplots", action="store_true", help="write no images or plots to the run folder")
    add("--evolve", type=int, nargs="?", const=300, help="search hyperparameters by mutation, N generations (300)")
    add("--bucket", type=str, default="", help="Google Cloud Storage bucket of v7.0 evolve runs (unused here)")
    add("--cache", type=str, nargs="?", const="ram", help="keep decoded images in ram or on disk")
    add("--image-weights", action="store_true", help="draw images holding poorly detected classes more often")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--multi-scale", action="store_true", help="give each batch a random size within 50%% of --imgsz")
    add("--single-cls", action="store_true", help="merge every class into one")
    add("--optimizer", type=str, choices=["SGD", "Adam", "AdamW"], default="SGD", help="optimizer to train with")
    add("--sync-bn", action="store_true", help="share BatchNorm statistics across DDP processes")
    add("--workers", type=int, default=8, help="dataloader worker processes per rank (at most)")
    add("--project", default=str(ROOT / "runs/train"), help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--quad", action="store_true", help="collate four images into each batch item (quad loader)")
    add("--cos-lr", action="store_true", help="cosine learning-rate decay instead of linear")
    add("--label-smoothing", type=float, default=0.0, help="epsilon of label smoothing in the class loss")
    add("--patience", type=int, default=100, help="stop after this many epochs without a better fitness")
    add("--freeze", nargs="+", type=int, default=[0], help="freeze the first N layers (10: backbone), or these indices")
    add("--save-period", type=int, default=-1, help="also keep a checkpoint every N epochs (off below 1)")
    add("--seed", type=int, default=0, help="random seed of the run")
    add("--local_rank", "--local-rank", type=int, default=-1, help="set by torchrun for DDP; leave it alone")
    # Weights & Biases options of v7.0 (utils/loggers/wandb_logger.py)
    add("--entity", default=None, help="W&B team or user the run is logged under")
    add("--upload_dataset", nargs="?", const=True, default=False,
        help="log the train and val data as W&B dataset artifacts ('val': only val)")
    add("--bbox_interval", type=int, default=-1,
        help="log val images with predicted boxes to W&B every N epochs (-1: epochs/10, at least 1)")
    add("--artifact_alias", type=str, default="latest", help="alias given to the W&B dataset artifacts")
    return parser


def segment_train_parser() -> argparse.ArgumentParser:
    """train.py's options, a segmentation model and dataset by default, plus the mask options of YOLOv5 v7.0."""
    parser = train_parser()
    parser.set_defaults(data="shapes-seg.yaml", project=str(ROOT / "runs/train-seg"))
    parser.add_argument("--mask-ratio", type=int, default=4, help="train on masks at 1/mask-ratio of the image size")
    parser.add_argument("--no-overlap", action="store_true",
                        help="one mask per instance instead of one overlap map per image (more memory)")
    return parser


def classify_train_parser() -> argparse.ArgumentParser:
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
    return parser


def val_parser() -> argparse.ArgumentParser:
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


def parse_val_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse val.py's options (or those of parser), resolving the data YAML and the options that imply others."""
    opt = (parser or val_parser()).parse_args(argv)
    opt.data = check_yaml(opt.data)
    opt.save_json |= opt.data.endswith("coco.yaml")
    opt.save_txt |= opt.save_hybrid
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt


def classify_val_parser() -> argparse.ArgumentParser:
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
    return parser


def predict_parser(description: str = "Run YOLOv5 detection on images, videos, folders, globs, .txt lists, webcams "
                                      "and streams.", skip: tuple[str, ...] = (), helps: dict[str, str] | None = None
                   ) -> argparse.ArgumentParser:
    """Command-line flags as YOLOv5 v7.0's detect.py names them; segment/predict.py and track.py add to them.

    skip: flags left out (a script that has no use for them); helps: another help text for a flag, by its name.
    """
    parser, helps = argparse.ArgumentParser(description=description), helps or {}

    def add(*names: str, **kwargs) -> None:
        if names[0] not in skip:
            parser.add_argument(*names, **{**kwargs, "help": helps.get(names[0], kwargs.get("help"))})

    add("--weights", nargs="+", type=str, default=ROOT / "yolov5s.pt",
        help="model file(s): .pt, .torchscript, .onnx or an _openvino_model folder")
    add("--source", type=str, default=ROOT / "data/images",
        help="image, video, folder, glob, .txt list or stream URL; 0 is the webcam")
    add("--data", type=str, default=None, help="dataset YAML for class names the model does not carry (optional)")
    add("--imgsz", "--img", "--img-size", nargs="+", type=int, default=[640], help="input size: one side, or h w")
    add("--conf-thres", type=float, default=0.25, help="lowest confidence a kept detection may have")
    add("--iou-thres", type=float, default=0.45, help="overlap (IoU) above which NMS drops the weaker box")
    add("--max-det", type=int, default=1000, help="keep at most this many detections per image")
    add("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    add("--view-img", action="store_true", help="show each annotated frame in a window")
    add("--save-txt", action="store_true", help="write detections as YOLO label files under labels/")
    add("--save-conf", action="store_true", help="add the confidence to each --save-txt line")
    add("--save-crop", action="store_true", help="save each detected box as an image under crops/<class>/")
    add("--nosave", action="store_true", help="write no annotated images or videos")
    add("--classes", nargs="+", type=int, help="keep only these class indices, e.g. --classes 0 2")
    add("--agnostic-nms", action="store_true", help="suppress overlaps across classes, not within each class")
    add("--augment", action="store_true", help="test-time augmentation: merge flipped and rescaled passes")
    add("--visualize", action="store_true", help="save the feature maps of every layer")
    add("--update", action="store_true", help="afterwards, drop the optimizer state from the .pt weights file(s)")
    add("--project", default=ROOT / "runs/detect", help="folder that holds the run folders")
    add("--name", default="exp", help="run folder name under --project, numbered when taken")
    add("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new folder")
    add("--line-thickness", default=3, type=int, help="box thickness at 640 px (scales with image)")
    add("--hide-labels", default=False, action="store_true", help="draw boxes without class names")
    add("--hide-conf", default=False, action="store_true", help="draw class names without confidences")
    add("--half", action="store_true", help="FP16 inference on CUDA; bf16 on CPUs that have it")
    add("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    add("--vid-stride", type=int, default=1, help="read every Nth video frame")
    add("--cam", choices=["eigen", "gradcam"], help="also save a <name>_cam.jpg class-activation heatmap per image")
    add("--cam-layer", type=int, help="layer index whose activations --cam maps (default: the last before Detect)")
    return parser


def parse_predict_opt(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None
                      ) -> argparse.Namespace:
    """Parse detect.py's flags (or those of parser); a single --weights becomes a plain string."""
    opt = (parser or predict_parser()).parse_args(argv)
    if isinstance(opt.weights, list) and len(opt.weights) == 1:
        opt.weights = opt.weights[0]
    return opt
