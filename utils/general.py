"""General helpers: paths and files, YAML lookup, dataset YAMLs; v7.0's logging and box names (utils/boxes.py)."""

from __future__ import annotations

import argparse
import contextlib
import glob
import inspect
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from utils import (  # noqa: F401  (the leaf module's names, re-exported where YOLOv5 v7.0 code imports them)
    LOCAL_RANK,
    LOGGER,
    LOGGING_NAME,
    NUM_THREADS,
    RANK,
    ROOT,
    TQDM_BAR_FORMAT,
    WORLD_SIZE,
    set_logging,
)
from utils.boxes import (  # noqa: F401  (v7.0's names: YOLOv5 code imports them from utils.general)
    clip_boxes,
    non_max_suppression,
    resample_segments,
    scale_boxes,
    segment2box,
    segments2boxes,
    xyn2xy,
    xywh2xyxy,
    xywhn2xyxy,
    xyxy2xywh,
    xyxy2xywhn,
)

FILE = Path(__file__).resolve()


def colorstr(*args: str) -> str:
    """Wrap a string in ANSI colour codes: colorstr('blue', 'bold', 'text'); the last argument is the text."""
    *styles, text = args if len(args) > 1 else ("blue", "bold", args[0])
    codes = {
        "black": "\033[30m", "red": "\033[31m", "green": "\033[32m", "yellow": "\033[33m",
        "blue": "\033[34m", "magenta": "\033[35m", "cyan": "\033[36m", "white": "\033[37m",
        "bold": "\033[1m", "underline": "\033[4m", "end": "\033[0m",
    }
    return "".join(codes[s] for s in styles) + f"{text}" + codes["end"]


def print_args(args: dict | argparse.Namespace | None = None, show_file: bool = True, show_func: bool = False) -> None:
    """Log a run's arguments as one 'script: k=v, k=v' line; without args, the calling function's own arguments."""
    frame = inspect.currentframe().f_back
    if args is None:
        info = inspect.getargvalues(frame)
        args = {k: info.locals[k] for k in info.args}
    elif isinstance(args, argparse.Namespace):
        args = vars(args)
    file = Path(frame.f_code.co_filename).resolve()
    try:
        name = file.relative_to(ROOT).with_suffix("").as_posix()
    except ValueError:  # a caller outside the repository: its file name alone
        name = file.stem
    head = (f"{name}: " if show_file else "") + (f"{frame.f_code.co_name}: " if show_func else "")
    LOGGER.info(colorstr(head) + ", ".join(f"{k}={v}" for k, v in args.items()))


class Profile(contextlib.ContextDecorator):
    """Time a block (with) or a function (@): .dt is the last duration in seconds, .t the running total.

    CUDA runs asynchronously, so on a CUDA device the clock is read only after the queued work has finished.
    """

    def __init__(self, t: float = 0.0, device: torch.device | str | None = None):
        self.t, self.dt = t, 0.0
        self.cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"

    def __enter__(self) -> Profile:
        self.start = self.time()
        return self

    def __exit__(self, *exc) -> None:
        self.dt = self.time() - self.start
        self.t += self.dt

    def time(self) -> float:
        """Seconds on a monotonic clock, after waiting for pending CUDA work."""
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def inactive_options(opts: dict, inactive: dict[str, tuple[str, object, str]], why: str) -> str:
    """One warning line naming each option of `inactive` (dest: (flag, default, feature)) that opts sets away from
    its default, grouped by feature, with why it has no effect here; '' when none is set."""
    used: dict[str, list[str]] = {}
    for k, (flag, default, feature) in inactive.items():
        if k in opts and opts[k] != default:
            used.setdefault(feature, []).append(flag if opts[k] is True else f"{flag} {opts[k]}")
    if not used:
        return ""
    parts = [f"{k} option{'s' * (len(v) > 1)} {' '.join(v)}" for k, v in used.items()]
    return f"WARNING {' and '.join(parts)} ignored: {why}"


def make_divisible(x: float, divisor: int | torch.Tensor) -> int:
    """Round x up to the nearest multiple of divisor."""
    if isinstance(divisor, torch.Tensor):
        divisor = int(divisor.max())
    return math.ceil(x / divisor) * divisor


def check_img_size(imgsz: int | list[int], s: int = 32, floor: int = 0) -> int | list[int]:
    """Round an image size (int or [h, w]) up to a multiple of stride s, warning when it changes."""
    if isinstance(imgsz, int):
        new_size = max(make_divisible(imgsz, int(s)), floor)
    else:
        new_size = [max(make_divisible(x, int(s)), floor) for x in imgsz]
    if new_size != imgsz:
        LOGGER.warning(f"WARNING --img-size {imgsz} must be multiple of max stride {s}, updating to {new_size}")
    return new_size


def increment_path(path: str | Path, exist_ok: bool = False, sep: str = "", mkdir: bool = False) -> Path:
    """Return path, or path{sep}2, path{sep}3 ... so that an existing run folder is never overwritten."""
    path = Path(path)
    if path.exists() and not exist_ok:
        path, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        for n in range(2, 10000):
            candidate = Path(f"{path}{sep}{n}{suffix}")
            if not candidate.exists():
                path = candidate
                break
    if mkdir:
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_suffix(file: str | Path | list, suffix: str | tuple[str, ...] = (".pt",)) -> None:
    """Raise if a file does not end in one of the accepted suffixes."""
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    for f in file if isinstance(file, (list, tuple)) else [file]:
        s = Path(str(f)).suffix.lower()
        if s and s not in suffixes:
            raise ValueError(f"{f} has suffix {s}, expected one of {suffixes}")


def check_file(file: str | Path, search_dirs: tuple[str, ...] = ("data", "models", "models/hub")) -> str:
    """Return an existing file: the path itself, or a bare name found under the repository's search folders."""
    file = str(file)
    if not file or Path(file).is_file():
        return file
    if file.startswith(("http:/", "https:/")):
        raise FileNotFoundError(f"{file} is a URL; download it first (this project never downloads at run time)")
    matches = []
    for d in search_dirs:
        matches.extend(glob.glob(str(ROOT / d / "**" / file), recursive=True))
    if not matches:
        raise FileNotFoundError(f"File not found: {file} (also searched {', '.join(search_dirs)} under {ROOT})")
    if len(set(matches)) > 1:
        raise FileNotFoundError(f"Multiple files match '{file}', specify a path: {sorted(set(matches))}")
    return matches[0]


def check_yaml(file: str | Path, suffix: tuple[str, ...] = (".yaml", ".yml")) -> str:
    """Resolve a YAML file by path or bare name."""
    check_suffix(file, suffix)
    return check_file(file)


def yaml_load(file: str | Path) -> dict:
    """Read a YAML file into a dict, naming the file when it is not a mapping."""
    with open(file, errors="ignore") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a YAML mapping at top level, got {type(data).__name__}")
    return data


def yaml_save(file: str | Path, data: dict) -> None:
    """Write a dict to YAML, turning Paths into strings."""
    with open(file, "w") as f:
        yaml.safe_dump({k: str(v) if isinstance(v, Path) else v for k, v in data.items()}, f, sort_keys=False)


def intersect_dicts(da: dict, db: dict, exclude: tuple[str, ...] = ()) -> dict:
    """Entries of da whose key is in db with the same shape, skipping keys containing any excluded word."""
    return {k: v for k, v in da.items() if k in db and all(x not in k for x in exclude) and v.shape == db[k].shape}


def clean_str(s: str) -> str:
    """Replace characters unsafe in file names with underscores."""
    return re.sub(r"[|@#!¡·$€%&()=?¿^*;:,¨´><+]", "_", s)


# Datasets --------------------------------------------------------------------------------------------------


def _dataset_root(root: str | Path, yaml_dir: Path | None) -> Path:
    """Dataset root: as given when absolute; else relative to the YAML's folder, or to the repository as in YOLOv5."""
    root = Path(root)
    if root.is_absolute():
        return root
    candidates = [yaml_dir / root] if yaml_dir else []
    candidates.append(ROOT / root)
    return next((c for c in candidates if c.exists()), candidates[0]).resolve()


def _dataset_split(value: str | list, root: Path, yaml_dir: Path | None) -> str | list[str]:
    """Resolve a split (path or list of paths) against the dataset root, then against the YAML's folder."""
    if isinstance(value, (list, tuple)):
        return [_dataset_split(v, root, yaml_dir) for v in value]
    p = Path(str(value))
    if p.is_absolute():
        return str(p)
    candidates = [root / p] + ([yaml_dir / p] if yaml_dir else [])
    return str(next((c for c in candidates if c.exists()), candidates[0]).resolve())


def _dataset_names(names, file: str) -> dict[int, str]:
    """Class names as {index: name} from a list or dict, indices 0..nc-1."""
    if isinstance(names, (list, tuple)):
        return {i: str(n) for i, n in enumerate(names)}
    if not isinstance(names, dict):
        raise ValueError(f"{file}: 'names' must be a list or an {{index: name}} mapping, got {type(names).__name__}")
    try:
        out = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError) as e:
        raise ValueError(f"{file}: 'names' keys must be integer class indices ({e})") from e
    if sorted(out) != list(range(len(out))):
        raise ValueError(f"{file}: 'names' keys must be 0..{len(out) - 1}, got {sorted(out)}")
    return dict(sorted(out.items()))


def check_dataset(data: str | Path | dict, autodownload: bool = True, timeout: float = 30.0) -> dict:
    """Load a dataset YAML (path or bare name in data/), resolving paths, names and nc; generate or fetch if missing.

    A missing dataset is generated ('generate:') or fetched from the URLs of 'download:' and converted by the
    project's own 'convert:' function (utils/downloads.py); no text of the YAML is ever run.
    """
    file, yaml_dir = "dataset dict", None
    if isinstance(data, (str, Path)):
        file = check_yaml(data)
        yaml_dir = Path(file).resolve().parent
        data = yaml_load(file)
    data = dict(data)
    for k in ("train", "val", "names"):
        if data.get(k) in (None, "", [], {}):
            raise KeyError(f"{file}: '{k}:' key missing, a dataset YAML needs train, val and names")
    data["names"] = _dataset_names(data["names"], file)
    nc = len(data["names"])
    if data.get("nc") is not None and int(data["nc"]) != nc:
        raise ValueError(f"{file}: nc={data['nc']} does not match the {nc} names given")
    data["nc"] = nc
    root = _dataset_root(data.get("path") or "", yaml_dir)
    data["path"] = str(root)
    for k in ("train", "val", "test"):
        data[k] = _dataset_split(data[k], root, yaml_dir) if data.get(k) else None

    def missing(split: str) -> list[str]:
        paths = data[split] if isinstance(data[split], list) else [data[split]]
        return [p for p in paths if p and not Path(p).exists()]

    absent = missing("train") + missing("val")
    generator = data.get("generate")
    if absent and autodownload and isinstance(generator, dict):
        if generator.get("name") != "shapes":
            raise ValueError(f"{file}: unknown dataset generator '{generator.get('name')}', expected 'shapes'")
        from utils.shapes import generate_shapes_dataset  # lazy: only a missing dataset needs the generator (cv2)

        LOGGER.info(f"Dataset not found at {root}, generating it offline (generator 'shapes')...")
        opts = {k: int(generator[k]) for k in ("train", "val", "test", "imgsz", "seed") if k in generator}
        opts["segments"] = bool(generator.get("segments", False))  # polygon labels (shapes-seg.yaml)
        generate_shapes_dataset(root, **opts)
        absent = missing("train") + missing("val")
    elif absent and autodownload and data.get("download"):
        from utils.downloads import download_dataset  # lazy: only a missing dataset needs the download code

        download_dataset(data, file, timeout=timeout)
        absent = missing("train") + missing("val")
    if missing("val"):
        from utils.downloads import missing_data_hint

        raise FileNotFoundError(f"{file}: dataset not found, missing paths {missing('val')}. {missing_data_hint(data)}")
    if absent:
        LOGGER.warning(f"WARNING ⚠️ {file}: missing paths {absent}")
    return data


# Training helpers ------------------------------------------------------------------------------------------


def one_cycle(y1: float = 0.0, y2: float = 1.0, steps: int = 100):
    """A function of x in [0, steps] rising (or falling) from y1 to y2 along half a cosine."""
    return lambda x: ((1 - math.cos(x * math.pi / steps)) / 2) * (y2 - y1) + y1


def labels_to_class_weights(labels: list[np.ndarray], nc: int = 80) -> torch.Tensor:
    """Class weights inversely proportional to class frequency in the labels (n, 5) [cls, xywh], summing to 1."""
    if not len(labels):
        return torch.ones(nc) / nc
    classes = np.concatenate(labels, 0)[:, 0].astype(int)
    weights = np.bincount(classes, minlength=nc).astype(np.float64)
    weights[weights == 0] = 1  # an absent class would otherwise get infinite weight
    weights = 1 / weights
    weights /= weights.sum()
    return torch.from_numpy(weights).float()


def labels_to_image_weights(labels: list[np.ndarray], nc: int = 80, class_weights: np.ndarray | None = None):
    """Per-image sampling weights: the sum of the class weights of the image's labels."""
    class_weights = np.ones(nc) if class_weights is None else np.asarray(class_weights)
    counts = np.array([np.bincount(x[:, 0].astype(int), minlength=nc) for x in labels]).reshape(-1, nc)
    return (class_weights.reshape(1, nc) * counts).sum(1)


def get_latest_run(search_dir: str | Path = ".") -> str:
    """Path of the most recently written last*.pt under search_dir (for a bare --resume), or ''."""
    last_list = glob.glob(f"{search_dir}/**/last*.pt", recursive=True)
    return max(last_list, key=os.path.getmtime) if last_list else ""


def check_imshow(warn: bool = False) -> bool:
    """Whether OpenCV can open a window here; False on a headless machine (with a warning when warn)."""

    import cv2  # only needed here

    reason = ""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # OpenCV's Qt backend aborts the whole process, uncatchably, when there is no display to connect to
        reason = "no display (DISPLAY is not set)"
    else:
        try:
            cv2.imshow("test", np.zeros((8, 8, 3), dtype=np.uint8))
            cv2.waitKey(1)
            cv2.destroyAllWindows()
        except cv2.error as e:  # opencv-python-headless, which requirements.txt installs, has no window support
            reason = str(e).strip().splitlines()[-1][:100]
            reason += "; windows need OpenCV with GUI support: pip uninstall -y opencv-python-headless && " \
                      "pip install opencv-python (keep only one: both install cv2)"
    if reason and warn:
        LOGGER.warning(f"WARNING Environment does not support cv2.imshow(): {reason}")
    return not reason
