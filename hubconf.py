"""torch.hub entry points, offline: models from this repository's YAMLs or from local checkpoints.

Usage:
    import torch
    model = torch.hub.load('path/to/this/repo', 'custom', path='best.pt', source='local')
    model = torch.hub.load('path/to/this/repo', 'yolov5n_csppc', pretrained=False, classes=3, source='local')
    results = model('data/images/shapes_0.jpg')
    results.print()
"""

from __future__ import annotations

from pathlib import Path

dependencies = ["torch", "yaml", "cv2", "numpy"]  # torch.hub checks these are importable


def _create(name: str, pretrained: bool = True, channels: int = 3, classes: int = 80, autoshape: bool = True,
            verbose: bool = True, device=None):
    """A model by YAML name (yolov5n, yolov5n-csppc ...) or a checkpoint path, wrapped in AutoShape by default."""
    from models.backends import AutoShape, DetectMultiBackend
    from models.experimental import attempt_load, torch_safe_load
    from models.yolo import DetectionModel
    from utils.general import LOGGER, ROOT, intersect_dicts, set_logging
    from utils.torch_utils import select_device

    set_logging(verbose=verbose)  # hub users get the project's log lines (results.print()) like the CLIs
    device = select_device(device if device is not None else "")
    path = Path(name)
    if path.suffix in (".pt", ".torchscript", ".onnx") or path.name.endswith("_openvino_model"):  # a checkpoint
        if not path.exists():
            raise FileNotFoundError(f"custom model not found: {path}")
        if not autoshape:
            return attempt_load(str(path), device=device, fuse=False)
        return AutoShape(DetectMultiBackend(str(path), device=device, fuse=True), verbose=verbose)

    cfgs = sorted(ROOT.glob(f"models/**/{path.stem.replace('_', '-')}.yaml"))
    if not cfgs:
        raise FileNotFoundError(f"no model YAML named {path.stem.replace('_', '-')}.yaml under {ROOT / 'models'}")
    model = DetectionModel(cfgs[0], ch=channels, nc=classes)
    if pretrained:
        w = next((p for p in (Path.cwd() / f"{path.stem}.pt", ROOT / f"{path.stem}.pt") if p.is_file()), None)
        if w is None:
            raise FileNotFoundError(f"pretrained weights {path.stem}.pt not found in {Path.cwd()} or {ROOT}; this "
                                    f"project never downloads: place the file there, or pass pretrained=False")
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
    """A model from a local .pt, .torchscript, .onnx or OpenVINO export."""
    return _create(path, autoshape=autoshape, verbose=_verbose, device=device)


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
