"""torch.hub entry points, offline: models from this repository's YAMLs or from local checkpoints.

Usage:
    import torch
    model = torch.hub.load('path/to/this/repo', 'custom', path='best.pt', source='local')
    model = torch.hub.load('path/to/this/repo', 'yolov5n_csppc', pretrained=False, classes=3, source='local')
    results = model('data/images/shapes_0.jpg')
    results.print()
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

dependencies = ["torch", "yaml", "cv2", "numpy"]  # torch.hub checks these are importable


@contextmanager
def _loading_quietly(quiet: bool):
    """Raise the project logger to WARNING while a model loads (hub's _verbose=False), then restore it.

    utils.general configures the logger on import; the level a user set afterwards is kept, never reset here.
    """
    from utils.general import LOGGER

    level = LOGGER.level
    if quiet:
        LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def _create(name: str, pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            verbose: bool = True, device=None):
    """A model by YAML name (yolov5n, yolov5n-csppc ...), wrapped in AutoShape by default."""
    from models.backends import AutoShape
    from models.experimental import torch_safe_load
    from models.yolo import DetectionModel
    from utils.general import LOGGER, ROOT, intersect_dicts
    from utils.torch_utils import select_device

    with _loading_quietly(not verbose):
        device = select_device(device if device is not None else "")
        path = Path(name)
        cfgs = sorted(ROOT.glob(f"models/**/{path.stem.replace('_', '-')}.yaml"))
        if not cfgs:
            raise FileNotFoundError(f"no model YAML named {path.stem.replace('_', '-')}.yaml under {ROOT / 'models'}")
        model = DetectionModel(cfgs[0], ch=channels, nc=classes)
        if pretrained:
            w = next((p for p in (Path.cwd() / f"{path.stem}.pt", ROOT / f"{path.stem}.pt") if p.is_file()), None)
            if w is None:
                raise FileNotFoundError(f"pretrained weights {path.stem}.pt not found in {Path.cwd()} or {ROOT}; "
                                        f"this project never downloads: place the file there, or pass pretrained=False")
            ckpt = torch_safe_load(w)
            src = (ckpt.get("ema") or ckpt["model"]).float()
            csd = intersect_dicts(src.state_dict(), model.state_dict(), exclude=["anchors"])
            model.load_state_dict(csd, strict=False)
            LOGGER.info(f"Transferred {len(csd)}/{len(model.state_dict())} items from {w}")
            names = getattr(src, "names", None)
            if names is not None and len(names) == classes:
                model.names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else names
        model = model.to(device).eval()
        return AutoShape(model, verbose=verbose) if autoshape else model


def custom(path: str = "path/to/model.pt", autoshape: bool = True, _verbose: bool = True, device=None):
    """A model from a local .pt, .torchscript, .onnx or OpenVINO export; a path without a suffix means its .pt."""
    from models.backends import AutoShape, DetectMultiBackend
    from models.experimental import attempt_load
    from utils.torch_utils import select_device

    p = Path(path)
    if not p.suffix and not p.is_dir():  # runs/train/exp/weights/best -> best.pt, as YOLOv5 accepts it
        p = p.with_suffix(".pt")
    if not p.exists():
        given = f" (from path='{path}')" if str(p) != str(path) else ""
        raise FileNotFoundError(f"custom model not found: {p}{given}")
    with _loading_quietly(not _verbose):
        device = select_device(device if device is not None else "")
        if not autoshape:
            return attempt_load(str(p), device=device, fuse=False)
        return AutoShape(DetectMultiBackend(str(p), device=device, fuse=True), verbose=_verbose)


def yolov5n(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            _verbose: bool = True, device=None):
    """YOLOv5-nano."""
    return _create("yolov5n", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5s(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            _verbose: bool = True, device=None):
    """YOLOv5-small."""
    return _create("yolov5s", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5m(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            _verbose: bool = True, device=None):
    """YOLOv5-medium."""
    return _create("yolov5m", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5l(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            _verbose: bool = True, device=None):
    """YOLOv5-large."""
    return _create("yolov5l", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5x(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            _verbose: bool = True, device=None):
    """YOLOv5-xlarge."""
    return _create("yolov5x", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5n_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                  _verbose: bool = True, device=None):
    """YOLOv5-nano with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5n_csppc", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5s_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                  _verbose: bool = True, device=None):
    """YOLOv5-small with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5s_csppc", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5n6(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
             _verbose: bool = True, device=None):
    """YOLOv5-nano-P6: four output levels (P3-P6), for 1280 images."""
    return _create("yolov5n6", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5s6(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
             _verbose: bool = True, device=None):
    """YOLOv5-small-P6: four output levels (P3-P6), for 1280 images."""
    return _create("yolov5s6", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5m6(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
             _verbose: bool = True, device=None):
    """YOLOv5-medium-P6: four output levels (P3-P6), for 1280 images."""
    return _create("yolov5m6", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5l6(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
             _verbose: bool = True, device=None):
    """YOLOv5-large-P6: four output levels (P3-P6), for 1280 images."""
    return _create("yolov5l6", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5x6(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
             _verbose: bool = True, device=None):
    """YOLOv5-xlarge-P6: four output levels (P3-P6), for 1280 images."""
    return _create("yolov5x6", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5m_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                  _verbose: bool = True, device=None):
    """YOLOv5-medium with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5m_csppc", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5l_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                  _verbose: bool = True, device=None):
    """YOLOv5-large with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5l_csppc", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5x_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                  _verbose: bool = True, device=None):
    """YOLOv5-xlarge with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5x_csppc", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5n6_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                   _verbose: bool = True, device=None):
    """YOLOv5-nano-P6 with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5n6_csppc", pretrained, channels, classes, autoshape, _verbose, device)


def yolov5s6_csppc(pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
                   _verbose: bool = True, device=None):
    """YOLOv5-small-P6 with CSPPC (partial-convolution CSP) blocks."""
    return _create("yolov5s6_csppc", pretrained, channels, classes, autoshape, _verbose, device)
