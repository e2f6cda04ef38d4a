"""The image cache of the training and validation datasets (utils/dataloaders.py): --cache ram keeps resized images
in memory, --cache disk keeps decoded full-size images as .npy files beside the originals; load_image reads through it.
"""

from __future__ import annotations

import os
import random
from multiprocessing.pool import ThreadPool

import cv2
import numpy as np
from tqdm import tqdm

from utils.dataset_check import imread
from utils.general import LOGGER, NUM_THREADS, TQDM_BAR_FORMAT


class ImageCache:
    """What LoadImagesAndLabels gets from its images: loading (resized so the long side is img_size) and caching.

    Uses the dataset's im_files, shapes (w, h), img_size, augment, cache ('ram', 'disk' or None), prefix, and the
    per-image lists ims, im_hw0, im_hw, npy_files and npy_valid that the dataset sets up.
    """

    def check_cache_ram(self, safety_margin: float = 0.1, prefix: str = "") -> bool:
        """True if the resized images fit into available memory (estimated from a sample)."""
        try:
            import psutil  # listed in requirements; optional here so a missing install only skips the check
        except ImportError:
            return True
        n = min(len(self.im_files), 30)
        need = 0.0
        for i in random.sample(range(len(self.im_files)), n):
            w, h = self.shapes[i]
            r = self.img_size / max(w, h)
            need += w * h * 3 * r**2
        need *= len(self.im_files) / n
        available = psutil.virtual_memory().available
        ok = need * (1 + safety_margin) < available
        if not ok:
            LOGGER.warning(f"{prefix}WARNING ⚠️ {need / 1e9:.1f}GB RAM needed to cache images but only "
                           f"{available / 1e9:.1f}GB available, not caching images")
        return ok

    def _cache_images(self) -> None:
        """Cache resized images in RAM, or full-size decoded images as .npy beside the originals on disk."""
        disk = self.cache == "disk"
        fn = self.cache_images_to_disk if disk else self.load_image
        total = 0
        with ThreadPool(NUM_THREADS) as pool:  # decoding and file I/O release the GIL
            bar = tqdm(enumerate(pool.imap(fn, range(len(self)))), total=len(self), bar_format=TQDM_BAR_FORMAT)
            for i, x in bar:
                if disk:
                    total += self.npy_files[i].stat().st_size if self.npy_valid[i] else 0
                else:
                    self.ims[i], self.im_hw0[i], self.im_hw[i] = x
                    total += self.ims[i].nbytes
                bar.desc = f"{self.prefix}Caching images ({total / 1e9:.2f}GB {self.cache})"
        if disk and not self.npy_valid.all():
            LOGGER.warning(f"{self.prefix}WARNING ⚠️ {(~self.npy_valid).sum()} images could not be cached to disk, "
                           "they are read from their source files")

    def cache_images_to_disk(self, i: int) -> None:
        """Write image i as .npy unless an up-to-date one exists (newer than the source, same shape)."""
        f, src = self.npy_files[i], self.im_files[i]
        w, h = self.shapes[i]
        try:
            fresh = f.stat().st_mtime_ns >= os.stat(src).st_mtime_ns
            if fresh and np.load(f, mmap_mode="r", allow_pickle=False).shape == (h, w, 3):
                self.npy_valid[i] = True
                return
        except Exception:  # missing or unreadable .npy: write it again
            pass
        tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:  # write then rename: a reader never sees half an array
                np.save(fh, imread(src), allow_pickle=False)
            os.replace(tmp, f)
            self.npy_valid[i] = True
        except Exception as e:  # e.g. a read-only folder: read the source image instead
            LOGGER.warning(f"{self.prefix}WARNING ⚠️ {f}: disk cache not writeable ({e})")
            tmp.unlink(missing_ok=True)
            self.npy_valid[i] = False

    def load_image(self, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image i (BGR) resized so its long side is img_size; returns image, original (h, w), resized (h, w)."""
        if self.ims[i] is not None:
            return self.ims[i], self.im_hw0[i], self.im_hw[i]
        im = None
        if self.npy_valid[i]:
            try:
                im = np.load(self.npy_files[i], allow_pickle=False)
            except Exception:  # removed or damaged since caching: read the source instead
                im = None
        if im is None:
            im = imread(self.im_files[i])
        h0, w0 = im.shape[:2]
        r = self.img_size / max(h0, w0)
        if r != 1:
            # area averaging is best for pure downscaling; training and upscaling use cheaper bilinear
            interp = cv2.INTER_LINEAR if (self.augment or r > 1) else cv2.INTER_AREA
            # sides floored as YOLOv5 v7.0 does (a 300x200 image at 64 becomes 64x42, not 64x43)
            im = cv2.resize(im, (max(1, int(w0 * r)), max(1, int(h0 * r))), interpolation=interp)
        return im, (h0, w0), im.shape[:2]
