"""Dataset verification: image/label checks run once in worker processes, cached beside the labels as .npz."""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from multiprocessing.pool import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps
from tqdm import tqdm

from utils import IMG_FORMATS, LOGGER, NUM_THREADS, TQDM_BAR_FORMAT
from utils.general import segments2boxes

CACHE_VERSION = "yolo-labels-v2"  # bump when the layout or the checks change (v2: polygons); older caches are rebuilt
JPEG_EOI = b"\xff\xd9"  # end-of-image marker
MIN_SIZE = 10  # pixels; anything smaller cannot hold an object at any training size
# a header declaring more pixels is refused before decoding (a decompression bomb: a few KB on disk, GBs decoded);
# 2**27 = 134 M pixels, e.g. 11585 x 11585, 400 MB as BGR; below Pillow's own refusal (179 M) so ours speaks first
MAX_IMAGE_PIXELS = 1 << 27
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


class ImageError(ValueError):
    """An image that cannot or must not be decoded; the message names the file and the reason."""

    def __init__(self, name: str | Path, reason: str):
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def opencv_reason(e: Exception) -> str:
    """The last line of an OpenCV error (the readable part of its multi-line C++ message)."""
    lines = str(e).strip().splitlines()
    return lines[-1].strip() if lines else type(e).__name__


def header_size(source: str | Path | io.BytesIO, name: str | Path | None = None) -> tuple[int, int] | None:
    """(width, height) as the image header declares it, read without decoding; None if Pillow cannot identify it.

    Raises ImageError when the header declares more than MAX_IMAGE_PIXELS, so that such a file costs no memory.
    """
    name = name or source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides, not Pillow's
            with Image.open(source) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:  # over Pillow's own refusal, which is above our limit
        raise ImageError(name, f"its header declares a picture over the limit of {MAX_IMAGE_PIXELS:,} pixels "
                               f"(Pillow: {e}); not decoded") from None
    except Exception:  # not identified by Pillow: the decoders decide
        return None
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageError(name, f"its header declares {w}x{h} = {w * h:,} pixels, over the limit of "
                               f"{MAX_IMAGE_PIXELS:,} (a decompression bomb?); not decoded")
    return w, h


def imread(path: str | Path) -> np.ndarray:
    """Read an image as 3-channel 8-bit BGR with EXIF orientation applied (OpenCV first, Pillow as fallback).

    Raises ImageError naming the file when it is not a readable image or its header declares too many pixels.
    """
    header_size(path)
    try:
        im = cv2.imread(str(path), cv2.IMREAD_COLOR)  # converts grey, 16-bit and alpha images, honours EXIF
    except cv2.error as e:  # OpenCV's own limits (pixels, file size) raise rather than return None
        raise ImageError(path, f"OpenCV refused to decode it ({opencv_reason(e)})") from None
    if im is not None:
        return im
    try:
        with Image.open(path) as pil:
            arr = np.asarray(ImageOps.exif_transpose(pil))
    except Exception as e:
        raise ImageError(path, f"OpenCV could not read it as an image, nor Pillow ({e})") from e
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


def check_image(im_file: str) -> tuple[tuple[int, int], str]:
    """Return (width, height) and a note for one image, raising ValueError with the reason when it is unusable."""
    if os.path.getsize(im_file) == 0:
        raise ValueError("zero-byte file")
    try:
        header_size(im_file)  # a decompression bomb is refused before Pillow decodes anything
    except ImageError as e:
        raise ValueError(e.reason) from None
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


def _class_index(token: str) -> int | None:
    """The class index a label token names, or None when it is not a non-negative integer."""
    try:
        c = float(token)
    except ValueError:
        return None
    return int(c) if math.isfinite(c) and c >= 0 and c == int(c) else None


def _parse_line(tokens: list[str], where: str) -> tuple[list[float], np.ndarray | None]:
    """Coordinates of one label line as ([xc, yc, w, h], polygon (k, 2) or None), raising ValueError naming it."""
    n = len(tokens)
    if n != 5 and (n < 7 or n % 2 == 0):
        raise ValueError(f"{where}: expected 5 columns (class x_center y_center width height) or a polygon "
                         f"(class x1 y1 x2 y2 x3 y3 ..., an even number of coordinates), got {n} columns")
    try:
        values = [float(t) for t in tokens[1:]]
    except ValueError:
        bad = next(t for t in tokens[1:] if not _is_float(t))
        raise ValueError(f"{where}: non-numeric value '{bad}'") from None
    if not all(map(math.isfinite, values)):
        raise ValueError(f"{where}: non-finite value in {tokens[1:]}")
    polygon = None
    if n > 5:  # a polygon counts as the box it spans; the box is checked as a box line would be
        polygon = np.array(values, dtype=np.float32).reshape(-1, 2)
        values = segments2boxes([polygon])[0].tolist()
        where += " (polygon extent as xywh)"
    if min(values) < 0:
        raise ValueError(f"{where}: negative coordinate in {_short(values)}")
    if max(values) > 1:
        raise ValueError(f"{where}: coordinate > 1 in {_short(values)}, expected normalised values in [0, 1]")
    return values, polygon


def _short(values: list[float]) -> list[str]:
    return [f"{v:g}" for v in values]


def _parse_labels(lb_file: str) -> tuple[np.ndarray, list[np.ndarray], int, list[str]]:
    """Parse a label file: (n, 5) class-xywh labels, segments, duplicate rows removed, bad class tokens skipped.

    segments is [] when no line is a polygon; otherwise one float32 (k, 2) polygon per label, (0, 2) for box lines.
    A line whose class is not a non-negative integer is skipped (its token is returned); any other fault raises
    ValueError naming the line.
    """
    with open(lb_file, errors="replace") as f:
        lines = f.read().splitlines()
    rows, polygons, bad_classes, seen = [], [], [], set()
    nd = 0
    for i, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        values, polygon = _parse_line(tokens, f"{lb_file} line {i}")
        c = _class_index(tokens[0])
        if c is None:
            bad_classes.append(tokens[0])
            continue
        key = (c, *np.float32(values).tolist(), *(polygon.ravel().tolist() if polygon is not None else ()))
        if key in seen:
            nd += 1
            continue
        seen.add(key)
        rows.append([c, *values])
        polygons.append(polygon)
    lb = np.array(rows, dtype=np.float32).reshape(-1, 5)
    empty = np.zeros((0, 2), dtype=np.float32)
    segments = [empty if p is None else p for p in polygons] if any(p is not None for p in polygons) else []
    return lb, segments, nd, bad_classes


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def verify_image_label(args: tuple[str, str, str]) -> tuple:
    """Check one image/label pair: (im_file, labels or None, (w, h), segments, nm, nf, ne, nc, nd, msg)."""
    im_file, lb_file, prefix = args
    nm = nf = ne = nc = nd = 0
    msgs = []
    try:
        shape, note = check_image(im_file)
        if note:
            msgs.append(f"{prefix}WARNING ⚠️ {im_file}: {note}")
        segments = []
        if os.path.isfile(lb_file):
            lb, segments, nd, bad = _parse_labels(lb_file)
            if bad:
                msgs.append(f"{prefix}WARNING ⚠️ {lb_file}: class {sorted(set(bad))} is not a non-negative integer, "
                            f"{len(bad)} label line(s) ignored, the image keeps its other {len(lb)} label(s)")
            if nd:
                msgs.append(f"{prefix}WARNING ⚠️ {lb_file}: {nd} duplicate label rows removed")
            if len(lb):
                nf = 1
            else:
                ne = 1
        else:
            nm, lb = 1, np.zeros((0, 5), dtype=np.float32)
        return im_file, lb, shape, segments, nm, nf, ne, nc, nd, "\n".join(msgs)
    except Exception as e:
        msgs.append(f"{prefix}WARNING ⚠️ {im_file}: ignoring corrupt image/label: {e}")
        return None, None, None, None, nm, nf, ne, 1, nd, "\n".join(msgs)


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


def pool_imap(fn, items: list, desc: str, total: int):
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
    cache = {"im_files": [], "labels": [], "shapes": [], "segments": [], "msgs": []}
    nm = nf = ne = nc = nd = 0
    jobs = [(im, lb, prefix) for im, lb in zip(im_files, label_files)]
    bar = pool_imap(verify_image_label, jobs, desc=f"{prefix}Scanning {desc}...", total=len(jobs))
    for im_file, lb, shape, segments, nm_f, nf_f, ne_f, nc_f, nd_f, msg in bar:
        nm, nf, ne, nc, nd = nm + nm_f, nf + nf_f, ne + ne_f, nc + nc_f, nd + nd_f
        if im_file:
            cache["im_files"].append(im_file)
            cache["labels"].append(lb)
            cache["shapes"].append(shape)
            cache["segments"].append(segments)
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
    labels, segments = cache["labels"], cache["segments"]
    # polygons flattened like the labels: per image a flag, per label a point count, then all points
    has_segments = np.array([len(s) > 0 for s in segments], dtype=bool)
    seg_counts = [len(p) for lb, s in zip(labels, segments) for p in (s or [()] * len(lb))]
    points = [p for s in segments for p in s if len(p)]
    arrays = {
        "version": np.array(CACHE_VERSION),
        "hash": np.array(hash_),
        "im_files": np.array(cache["im_files"], dtype=str),
        "shapes": np.asarray(cache["shapes"], dtype=np.int64).reshape(-1, 2),
        "counts": np.array([len(x) for x in labels], dtype=np.int64),
        "labels": np.concatenate(labels, 0).astype(np.float32) if labels else np.zeros((0, 5), np.float32),
        "has_segments": has_segments,
        "segment_counts": np.array(seg_counts, dtype=np.int64),
        "segment_points": np.concatenate(points, 0).astype(np.float32) if points else np.zeros((0, 2), np.float32),
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
            has_segments, seg_counts, points = z["has_segments"], z["segment_counts"], z["segment_points"]
            if not (len(im_files) == len(counts) == len(shapes) == len(has_segments) and counts.sum() == len(labels)
                    and len(seg_counts) == len(labels) and seg_counts.sum() == len(points)):
                return None
            split = np.cumsum(counts)[:-1]
            polygons = np.split(points.reshape(-1, 2), np.cumsum(seg_counts)[:-1]) if len(seg_counts) else []
            per_image = np.split(np.arange(len(polygons)), split) if len(counts) else []
            return {
                "im_files": im_files,
                "labels": np.split(labels.reshape(-1, 5), split) if len(counts) else [],
                "shapes": shapes.reshape(-1, 2),
                "segments": [[polygons[j] for j in idx] if flag else [] for idx, flag in zip(per_image, has_segments)],
                "msgs": [str(x) for x in z["msgs"]],
                "results": tuple(int(x) for x in z["results"]),
            }
    except Exception:  # missing, truncated, pickled or otherwise foreign files are simply rebuilt
        return None
