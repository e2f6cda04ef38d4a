"""Image classification data: ImageFolder datasets and loaders, v7.0's transforms, and the offline shapes-cls set.

A classification dataset is a folder with train/ and val/ (or test/), one sub-folder of images per class, as YOLOv5
v7.0 and torchvision's ImageFolder read it. `--data` names such a folder, a name under datasets/, or a YAML whose
`path:` is the folder and whose `generate:` key builds it offline (data/shapes-cls.yaml).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, distributed

from utils import IMG_FORMATS
from utils.dataloaders import InfiniteDataLoader, seed_worker
from utils.dataset_check import check_image, get_hash, imread, pool_imap
from utils.general import LOGGER, RANK, ROOT, check_yaml, yaml_load
from utils.torch_utils import torch_distributed_zero_first

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)
DATASETS_DIR = ROOT / "datasets"  # where a bare --data name is looked for (git-ignored)
CACHE_VERSION = "cls-images-v1"  # bump when the image checks change; older caches are rebuilt


# Transforms ----------------------------------------------------------------------------------------------------


def to_tensor(im: np.ndarray) -> torch.Tensor:
    """BGR HWC uint8 image -> RGB CHW float tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)[::-1])).float() / 255


def center_crop(im: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The largest centred square of an image, resized to size (an int, or h, w) bilinearly, as v7.0's CenterCrop."""
    oh, ow = (size, size) if isinstance(size, int) else size
    h, w = im.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return cv2.resize(im[top : top + s, left : left + s], (ow, oh), interpolation=cv2.INTER_LINEAR)


class CenterCrop:
    """v7.0's utils.augmentations.CenterCrop, which its classification checkpoints pickle (model.transforms)."""

    def __init__(self, size: int | tuple[int, int] = 640):
        self.h, self.w = (size, size) if isinstance(size, int) else size

    def __call__(self, im: np.ndarray) -> np.ndarray:
        return center_crop(im, (self.h, self.w))


class ToTensor:
    """v7.0's utils.augmentations.ToTensor (pickled likewise): BGR HWC uint8 -> RGB CHW in [0, 1], FP16 with half."""

    def __init__(self, half: bool = False):
        self.half = half

    def __call__(self, im: np.ndarray) -> torch.Tensor:
        x = to_tensor(im)
        return x.half() if self.half else x


class ClassifyTransforms:
    """Validation and inference: centre crop to size, RGB tensor, ImageNet normalisation (v7.0 classify_transforms)."""

    def __init__(self, size: int = 224):
        self.size = size
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __call__(self, im: np.ndarray) -> torch.Tensor:
        return (to_tensor(center_crop(im, self.size)) - self.mean) / self.std


class ClassifyAugment(ClassifyTransforms):
    """Training: random resized crop, flips and brightness/contrast/saturation jitter, then normalisation.

    The recipe of v7.0's classify_albumentations (scale 0.08-1, aspect 3/4-4/3, hflip 0.5, jitter 0.4, hue kept),
    with torchvision's transforms in place of albumentations.
    """

    def __init__(self, size: int = 224, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (0.75, 1.0 / 0.75), hflip: float = 0.5, vflip: float = 0.0,
                 jitter: float = 0.4):
        super().__init__(size)
        import torchvision.transforms as T  # torchvision is only needed where images are augmented

        ops = [T.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True)]
        ops += [T.RandomHorizontalFlip(hflip)] if hflip > 0 else []
        ops += [T.RandomVerticalFlip(vflip)] if vflip > 0 else []
        ops += [T.ColorJitter(jitter, jitter, jitter, 0)] if jitter > 0 else []
        self.augment = T.Compose(ops)

    def __call__(self, im: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)[::-1]))  # uint8 RGB: jitter clips at 255
        return (self.augment(x).float() / 255 - self.mean) / self.std


def classify_transforms(size: int = 224) -> ClassifyTransforms:
    """v7.0's name for the validation/inference transform."""
    return ClassifyTransforms(size)


# Datasets ------------------------------------------------------------------------------------------------------


def _image_problem(file: str) -> str:
    """Why an image is unusable, or '' when it reads (the checks detection datasets get)."""
    try:
        check_image(file)
    except (ValueError, OSError) as e:
        return str(e)
    return ""


def scan_images(files: list[str], root: Path, prefix: str = "") -> list[str]:
    """Why each image is unusable ('' when it reads), checked in parallel once and then read from <root>.cache.

    The cache (a pickle-free .npz beside the split folder) is used while the file list, sizes and times match.
    """
    cache, h = root.with_suffix(".cache"), get_hash(files)
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["version"]) == CACHE_VERSION and str(z["hash"]) == h and len(z["problems"]) == len(files):
                return [str(x) for x in z["problems"]]
    except Exception:  # missing, stale or foreign: scanned again
        pass
    problems = list(pool_imap(_image_problem, files, f"{prefix}Scanning {root}", len(files)))
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, version=np.array(CACHE_VERSION), hash=np.array(h), problems=np.array(problems, dtype=str))
        os.replace(tmp, cache)
    except OSError as e:
        LOGGER.warning(f"{prefix}WARNING ⚠️ {cache.parent} is not writeable, image check not cached: {e}")
        tmp.unlink(missing_ok=True)
    return problems


class ClassificationDataset(Dataset):
    """ImageFolder: root/<class>/<image>, classes in sorted folder order; corrupt images are named and skipped."""

    def __init__(self, root: str | Path, augment: bool = False, imgsz: int = 224, cache: bool | str = False,
                 prefix: str = ""):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{prefix}{self.root}: classification split not found (expected a folder of "
                                    f"class folders)")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise FileNotFoundError(f"{prefix}{self.root}: no class folders; expected {self.root}/<class>/<image>")
        files = [(str(f), i) for i, c in enumerate(self.classes) for f in sorted((self.root / c).rglob("*.*"))
                 if f.suffix[1:].lower() in IMG_FORMATS]
        problems = scan_images([f for f, _ in files], self.root, prefix)
        for (f, _), p in zip(files, problems):
            if p:
                LOGGER.warning(f"{prefix}WARNING ⚠️ {f}: ignoring corrupt image: {p}")
        self.samples = [s for s, p in zip(files, problems) if not p]
        if not self.samples:
            raise FileNotFoundError(f"{prefix}{self.root}: no readable images in its class folders")
        self.names = dict(enumerate(self.classes))
        self.targets = [i for _, i in self.samples]
        self.transforms = ClassifyAugment(imgsz) if augment else ClassifyTransforms(imgsz)
        self.images = [None] * len(self.samples)
        if cache in (True, "ram"):
            self.images = [imread(f) for f, _ in self.samples]
        elif cache == "disk":
            for f, _ in self.samples:
                npy = Path(f).with_suffix(".npy")
                if not npy.exists():
                    np.save(npy, imread(f))
        self.cache = cache
        skipped = len(files) - len(self.samples)
        LOGGER.info(f"{prefix}{self.root}: {len(self.samples)} images in {len(self.classes)} classes"
                    f"{f', {skipped} corrupt skipped' if skipped else ''}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        f, j = self.samples[i]
        im = self.images[i]
        if im is None:
            im = np.load(Path(f).with_suffix(".npy")) if self.cache == "disk" else imread(f)
        return self.transforms(im), j


def create_classification_dataloader(path: str | Path, imgsz: int = 224, batch_size: int = 16, augment: bool = True,
                                     cache: bool | str = False, rank: int = -1, workers: int = 8,
                                     shuffle: bool = True, seed: int = 0, prefix: str = ""):
    """(loader, dataset) over an ImageFolder split; distributed when rank != -1."""
    with torch_distributed_zero_first(rank):
        dataset = ClassificationDataset(path, augment=augment, imgsz=imgsz, cache=cache, prefix=prefix)
    batch_size = min(batch_size, len(dataset))
    devices = max(torch.cuda.device_count(), 1)
    nw = min((os.cpu_count() or 1) // devices, batch_size if batch_size > 1 else 0, workers)
    sampler = distributed.DistributedSampler(dataset, shuffle=shuffle, seed=seed) if rank != -1 else None
    generator = torch.Generator()
    generator.manual_seed(seed + 6_148_914_691 * max(RANK, 0))
    loader = InfiniteDataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                                num_workers=nw, sampler=sampler, pin_memory=torch.cuda.is_available(),
                                worker_init_fn=seed_worker, generator=generator)
    return loader, dataset


def _is_yaml(data: str) -> bool:
    return data.endswith((".yaml", ".yml")) or (ROOT / "data" / f"{data}.yaml").is_file()


def check_cls_dataset(data: str | Path, autogenerate: bool = True) -> dict:
    """Resolve --data to {path, train, val, test, names, nc}; generate a YAML's dataset when it is missing."""
    data, generator, cfg = str(data), None, {}
    if _is_yaml(data):
        file = check_yaml(data if data.endswith((".yaml", ".yml")) else f"{data}.yaml")
        cfg = yaml_load(file)
        if not cfg.get("path"):
            raise KeyError(f"{file}: 'path:' key missing; a classification YAML names its ImageFolder root")
        root = Path(cfg["path"])
        root = root if root.is_absolute() else (Path(file).parent / root).resolve()
        generator = cfg.get("generate")
    else:
        candidates = [Path(data), DATASETS_DIR / data]
        root = next((c for c in candidates if c.is_dir()), None)
        if root is None:
            tried = ", ".join(map(str, candidates))
            raise FileNotFoundError(f"classification dataset '{data}' not found: tried {tried} and data/{data}.yaml; "
                                    f"expected a folder with train/ and val/ class folders")
    if not (root / "train").is_dir() and autogenerate and isinstance(generator, dict):
        if generator.get("name") != "shapes-cls":
            raise ValueError(f"{data}: unknown classification generator '{generator.get('name')}', "
                             f"expected 'shapes-cls'")
        LOGGER.info(f"Dataset not found at {root}, generating it offline (generator 'shapes-cls')...")
        generate_shapes_cls(root, **{k: int(generator[k]) for k in ("train", "val", "imgsz", "seed") if k in generator})
    train = root / cfg.get("train", "train")
    val = next((root / s for s in (cfg.get("val"), "val", "test") if s and (root / s).is_dir()), None)
    if not train.is_dir() or val is None:
        raise FileNotFoundError(f"{root}: a classification dataset needs train/ and val/ (or test/) folders, found "
                                f"{sorted(p.name for p in root.iterdir()) if root.is_dir() else 'no folder'}")
    names = sorted(d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith("."))
    extra = sorted({d.name for d in val.iterdir() if d.is_dir()} - set(names))
    if extra:
        raise ValueError(f"{val}: class folders {extra} are not in {train}; both splits must share the classes")
    if cfg.get("names") is not None:
        given = list(cfg["names"].values()) if isinstance(cfg["names"], dict) else list(cfg["names"])
        if [str(x) for x in given] != names:
            raise ValueError(f"{data}: names {given} differ from the class folders of {train}, {names} (sorted)")
    test = root / "test" if (root / "test").is_dir() else None
    return {"path": root, "train": train, "val": val, "test": test, "names": dict(enumerate(names)), "nc": len(names)}


def calibration_images(data: str | Path, imgsz: int, n: int = 300, split: str = "train"):
    """INT8 calibration images of a classification dataset, centre-cropped and normalised as classify/val.py feeds
    exported classifiers (utils.quantize.CalibrationImages with this loader)."""
    from utils.quantize import CalibrationImages  # lazy: only INT8 export calibrates

    class ClassifyCalibrationImages(CalibrationImages):
        @staticmethod
        def load(data, imgsz, stride, split):
            return ClassificationDataset(check_cls_dataset(data)[split], imgsz=imgsz, prefix="calibration: ")

        def array(self, i: int) -> np.ndarray:
            return self.dataset[i][0][None].numpy()

    return ClassifyCalibrationImages(data, imgsz, n=n, split=split)


# Offline shapes-cls ----------------------------------------------------------------------------------------------


def shape_crops(rng: np.random.Generator, imgsz: int = 64, source: int = 256) -> list[tuple[int, np.ndarray]]:
    """(class, crop) for every shape of one generated detection image: a square 1.3x its box, resized to imgsz."""
    from utils.shapes import make_shapes_image  # lazy: utils.shapes imports utils.general at import

    img, labels = make_shapes_image(rng, source)
    out = []
    for c, x1, y1, x2, y2 in labels:
        side = max(x2 - x1, y2 - y1) * 1.3
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        a = np.clip(np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]), 0, source).astype(int)
        crop = img[a[1] : a[3], a[0] : a[2]]
        if min(crop.shape[:2]) >= 16:
            out.append((int(c), center_crop(crop, imgsz)))
    return out


def generate_shapes_cls(root: str | Path, train: int = 100, val: int = 30, imgsz: int = 64, seed: int = 0) -> Path:
    """Write `train` and `val` crops per class under root/train/<class>/ and root/val/<class>/; present splits kept."""
    from utils.shapes import NAMES

    root = Path(root)
    t0 = time.time()
    for k, (split, n) in enumerate((("train", train), ("val", val))):
        if (root / split).is_dir() or not n:
            continue
        tmp = root.parent / f".{root.name}-{split}.tmp-{os.getpid()}-{time.time_ns()}"
        try:
            counts = [0] * len(NAMES)
            for d in NAMES:
                (tmp / d).mkdir(parents=True, exist_ok=True)
            i = 0
            while min(counts) < n:
                for c, crop in shape_crops(np.random.default_rng([seed, k, i]), imgsz):
                    if counts[c] < n:
                        cv2.imwrite(str(tmp / NAMES[c] / f"{split}_{i:06d}_{counts[c]}.jpg"), crop,
                                    [cv2.IMWRITE_JPEG_QUALITY, 92])
                        counts[c] += 1
                i += 1
            root.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, root / split)
            except OSError:  # another process wrote this split first; its copy is identical
                if not (root / split).is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    LOGGER.info(f"shapes-cls: {root} ready ({train}+{val} images per class, {imgsz}px) in {time.time() - t0:.1f}s")
    return root
