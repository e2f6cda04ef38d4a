"""Serve YOLOv5 models over HTTP: v7.0's REST API with batching, limits, an optional API key and a web page at /.

Usage:
    python serve.py --weights best.pt                                  # http://127.0.0.1:8000, the page at /
    python serve.py --weights best.pt yolov5n-seg.pt best_openvino_model --port 8080
    python serve.py --weights best.pt --api-key SECRET                 # or YOLOV5_API_KEY=SECRET python serve.py ...

    curl -F image=@data/images/zidane.jpg 'http://127.0.0.1:8000/v1/object-detection/best?size=640&conf=0.25'
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from serving.app import Settings, create_app
from serving.model import ServedModel
from utils.general import LOGGER, ROOT, print_args, set_logging
from utils.torch_utils import select_device

API_KEY_ENV = "YOLOV5_API_KEY"  # read when --api-key is not given, so the key stays out of the process list


def load_models(weights: list[str | Path], device: str = "", imgsz: int | None = None, half: bool = False,
                dnn: bool = False, data: str | Path | None = None) -> list:
    """Every model file as a ServedModel, logged with its name, task and size."""
    dev = select_device(device)
    models = []
    for w in weights:
        m = ServedModel(w, dev, imgsz, half=half, dnn=dnn, data=data)
        LOGGER.info(f"Serving {w} as '{m.name}': {m.task}, {len(m.names)} classes, {m.imgsz} px")
        models.append(m)
    return models


def run(weights: str | Path | list = ROOT / "yolov5s.pt", host: str = "127.0.0.1", port: int = 8000,
        imgsz: int | None = None, device: str = "", half: bool = False, dnn: bool = False,
        data: str | Path | None = None, api_key: str | None = None, max_upload_mb: float = 10.0,
        max_pixels: int = 50_000_000, max_batch: int | None = None, max_wait_ms: float = 2.0, max_queue: int = 64,
        log_level: str = "warning") -> None:
    """Load the models and serve them until interrupted (uvicorn on host:port).

    max_batch None: 8 on CUDA, 1 (no batching) on CPU, where a batch measured slower per image than single passes
    (README, Serving: load test).
    """
    import uvicorn  # the server is needed only when serving, not to build the app in tests

    weights = weights if isinstance(weights, (list, tuple)) else [weights]
    models = load_models(weights, device, imgsz, half, dnn, data)
    if max_batch is None:
        max_batch = 1 if models[0].backend.device.type == "cpu" else 8
    settings = Settings(api_key=api_key or os.environ.get(API_KEY_ENV) or None, max_upload_mb=max_upload_mb,
                        max_pixels=max_pixels, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    app = create_app(models, settings)
    if host not in ("127.0.0.1", "localhost", "::1"):
        LOGGER.warning(f"WARNING serving on {host}: reachable from other machines"
                       f"{'' if settings.api_key else ' without an API key (--api-key)'}")
    LOGGER.info(f"Serving on http://{host}:{port} (the page at /, the API docs at /docs), batches of up to "
                f"{max_batch}")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """serve.py's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--weights", nargs="+", type=str, default=[str(ROOT / "yolov5s.pt")],
        help="model file(s): .pt, .torchscript, .onnx or an _openvino_model folder; each served under its stem")
    add("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 serves other machines too")
    add("--port", type=int, default=8000, help="port to listen on")
    add("--imgsz", "--img", "--img-size", type=int, default=None,
        help="default inference size (640 for detection, 224 for classification); requests may pass ?size=")
    add("--device", default="", help="cpu, or a CUDA device id such as 0")
    add("--half", action="store_true", help="FP16 inference on CUDA; bf16 on CPUs that have it")
    add("--dnn", action="store_true", help="run ONNX models with OpenCV DNN instead of ONNX Runtime")
    add("--data", type=str, default=None, help="dataset YAML for class names the models do not carry")
    add("--api-key", default=None, help=f"require this key in an X-API-Key header (or set ${API_KEY_ENV})")
    add("--max-upload-mb", type=float, default=10.0, help="larger uploads get 413")
    add("--max-pixels", type=int, default=50_000_000, help="images with more pixels get 413, before decoding")
    add("--max-batch", type=int, default=None,
        help="most requests run together in one forward pass (1: no batching); default 8 on CUDA, 1 on CPU")
    add("--max-wait-ms", type=float, default=2.0, help="how long a batch waits for more requests after its first")
    add("--max-queue", type=int, default=64, help="waiting requests per model beyond which new ones get 503")
    add("--log-level", default="warning", help="uvicorn's log level (info logs every request)")
    return parser.parse_args(argv)


def main(opt: argparse.Namespace) -> None:
    """Echo the flags (the key hidden), then serve."""
    print_args({k: ("***" if k == "api_key" and v else v) for k, v in vars(opt).items()})
    run(**vars(opt))


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
