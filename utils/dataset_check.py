"""Dataset verification: image/label checks run once in worker processes, cached beside the labels as .npz."""

from __future__ import annotations

import hashlib
import io
import os
from multiprocessing.pool import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps
from tqdm import tqdm

from utils.general import LOGGER, NUM_THREADS, TQDM_BAR_FORMAT

IMG_FORMATS = ("bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp")  # lower-case suffixes
CACHE_VERSION = "yolo-labels-v1"  # bump when the cache layout or the checks change; older caches are rebuilt
JPEG_EOI = b"\xff\xd9"  # end-of-image marker
MIN_SIZE = 10  # pixels; anything smaller cannot hold an object at any training size
_ORIENTATION = next(k for k, v in ExifTags.TAGS.items() if v == "Orientation")


def img2label_paths(img_paths: list[str]) -> list[str]:
    """Label path for each image path: the last /images/ becomes /labels/ and the suffix becomes .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    out = []
    for p in img_paths:
        head, sep, tail = str(p).rpartition(sa)
        p = head + sb + tail if sep else str(p)
        out.append(os.path.splitext(p)[0] + ".txt")
    return out


def exif_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of a PIL image after its EXIF orientation is applied."""
    w, h = img.size
    try:
        if img.getexif().get(_ORIENTATION) in (5, 6, 7, 8):  # 90 or 270 degree rotations swap the sides
            return h, w
    except Exception:  # unreadable EXIF: fall back to the stored size
        pass
    return w, h


def imread(path: str | Path) -> np.ndarray:
    """Read an image as 3-channel 8-bit BGR with EXIF orientation applied (OpenCV first, Pillow as fallback)."""
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)  # converts grey, 16-bit and alpha images, honours EXIF
    if im is not None:
        return im
    try:
        with Image.open(path) as pil:
            arr = np.asarray(ImageOps.exif_transpose(pil))
    except Exception as e:
        raise FileNotFoundError(f"Image not readable: {path} ({e})") from e
    if arr.dtype != np.uint8:  # 16-bit or float images: keep the most significant bits
        arr = (arr.astype(np.float64) / max(float(arr.max()), 1.0) * 255).astype(np.uint8) if arr.dtype.kind == "f" \
            else (arr.astype(np.uint32) >> (8 * (arr.dtype.itemsize - 1))).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack((arr,) * 3, -1)
    return np.ascontiguousarray(arr[..., :3][..., ::-1])  # drop alpha, RGB -> BGR


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def jpeg_data_complete(data: bytes) -> bool:
    """True if a JPEG that lacks its end marker still holds all of its image data.

    Bytes appended after complete scan data are ignored by the decoder, while after a cut they are decoded as
    image data; so the picture is complete exactly when it does not depend on what follows the cut.
    """
    body = data.rstrip(b"\xff")  # a lone 0xFF is the start of the missing marker
    try:
        ref = _decode(body + JPEG_EOI)
        return all(np.array_equal(ref, _decode(body + fill * 16 + JPEG_EOI)) for fill in (b"\x55", b"\xaa", b"\x00"))
    except Exception:
        return False


def _check_image(im_file: str) -> tuple[tuple[int, int], str]:
    """Return (width, height) and a note for one image, raising ValueError with the reason when it is unusable."""
    if os.path.getsize(im_file) == 0:
        raise ValueError("zero-byte file")
    try:
        with Image.open(im_file) as im:
            im.verify()  # structure and checksums, without decoding
        with Image.open(im_file) as im:
            fmt, shape = (im.format or "").lower(), exif_size(im)
    except Exception as e:
        raise ValueError(f"not a readable image ({e})") from e
    if fmt not in IMG_FORMATS:
        raise ValueError(f"invalid image format {fmt or 'unknown'}, supported: {', '.join(IMG_FORMATS)}")
    if shape[0] < MIN_SIZE or shape[1] < MIN_SIZE:
        raise ValueError(f"image size {shape[0]}x{shape[1]} is smaller than {MIN_SIZE} pixels")
    try:
        with Image.open(im_file) as im:
            im.draft(im.mode, (im.width // 8, im.height // 8))  # JPEG: decode at 1/8 scale, still reads all data
            im.load()  # full decode: catches truncated PNG, TIFF, BMP, WebP and JPEG data
        return shape, ""
    except Exception as e:
        error = e
    with open(im_file, "rb") as f:
        data = f.read()
    if fmt != "jpeg" or data.endswith(JPEG_EOI):
        raise ValueError(f"image data unreadable ({error})")
    if not jpeg_data_complete(data):
        raise ValueError("truncated JPEG, image data cut short")
    tmp = f"{im_file}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data.rstrip(b"\xff") + JPEG_EOI)  # lossless: only the end marker was missing
    os.replace(tmp, im_file)
    return shape, "JPEG end marker missing, image data complete: restored and saved"


def _parse_labels(lb_file: str) -> tuple[np.ndarray, int]:
    """Return (n, 5) labels and the number of duplicate rows removed, raising ValueError naming the line."""
    with open(lb_file, errors="replace") as f:
        lines = f.read().splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{lb_file} line {i}"
        if len(tokens) != 5:
            raise ValueError(f"{where}: expected 5 columns (class x_center y_center width height), got {len(tokens)}")
        try:
            row = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise ValueError(f"{where}: non-numeric value '{bad}'") from None
        if not all(np.isfinite(row)):
            raise ValueError(f"{where}: non-finite value in {tokens}")
        if row[0] < 0 or row[0] != int(row[0]):
            raise ValueError(f"{where}: class '{tokens[0]}' is not a non-negative integer")
        if min(row[1:]) < 0:
            raise ValueError(f"{where}: negative coordinate in {tokens[1:]}")
        if max(row[1:]) > 1:
            raise ValueError(f"{where}: coordinate > 1 in {tokens[1:]}, expected normalised xywh in [0, 1]")
        rows.append(row)
    lb = np.array(rows, dtype=np.float32).reshape(-1, 5)
    _, first = np.unique(lb, axis=0, return_index=True)
    nd = len(lb) - len(first)
    return (lb[np.sort(first)] if nd else lb), nd


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def verify_image_label(args: tuple[str, str, str]) -> tuple:
    """Check one image/label pair: (im_file, labels or None, (w, h), nm, nf, ne, nc, nd, msg)."""
    im_file, lb_file, prefix = args
    nm = nf = ne = nc = nd = 0
    msgs = []
    try:
        shape, note = _check_image(im_file)
        if note:
            msgs.append(f"{prefix}WARNING ⚠️ {im_file}: {note}")
        if os.path.isfile(lb_file):
            lb, nd = _parse_labels(lb_file)
            if nd:
                msgs.append(f"{prefix}WARNING ⚠️ {lb_file}: {nd} duplicate label rows removed")
            if len(lb):
                nf = 1
            else:
                ne = 1
        else:
            nm, lb = 1, np.zeros((0, 5), dtype=np.float32)
        return im_file, lb, shape, nm, nf, ne, nc, nd, "\n".join(msgs)
    except Exception as e:
        msgs.append(f"{prefix}WARNING ⚠️ {im_file}: ignoring corrupt image/label: {e}")
        return None, None, None, nm, nf, ne, 1, nd, "\n".join(msgs)


def get_hash(paths: list[str]) -> str:
    """Hash of the file list with each file's size and modification time (missing files hash as missing)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def _map(fn, items: list, desc: str, total: int):
    """Yield fn(item) in order from a process pool, or in this process when a pool cannot be started."""
    try:
        pool = Pool(min(NUM_THREADS, max(1, total)))
    except (OSError, AssertionError, ValueError, ImportError) as e:  # e.g. no /dev/shm, or inside a daemon worker
        LOGGER.warning(f"WARNING ⚠️ dataset check: worker processes unavailable ({e}), checking in this process")
        pool = None
    try:
        results = pool.imap(fn, items, chunksize=8) if pool else map(fn, items)
        yield from tqdm(results, desc=desc, total=total, bar_format=TQDM_BAR_FORMAT)
    finally:
        if pool:
            pool.close()
            pool.join()


def scan_labels(im_files: list[str], label_files: list[str], prefix: str = "", desc: str = "") -> dict:
    """Verify every pair in parallel; returns the cache dict of usable images, messages and counts."""
    cache = {"im_files": [], "labels": [], "shapes": [], "msgs": []}
    nm = nf = ne = nc = nd = 0
    jobs = [(im, lb, prefix) for im, lb in zip(im_files, label_files)]
    bar = _map(verify_image_label, jobs, desc=f"{prefix}Scanning {desc}...", total=len(jobs))
    for im_file, lb, shape, nm_f, nf_f, ne_f, nc_f, nd_f, msg in bar:
        nm, nf, ne, nc, nd = nm + nm_f, nf + nf_f, ne + ne_f, nc + nc_f, nd + nd_f
        if im_file:
            cache["im_files"].append(im_file)
            cache["labels"].append(lb)
            cache["shapes"].append(shape)
        if msg:
            cache["msgs"].append(msg)
    for msg in cache["msgs"]:
        LOGGER.warning(msg)
    cache["shapes"] = np.array(cache["shapes"], dtype=np.int64).reshape(-1, 2)
    cache["results"] = (nf, nm, ne, nc, nd, len(im_files))
    return cache


def summary(results: tuple[int, ...]) -> str:
    """One-line summary of scan counts."""
    nf, nm, ne, nc, nd, n = results
    return f"{n} images: {nf} found, {nm} missing, {ne} empty, {nc} corrupt, {nd} duplicates removed"


def save_cache(path: Path, cache: dict, hash_: str, prefix: str = "") -> bool:
    """Write the cache as a pickle-free .npz (atomic rename); warns and returns False when the folder is read-only."""
    labels = cache["labels"]
    arrays = {
        "version": np.array(CACHE_VERSION),
        "hash": np.array(hash_),
        "im_files": np.array(cache["im_files"], dtype=str),
        "shapes": np.asarray(cache["shapes"], dtype=np.int64).reshape(-1, 2),
        "counts": np.array([len(x) for x in labels], dtype=np.int64),
        "labels": np.concatenate(labels, 0).astype(np.float32) if labels else np.zeros((0, 5), np.float32),
        "msgs": np.array(cache["msgs"], dtype=str),
        "results": np.array(cache["results"], dtype=np.int64),
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        LOGGER.warning(f"{prefix}WARNING ⚠️ cache directory {path.parent} is not writeable, cache not saved: {e}")
        tmp.unlink(missing_ok=True)
        return False
    LOGGER.info(f"{prefix}New cache created: {path}")
    return True


def load_cache(path: Path, hash_: str) -> dict | None:
    """Read a cache written by save_cache; None when missing, unreadable, from another version or stale."""
    try:
        with np.load(path, allow_pickle=False) as z:  # allow_pickle=False: a cache file can never run code
            if str(z["version"]) != CACHE_VERSION or str(z["hash"]) != hash_:
                return None
            counts, labels = z["counts"], z["labels"]
            im_files, shapes = [str(x) for x in z["im_files"]], z["shapes"]
            if not (len(im_files) == len(counts) == len(shapes) and counts.sum() == len(labels)):
                return None
            return {
                "im_files": im_files,
                "labels": np.split(labels.reshape(-1, 5), np.cumsum(counts)[:-1]) if len(counts) else [],
                "shapes": shapes.reshape(-1, 2),
                "msgs": [str(x) for x in z["msgs"]],
                "results": tuple(int(x) for x in z["results"]),
            }
    except Exception:  # missing, truncated, pickled or otherwise foreign files are simply rebuilt
        return None
