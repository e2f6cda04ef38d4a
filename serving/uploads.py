"""Uploaded images: refused before decoding when they are not an image or would decode to too many pixels."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats both Pillow (which reads the header without decoding) and OpenCV (which decodes, as detect.py does) read
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")


class UploadError(Exception):
    """An upload the server refuses: the HTTP status to answer and why."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def image_header(data: bytes, name: str = "upload") -> tuple[str, int, int]:
    """(format, width, height) read from the header alone; UploadError 415 when it is no image format served."""
    if not data:
        raise UploadError(415, f"{name}: empty file, expected an image ({', '.join(FORMATS)})")
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: the caller applies the server's limit instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # lazy: parses the header, decodes nothing
                fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: too large whatever the server allows
        raise UploadError(413, f"{name}: {e}") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UploadError(415, f"{name}: not a readable image ({', '.join(FORMATS)})") from e
    if fmt not in FORMATS:
        raise UploadError(415, f"{name}: {fmt} images are not served; send one of {', '.join(FORMATS)}")
    return fmt, w, h


def decode_image(data: bytes, max_pixels: int, name: str = "upload") -> np.ndarray:
    """A BGR image from an upload's bytes, as detect.py reads files; 413 above max_pixels, checked before decoding."""
    _, w, h = image_header(data, name)
    if w * h > max_pixels:
        raise UploadError(413, f"{name}: {w}x{h} is {w * h} pixels, more than this server's limit of {max_pixels}")
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # honours EXIF orientation, like imread
    if im is None:
        raise UploadError(415, f"{name}: its {w}x{h} header reads but OpenCV cannot decode the image")
    if im.shape[0] * im.shape[1] > max_pixels:  # a header that understates the size (should never happen)
        raise UploadError(413, f"{name}: decodes to {im.shape[1]}x{im.shape[0]}, over {max_pixels} pixels")
    return im
