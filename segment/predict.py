"""Run YOLOv5 instance segmentation on images, videos, folders, globs, .txt lists, webcams and streams.

Usage:
    python segment/predict.py --weights yolov5n-seg.pt --source data/images          # masks and boxes drawn
    python segment/predict.py --weights best.pt --source img.jpg --save-txt          # + polygons in labels/*.txt
    python segment/predict.py --weights best.onnx --source vid.mp4 --retina-masks    # full-resolution masks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FILE = Path(__file__).resolve()
ROOT = FILE.parents[1]
if str(ROOT) not in sys.path[:1]:  # first: the repository's packages, not this folder's modules
    sys.path.insert(0, str(ROOT))

from engine.options import parse_predict_opt, predict_parser  # noqa: E402
from engine.predictor import predict  # noqa: E402
from engine.tasks.segment_predict import SegmentationPredictor  # noqa: E402
from utils.general import print_args, set_logging  # noqa: E402
from utils.torch_utils import smart_inference_mode  # noqa: E402


@smart_inference_mode()
def run(weights: str | Path = ROOT / "yolov5s-seg.pt", source: str | Path = ROOT / "data/images",
        data: str | Path | None = None, imgsz: tuple[int, int] = (640, 640), conf_thres: float = 0.25,
        iou_thres: float = 0.45, max_det: int = 1000, device: str = "", view_img: bool = False,
        save_txt: bool = False, save_conf: bool = False, save_crop: bool = False, nosave: bool = False,
        classes: list[int] | None = None, agnostic_nms: bool = False, augment: bool = False,
        visualize: bool = False, project: str | Path = ROOT / "runs/predict-seg", name: str = "exp",
        exist_ok: bool = False, line_thickness: int = 3, hide_labels: bool = False, hide_conf: bool = False,
        half: bool = False, dnn: bool = False, vid_stride: int = 1, retina_masks: bool = False, update: bool = False,
        cam: str | None = None, cam_layer: int | None = None, prefetch: bool = True) -> Path:
    """Segment objects in source with the model in weights; returns the run folder (prefetch: as in detect.run)."""
    return predict(SegmentationPredictor, locals())


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """detect.py's flags with a segmentation model and run folder by default, plus --retina-masks."""
    parser = predict_parser(__doc__.split("\n")[0])
    parser.set_defaults(weights=ROOT / "yolov5s-seg.pt", project=ROOT / "runs/predict-seg")
    parser.add_argument("--retina-masks", action="store_true", help="compute masks at the original image resolution")
    return parse_predict_opt(argv, parser)


def main(opt: argparse.Namespace) -> Path:
    """Echo the flags, then run segmentation with them."""
    print_args(vars(opt))  # names this script in its line
    return run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
