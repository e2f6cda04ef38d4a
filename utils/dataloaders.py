"""Training and validation data: YOLO-format datasets, mosaic/mixup augmentation, batching and loaders."""

from __future__ import annotations

import glob
import os
import random
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, distributed

from utils import IMG_FORMATS
from utils.augmentations import Albumentations, augment_hsv, copy_paste, letterbox, mixup, random_perspective
from utils.dataset_check import (
    get_hash,
    img2label_paths,
    imread,  # noqa: F401  (v7.0 code imports it from here; the image cache reads with it)
    load_cache,
    save_cache,
    scan_labels,
    summary,
)
from utils.general import (  # noqa: F401  (NUM_THREADS, TQDM_BAR_FORMAT: v7.0 code imports them from here)
    LOGGER,
    NUM_THREADS,
    RANK,
    TQDM_BAR_FORMAT,
    xyn2xy,
    xywhn2xyxy,
    xyxy2xywhn,
)
from utils.image_cache import ImageCache
from utils.sources import LoadImages, LoadStreams  # noqa: F401  (v7.0 scripts import them from here)
from utils.torch_utils import torch_distributed_zero_first

HELP_MSG = "See the README section 'Datasets' for the expected images/ and labels/ layout"


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from its torch seed, so augmentations are reproducible."""
    cv2.setNumThreads(0)  # parallelism comes from the workers; OpenCV threads inside each would oversubscribe
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class InfiniteDataLoader(DataLoader):
    """DataLoader whose worker processes live for the whole run instead of being re-created every epoch.

    Workers are persistent (PyTorch keeps them and re-primes their prefetch each epoch); the sampler still runs
    in the main process, so DistributedSampler.set_epoch keeps working between epochs.
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get("num_workers", 0) > 0:
            kwargs["persistent_workers"] = True
        super().__init__(*args, **kwargs)


def create_dataloader(
    path: str | list[str],
    imgsz: int,
    batch_size: int,
    stride: int,
    single_cls: bool = False,
    hyp: dict | None = None,
    augment: bool = False,
    cache: bool | str = False,
    pad: float = 0.0,
    rect: bool = False,
    rank: int = -1,
    workers: int = 8,
    image_weights: bool = False,
    quad: bool = False,
    prefix: str = "",
    shuffle: bool = False,
    seed: int = 0,
    nc: int | None = None,
    dataset_cls: type | None = None,
    dataset_kwargs: dict | None = None,
) -> tuple[DataLoader, LoadImagesAndLabels]:
    """Build (loader, dataset); with nc given, label lines with a class >= nc are dropped with a warning.

    dataset_cls (a LoadImagesAndLabels subclass, with its collate functions) and dataset_kwargs let a task such
    as segmentation load more per image through the same loader.
    """
    dataset_cls = dataset_cls or LoadImagesAndLabels
    if rect and shuffle:
        LOGGER.warning("WARNING ⚠️ --rect is incompatible with DataLoader shuffle, setting shuffle=False")
        shuffle = False
    with torch_distributed_zero_first(rank):  # rank 0 scans and writes the cache, the others then read it
        dataset = dataset_cls(
            path, imgsz, batch_size, augment=augment, hyp=hyp, rect=rect, cache_images=cache,
            single_cls=single_cls, stride=int(stride), pad=pad, image_weights=image_weights, prefix=prefix,
            **(dataset_kwargs or {}),
        )
    if nc is not None:
        dataset.check_classes(nc)
    batch_size = min(batch_size, len(dataset))
    nd = torch.cuda.device_count()
    nw = min((os.cpu_count() or 1) // max(nd, 1), batch_size if batch_size > 1 else 0, workers)
    sampler = None if rank == -1 else distributed.DistributedSampler(dataset, shuffle=shuffle, seed=seed)
    # image weights change dataset.indices every epoch, which persistent workers (holding a copy) would miss
    loader_cls = DataLoader if image_weights else InfiniteDataLoader
    generator = torch.Generator()
    generator.manual_seed(seed + 1_000_003 * max(RANK, 0))  # distinct augmentation streams per rank
    loader = loader_cls(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        num_workers=nw,
        sampler=sampler,
        pin_memory=torch.cuda.is_available(),
        collate_fn=dataset_cls.collate_fn4 if quad else dataset_cls.collate_fn,
        worker_init_fn=seed_worker,
        generator=generator,
    )
    return loader, dataset


def gather_images(path: str | Path | list, prefix: str = "") -> list[str]:
    """Image files under directories, listed in .txt files, or given directly; sorted and de-duplicated."""
    files = []
    for p in path if isinstance(path, (list, tuple)) else [path]:
        p = Path(p)
        if p.is_dir():
            files += glob.glob(str(p / "**" / "*.*"), recursive=True)
        elif p.is_file() and p.suffix.lower() == ".txt":
            with open(p, errors="replace") as f:  # relative entries are relative to the list file
                files += [os.path.normpath(x if os.path.isabs(x) else p.parent / x) for x in map(str.strip, f) if x]
        elif p.is_file():
            files.append(str(p))
        else:
            raise FileNotFoundError(f"{prefix}{p} does not exist")
    images = [os.path.normpath(x) for x in files if x.rpartition(".")[-1].lower() in IMG_FORMATS]
    unique = sorted(set(images))
    if len(unique) < len(images):
        LOGGER.warning(f"{prefix}WARNING ⚠️ {len(images) - len(unique)} duplicate image paths removed from {path}")
    if not unique:
        raise FileNotFoundError(f"{prefix}No images found in {path}, supported formats: {', '.join(IMG_FORMATS)}. "
                                f"{HELP_MSG}")
    return unique


class LoadImagesAndLabels(ImageCache, Dataset):
    """YOLO-format dataset: items are (CHW uint8 RGB tensor, (n, 6) [batch, class, xywhn] labels, path, shapes).

    labels[i] is (n, 5) class-xywhn per image; segments[i] is [] when its label file has no polygon line, else one
    float32 (k, 2) normalised polygon per label ((0, 2) for a box line). Polygons follow every geometric
    augmentation and feed copy_paste; load_sample returns them with an item.
    """

    def __init__(
        self,
        path: str | list[str],
        img_size: int = 640,
        batch_size: int = 16,
        augment: bool = False,
        hyp: dict | None = None,
        rect: bool = False,
        image_weights: bool = False,
        cache_images: bool | str = False,
        single_cls: bool = False,
        stride: int = 32,
        pad: float = 0.0,
        min_items: int = 0,
        prefix: str = "",
    ):
        self.img_size = img_size
        self.batch_size = batch_size
        self.augment = augment
        self.hyp = hyp or {}
        self.image_weights = image_weights
        self.rect = False if image_weights else rect
        self.mosaic = self.augment and not self.rect  # mosaic would undo the per-batch rectangles
        self.mosaic_border = [-img_size // 2, -img_size // 2]
        self.stride = stride
        self.pad = pad
        self.path = path
        self.prefix = prefix
        self.albumentations = Albumentations(size=img_size) if augment else None

        self.im_files = gather_images(path, prefix)
        self.label_files = img2label_paths(self.im_files)
        p = Path(path[0] if isinstance(path, (list, tuple)) else path)
        cache_path = (p if p.is_file() else Path(self.label_files[0]).parent).with_suffix(".cache")
        cache = self.cache_labels(cache_path, prefix)
        if not cache["im_files"]:  # every file was corrupt
            raise FileNotFoundError(f"{prefix}No usable images in {path}: {summary(cache['results'])}. {HELP_MSG}")

        self.im_files = cache["im_files"]
        self.labels = [lb.copy() for lb in cache["labels"]]
        self.segments = [list(s) for s in cache["segments"]]
        self.shapes = np.asarray(cache["shapes"], dtype=np.int64).reshape(-1, 2)  # (width, height) per image
        self.label_files = img2label_paths(self.im_files)
        if single_cls:
            for lb in self.labels:
                lb[:, 0] = 0
        n = len(self.im_files)
        self.ims, self.im_hw0, self.im_hw = [None] * n, [None] * n, [None] * n
        self.npy_files = [Path(f).with_suffix(".npy") for f in self.im_files]
        self.npy_valid = np.zeros(n, dtype=bool)
        self.batch = self.batch_shapes = None
        keep = np.array([len(lb) >= min_items for lb in self.labels])
        if min_items and not keep.all():
            LOGGER.info(f"{prefix}{n - keep.sum()}/{n} images filtered from dataset (fewer than {min_items} labels)")
        self._take(np.flatnonzero(keep))

        self.cache = "ram" if cache_images is True else (cache_images or None)
        if self.cache not in (None, "ram", "disk"):
            raise ValueError(f"{prefix}cache_images={cache_images!r}, expected False, True, 'ram' or 'disk'")
        if self.cache == "ram" and not self.check_cache_ram(prefix=prefix):
            self.cache = None
        if self.cache:
            self._cache_images()

    def cache_labels(self, path: Path = Path("./labels.cache"), prefix: str = "") -> dict:
        """Load the verified labels from the cache, or verify every pair and write a new cache."""
        files_hash = get_hash(self.label_files + self.im_files)
        cache = load_cache(path, files_hash)
        if cache is not None:
            if RANK in {-1, 0}:
                LOGGER.info(f"{prefix}Scanning {path}... {summary(cache['results'])} (cached)")
                for msg in cache["msgs"]:
                    LOGGER.warning(msg)
            return cache
        cache = scan_labels(self.im_files, self.label_files, prefix, desc=str(path.with_suffix("")))
        LOGGER.info(f"{prefix}Scanned {path.with_suffix('')}: {summary(cache['results'])}")
        if any("restored" in m for m in cache["msgs"]):  # restored files have a new mtime: hash them as they are now
            files_hash = get_hash(self.label_files + self.im_files)
        if cache["im_files"]:
            save_cache(path, cache, files_hash, prefix)
        return cache

    def _take(self, idx: np.ndarray) -> None:
        """Keep (and reorder to) the images at idx, then recompute batches and rectangular shapes."""
        idx = np.asarray(idx, dtype=np.int64)
        for name in ("im_files", "label_files", "labels", "segments", "ims", "im_hw0", "im_hw", "npy_files"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in idx])
        self.shapes = self.shapes[idx].reshape(-1, 2)
        self.npy_valid = self.npy_valid[idx]
        self.n = n = len(self.im_files)
        if n == 0:
            raise FileNotFoundError(f"{self.prefix}No usable images left in {self.path}. {HELP_MSG}")
        self.batch = np.arange(n) // self.batch_size
        self.indices = np.arange(n)
        if self.rect:
            self._set_rect_shapes()

    def _set_rect_shapes(self) -> None:
        """Sort images by aspect ratio and give each batch the smallest stride-aligned shape holding all of them."""
        ar = self.shapes[:, 1] / self.shapes[:, 0]  # height / width
        order = ar.argsort(kind="stable")
        if (order != np.arange(len(order))).any():
            self.rect = False  # reorder without recursing back here
            self._take(order)
            self.rect = True
            ar = ar[order]
        nb = int(self.batch[-1]) + 1
        shapes = np.ones((nb, 2))
        for i in range(nb):
            ari = ar[self.batch == i]
            lo, hi = ari.min(), ari.max()
            if hi < 1:  # all wide: full width, height as tall as the tallest
                shapes[i] = [hi, 1]
            elif lo > 1:  # all tall
                shapes[i] = [1, 1 / lo]
        self.batch_shapes = np.ceil(shapes * self.img_size / self.stride + self.pad).astype(int) * self.stride

    def check_classes(self, nc: int) -> int:
        """Drop label lines whose class is >= nc, warning once per file; the images keep their other labels.

        Returns how many lines were dropped.
        """
        dropped = 0
        for i, lb in enumerate(self.labels):
            bad = lb[:, 0] >= nc
            if not bad.any():
                continue
            classes = sorted({int(c) for c in lb[bad, 0]})
            self.labels[i] = lb[~bad]
            if self.segments[i]:
                self.segments[i] = [seg for seg, b in zip(self.segments[i], bad) if not b]
            dropped += int(bad.sum())
            LOGGER.warning(f"{self.prefix}WARNING ⚠️ {self.label_files[i]}: class {classes} exceeds nc={nc} "
                           f"(classes 0-{nc - 1}), {int(bad.sum())} label line(s) ignored; {self.im_files[i]} keeps "
                           f"its other {len(self.labels[i])} label(s)")
        return dropped

    def __len__(self) -> int:
        """Number of usable images."""
        return len(self.im_files)

    def _pixel_segments(self, i: int, w: float, h: float, padw: float = 0, padh: float = 0) -> list[np.ndarray]:
        """Image i's polygons in pixels of a w x h placement, one per label ((0, 2) where a label has none)."""
        if not self.segments[i]:
            return [np.zeros((0, 2), np.float32) for _ in range(len(self.labels[i]))]
        return [xyn2xy(seg, w, h, padw, padh) for seg in self.segments[i]]

    def load_mosaic(self, index: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Four images around a random centre on a 2s canvas, then copy-paste and random_perspective down to s.

        Returns (image, class-xyxy labels, one pixel polygon per label).
        """
        s = self.img_size
        yc, xc = (int(random.uniform(-b, 2 * s + b)) for b in self.mosaic_border)
        indices = [index] + random.choices(self.indices, k=3)
        random.shuffle(indices)
        canvas = None
        all_labels, segments = [], []
        for k, i in enumerate(indices):
            im, _, (h, w) = self.load_image(i)
            if canvas is None:
                canvas = np.full((2 * s, 2 * s, im.shape[2]), 114, dtype=np.uint8)
            # quadrant k: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; each touches the centre
            ox = xc - w if k in (0, 2) else xc
            oy = yc - h if k in (0, 1) else yc
            xa, ya, xb, yb = max(ox, 0), max(oy, 0), min(ox + w, 2 * s), min(oy + h, 2 * s)
            if xb > xa and yb > ya:
                canvas[ya:yb, xa:xb] = im[ya - oy : yb - oy, xa - ox : xb - ox]
            labels = self.labels[i].copy()
            if labels.size:
                labels[:, 1:] = xywhn2xyxy(labels[:, 1:], w, h, padw=ox, padh=oy)
            all_labels.append(labels)
            segments += self._pixel_segments(i, w, h, ox, oy)
        labels = np.concatenate(all_labels, 0)
        for x in (labels[:, 1:], *segments):
            np.clip(x, 0, 2 * s, out=x)
        hyp = self.hyp
        canvas, labels, segments = copy_paste(canvas, labels, segments, p=hyp.get("copy_paste", 0.0))
        return random_perspective(
            canvas, labels, segments, degrees=hyp.get("degrees", 0.0), translate=hyp.get("translate", 0.0),
            scale=hyp.get("scale", 0.0), shear=hyp.get("shear", 0.0), perspective=hyp.get("perspective", 0.0),
            border=self.mosaic_border,
        )

    def __getitem__(self, index: int):
        """One training/validation sample: (image tensor, labels (n, 6), path, shapes or None for mosaics)."""
        img, labels, _, path, shapes = self.load_sample(index)
        return img, labels, path, shapes

    def load_sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], str, tuple | None]:
        """__getitem__'s item with the polygons: (image, labels (n, 6), segments, path, shapes).

        segments are normalised (k, 2) polygons in the returned image, one per label ((0, 2) for a box label).
        """
        index = self.indices[index]  # linear, shuffled or image-weighted
        hyp = self.hyp
        if self.mosaic and random.random() < hyp.get("mosaic", 1.0):
            img, labels, segments = self.load_mosaic(index)
            shapes = None
            if random.random() < hyp.get("mixup", 0.0):
                img2, labels2, segments2 = self.load_mosaic(random.choice(self.indices))
                img, labels = mixup(img, labels, img2, labels2)
                segments = segments + segments2
        else:
            img, (h0, w0), (h, w) = self.load_image(index)
            shape = self.batch_shapes[self.batch[index]] if self.rect else self.img_size
            img, ratio, pad = letterbox(img, shape, auto=False, scaleup=self.augment)
            shapes = (h0, w0), ((h / h0, w / w0), pad)  # what val.py needs to map boxes back to the original
            labels = self.labels[index].copy()
            if labels.size:
                labels[:, 1:] = xywhn2xyxy(labels[:, 1:], ratio[0] * w, ratio[1] * h, padw=pad[0], padh=pad[1])
            segments = self._pixel_segments(index, ratio[0] * w, ratio[1] * h, pad[0], pad[1])
            if self.augment:
                img, labels, segments = random_perspective(
                    img, labels, segments, degrees=hyp.get("degrees", 0.0), translate=hyp.get("translate", 0.0),
                    scale=hyp.get("scale", 0.0), shear=hyp.get("shear", 0.0),
                    perspective=hyp.get("perspective", 0.0),
                )

        nl = len(labels)
        h, w = img.shape[:2]
        if nl:
            labels[:, 1:5] = xyxy2xywhn(labels[:, 1:5], w=w, h=h, clip=True, eps=1e-3)
        segments = [seg / np.array([w, h], np.float32) for seg in segments]
        if self.augment:
            img, labels = self.albumentations(img, labels)
            if len(labels) != nl:  # a dropped box cannot be matched to its polygon any more
                segments = [np.zeros((0, 2), np.float32) for _ in range(len(labels))]
            nl = len(labels)
            augment_hsv(img, hgain=hyp.get("hsv_h", 0.0), sgain=hyp.get("hsv_s", 0.0), vgain=hyp.get("hsv_v", 0.0))
            if random.random() < hyp.get("flipud", 0.0):
                img = np.flipud(img)
                if nl:
                    labels[:, 2] = 1 - labels[:, 2]
                    segments = [np.stack((seg[:, 0], 1 - seg[:, 1]), 1) for seg in segments]
            if random.random() < hyp.get("fliplr", 0.0):
                img = np.fliplr(img)
                if nl:
                    labels[:, 1] = 1 - labels[:, 1]
                    segments = [np.stack((1 - seg[:, 0], seg[:, 1]), 1) for seg in segments]

        labels_out = torch.zeros((nl, 6))
        if nl:
            labels_out[:, 1:] = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        img = np.ascontiguousarray(img.transpose((2, 0, 1))[::-1])  # HWC BGR -> CHW RGB
        return torch.from_numpy(img), labels_out, segments, self.im_files[index], shapes

    @staticmethod
    def collate_fn(batch: list) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple]:
        """Stack images and concatenate labels, writing each label's image index into column 0."""
        im, labels, paths, shapes = zip(*batch)
        for i, lb in enumerate(labels):
            lb[:, 0] = i
        return torch.stack(im, 0), torch.cat(labels, 0), paths, shapes

    @staticmethod
    def collate_fn4(batch: list) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple]:
        """Quad collate: every 4 samples become one image of twice the size, a 2x2 tile or one sample upscaled."""
        im, labels, paths, shapes = zip(*batch)
        n = len(shapes) // 4
        ims, out = [], []
        below = torch.tensor([0.0, 0, 0, 1, 0, 0])  # shift by one image height (normalised)
        right = torch.tensor([0.0, 0, 1, 0, 0, 0])  # shift by one image width
        half = torch.tensor([1.0, 1, 0.5, 0.5, 0.5, 0.5])  # the tile is twice as large in both directions
        for q in range(n):
            i = 4 * q
            if random.random() < 0.5:
                big = F.interpolate(im[i][None].float(), scale_factor=2.0, mode="bilinear", align_corners=False)
                ims.append(big[0].to(im[i].dtype))
                out.append(labels[i].clone())
            else:  # i top-left, i+1 below it, i+2 right of it, i+3 diagonal
                ims.append(torch.cat((torch.cat((im[i], im[i + 1]), 1), torch.cat((im[i + 2], im[i + 3]), 1)), 2))
                tiled = (labels[i], labels[i + 1] + below, labels[i + 2] + right, labels[i + 3] + below + right)
                out.append(torch.cat(tiled, 0) * half)
        for q, lb in enumerate(out):
            lb[:, 0] = q
        return torch.stack(ims, 0), torch.cat(out, 0), paths[:n], shapes[:n]
