"""Track objects with a YOLOv5 detector and ByteTrack or BoT-SORT over videos, folders of frames, webcams and streams.

Usage:
    python track.py --weights best.pt --source video.mp4 --tracker bytetrack.yaml       # annotated video with ids
    python track.py --weights best.pt --source video.mp4 --tracker botsort.yaml --trails 30
    python track.py --weights best.pt --source frames/ --save-txt                       # + labels/frames.txt (MOT)
    python track.py --weights best.pt --source seq.mp4 --eval seq/gt/gt.txt             # HOTA, MOTA, IDF1 ...
    python track.py --weights yolov5n-seg.pt --source video.mp4                         # masks follow their tracks
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.options import parse_predict_opt, predict_parser
from models.backends import DetectMultiBackend
from trackers.predictor import DetectionTracker, SegmentationTracker, TrackOptions
from utils.general import ROOT, print_args, set_logging
from utils.torch_utils import select_device, smart_inference_mode

# detect.py's flags that tracking has no use for: a track is drawn and saved whole, one pass per frame
UNUSED_PREDICT_FLAGS = ("--save-conf", "--augment", "--visualize", "--update", "--cam", "--cam-layer")
HELPS = {"--weights": "model file: .pt, .torchscript, .onnx or OpenVINO",
         "--source": "video, folder of frames, glob, stream URL; 0: webcam",
         "--conf-thres": "lowest confidence of a box handed to the tracker",
         "--save-txt": "write labels/<source stem>.txt in MOTChallenge format",
         "--save-crop": "save each tracked box as an image under crops/<class>/",
         "--classes": "track only these class indices, e.g. --classes 0 2",
         "--hide-labels": "draw boxes without ids, class names and confidences",
         "--hide-conf": "draw ids and class names without confidences"}


def is_segmentation(model: DetectMultiBackend) -> bool:
    """Whether the model predicts masks: its head's mask coefficients (.pt) or a second output (ONNX)."""
    if model.pt:
        return getattr(model.model.model[-1], "nm", 0) > 0
    return len(getattr(model, "output_names", ())) > 1


@smart_inference_mode()
def run(weights: str | Path = ROOT / "yolov5s.pt", source: str | Path = ROOT / "data/images",
        tracker: str | Path = "bytetrack.yaml", data: str | Path | None = None, imgsz: tuple[int, int] = (640, 640),
        conf_thres: float = 0.1, iou_thres: float = 0.45, max_det: int = 1000, device: str = "",
        view_img: bool = False, save_txt: bool = False, save_crop: bool = False, nosave: bool = False,
        classes: list[int] | None = None, agnostic_nms: bool = False, project: str | Path = ROOT / "runs/track",
        name: str = "exp", exist_ok: bool = False, line_thickness: int = 3, hide_labels: bool = False,
        hide_conf: bool = False, half: bool = False, dnn: bool = False, vid_stride: int = 1,
        retina_masks: bool = False, trails: int = 0, eval: str | Path | None = None) -> Path:
    """Track objects of source with the model in weights and the tracker YAML; returns the run folder.

    conf_thres is lower than detect.py's (0.1, ByteTrack's track_low_thresh): the second association stage matches
    low-confidence boxes to the tracks left over.
    """
    model = DetectMultiBackend(weights, device=select_device(device), dnn=dnn, data=data, fp16=half)
    task = SegmentationTracker if is_segmentation(model) else DetectionTracker
    opt = TrackOptions.pick(locals())
    opt.prefetch = False  # frames are tracked in order on this thread
    return task(model, opt)()


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse track.py's flags: detect.py's that apply to tracking, and the tracker's."""
    parser = predict_parser(__doc__.split("\n")[0], skip=UNUSED_PREDICT_FLAGS, helps=HELPS)
    parser.set_defaults(conf_thres=0.1, project=ROOT / "runs/track")
    add = parser.add_argument
    add("--tracker", type=str, default="bytetrack.yaml", help="tracker YAML: bytetrack.yaml, botsort.yaml or a path")
    add("--retina-masks", action="store_true", help="segmentation models: masks at the original resolution")
    add("--trails", type=int, default=0, help="draw each track's path over its last N frames")
    add("--eval", type=str, default=None, help="MOTChallenge gt.txt: print HOTA, MOTA, IDF1, IDSW, FP and FN")
    opt = parse_predict_opt(argv, parser)
    if isinstance(opt.weights, list):
        parser.error(f"--weights: track.py follows objects with one model, got {len(opt.weights)}")
    return opt


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then track with them."""
    print_args(vars(opt))
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
