"""Uploads: images decode as detect.py reads them; non-images get 415 and oversized images 413 before decoding."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from serving.uploads import UploadError, decode_image, image_header
from tests.fixtures.inference import shapes_image
from tests.fixtures.serving import encode


def png_header_only(w: int, h: int) -> bytes:
    """A PNG signature and IHDR chunk declaring w x h RGB pixels, and a tiny IDAT: a decompression-bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tif"])
def test_images_decode_as_opencv_reads_them(ext, tmp_path):
    im = shapes_image(64, 96, seed=1)
    data = encode(im, ext)
    (tmp_path / f"a{ext}").write_bytes(data)
    got = decode_image(data, max_pixels=64 * 96)
    assert np.array_equal(got, cv2.imread(str(tmp_path / f"a{ext}")))


def gif() -> bytes:
    """A real 8x8 GIF: an image, but of a format the server does not take."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize("data, why", [(b"", "empty"), (b"hello, not an image", "not a readable image"),
                                       (gif(), "GIF images are not served")])
def test_non_images_get_415(data, why):
    with pytest.raises(UploadError) as e:
        decode_image(data, max_pixels=10**6, name="x.bin")
    assert e.value.status == 415 and why in e.value.detail and "x.bin" in e.value.detail


def test_too_many_pixels_get_413_from_the_header_alone():
    data = png_header_only(12000, 12000)  # 144 MP declared; decoding it would take 432 MB
    assert len(data) < 200 and image_header(data)[1:] == (12000, 12000)
    with pytest.raises(UploadError) as e:
        decode_image(data, max_pixels=50_000_000)
    assert e.value.status == 413 and "12000x12000" in e.value.detail
    with pytest.raises(UploadError) as e:  # beyond twice Pillow's own limit: refused while reading the header
        image_header(png_header_only(100_000, 100_000))
    assert e.value.status == 413


def test_the_limit_is_inclusive_and_a_broken_body_gets_415():
    data = encode(shapes_image(48, 50), ".png")
    assert decode_image(data, max_pixels=2400).shape == (48, 50, 3)
    with pytest.raises(UploadError) as e:
        decode_image(data, max_pixels=2399)
    assert e.value.status == 413
    with pytest.raises(UploadError) as e:  # a valid header over a body cut short: OpenCV cannot decode it
        decode_image(png_header_only(50, 48), max_pixels=2400)
    assert e.value.status == 415 and "cannot decode" in e.value.detail
