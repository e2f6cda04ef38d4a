"""Verification of image/label pairs and the label cache, on a fixture folder of broken files."""

import io
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import utils.dataset_check as dc
from utils.dataloaders import LoadImagesAndLabels

BROKEN = Path(__file__).parent / "fixtures" / "broken_dataset"
GOOD = ["background.jpg", "bitmap.bmp", "class_high.jpg", "duplicate_rows.jpg", "empty_label.jpg", "eoi_missing.jpg",
        "exif_rotated.jpg", "float_class.jpg", "good.jpg", "good_png.png", "gray.png", "gray16.png", "rgba.png",
        "tiff.tif", "upper_case.JPG", "webp.webp"]
CORRUPT = {  # file: words the warning must contain
    "zero_byte.jpg": "zero-byte",
    "tiny.png": "smaller than 10 pixels",
    "not_image.jpg": "not a readable image",
    "cut_short.jpg": "cut short",
    "wrong_columns.jpg": "expected 5 columns",
    "non_numeric.jpg": "non-numeric value 'abc'",
    "negative.jpg": "negative coordinate",
    "out_of_bounds.jpg": "coordinate > 1",
    "nan_value.jpg": "non-finite",
}


@pytest.fixture
def broken(tmp_path):
    """A private copy of the broken dataset (verification restores files and writes a cache)."""
    shutil.copytree(BROKEN, tmp_path / "broken")
    return tmp_path / "broken" / "images" / "train"


def test_broken_dataset_every_problem_reported_every_good_image_loaded(broken, logs):
    ds = LoadImagesAndLabels(str(broken), img_size=64, batch_size=4)
    assert sorted(Path(f).name for f in ds.im_files) == sorted(GOOD)
    assert len(ds) == len(GOOD)
    text = "\n".join(logs)
    for name, reason in CORRUPT.items():
        line = next((m for m in logs if name in m and "corrupt" in m), "")
        assert reason in line, f"{name}: expected '{reason}' in a warning, got {line!r}"
    assert "duplicate_rows.txt: 1 duplicate label rows removed" in text
    assert "eoi_missing.jpg: JPEG end marker missing, image data complete: restored and saved" in text
    assert "25 images: 14 found, 1 missing, 1 empty, 9 corrupt, 1 duplicates removed" in text
    # a bad class costs its line only: one warning for the file, naming it and the class
    bad = [m for m in logs if "float_class" in m]
    assert len(bad) == 1 and "float_class.txt: class ['1.5'] is not a non-negative integer" in bad[0]
    assert "1 label line(s) ignored, the image keeps its other 1 label(s)" in bad[0]
    assert "notes.txt" not in text  # files without an image suffix are not part of the dataset
    for i in range(len(ds)):  # every usable image really loads as 3-channel uint8
        im, labels, path, _ = ds[i]
        assert im.shape == (3, 64, 64) and im.dtype == torch.uint8 and labels.shape[1] == 6


def test_broken_dataset_details(broken):
    ds = LoadImagesAndLabels(str(broken), img_size=64, batch_size=4)
    by_name = {Path(f).name: i for i, f in enumerate(ds.im_files)}
    assert len(ds.labels[by_name["duplicate_rows.jpg"]]) == 2
    assert len(ds.labels[by_name["background.jpg"]]) == 0 and len(ds.labels[by_name["empty_label.jpg"]]) == 0
    assert tuple(ds.shapes[by_name["exif_rotated.jpg"]]) == (48, 64)  # EXIF orientation 6: width and height swap
    im, (h0, w0), _ = ds.load_image(by_name["exif_rotated.jpg"])
    assert (h0, w0) == (64, 48)
    assert tuple(ds.shapes[by_name["bitmap.bmp"]]) == (32, 24)
    for name, square in (("gray.png", 76), ("gray16.png", 76), ("rgba.png", (0, 0, 255))):
        im, _, _ = ds.load_image(by_name[name])  # 64x48 fits img_size 64: not resized, pixels exact
        assert im.shape == (48, 64, 3) and im.dtype == np.uint8
        np.testing.assert_allclose(im[20, 24], np.broadcast_to(square, 3), atol=1)  # BGR of the drawn red square
    restored = (broken / "eoi_missing.jpg").read_bytes()
    assert restored.endswith(b"\xff\xd9")
    with Image.open(io.BytesIO(restored)) as pil:
        pil.load()  # decodes without a truncation error now


def test_check_classes_drops_only_the_line_with_class_out_of_range(broken, logs):
    ds = LoadImagesAndLabels(str(broken), img_size=64, batch_size=4, rect=True)
    n, shapes = len(ds), ds.batch_shapes.copy()
    i = [Path(f).name for f in ds.im_files].index("class_high.jpg")
    assert ds.check_classes(6) == 1
    assert len(ds) == n and ds.im_files[i].endswith("class_high.jpg")  # the image stays
    np.testing.assert_allclose(ds.labels[i], [[0, 0.4375, 0.5, 0.375, 0.5]])  # with its good label
    warned = [m for m in logs if "exceeds nc" in m]
    assert len(warned) == 1 and "class_high.txt: class [7] exceeds nc=6" in warned[0]
    np.testing.assert_array_equal(ds.batch_shapes, shapes)
    assert ds.check_classes(6) == 0


def test_no_usable_image_names_the_path(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    with pytest.raises(FileNotFoundError, match="No images found in .*images"):
        LoadImagesAndLabels(str(d))
    (d / "a.jpg").write_bytes(b"")
    (d / "b.png").write_text("not a png")
    with pytest.raises(FileNotFoundError, match=r"No usable images in .*images.*2 corrupt"):
        LoadImagesAndLabels(str(d))
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        LoadImagesAndLabels(str(tmp_path / "does-not-exist"))


# cache --------------------------------------------------------------------------------------------------------


def test_cache_round_trip_and_pickle_free(broken, monkeypatch, logs):
    first = LoadImagesAndLabels(str(broken), img_size=64)
    cache_file = broken.parent.parent / "labels" / "train.cache"
    assert cache_file.is_file()
    with np.load(cache_file, allow_pickle=False) as z:  # plain arrays only
        assert str(z["version"]) == dc.CACHE_VERSION and len(str(z["hash"])) == 64

    def no_scan(*args, **kwargs):
        raise AssertionError("cache should have been used")

    monkeypatch.setattr("utils.dataloaders.scan_labels", no_scan)
    logs.clear()
    second = LoadImagesAndLabels(str(broken), img_size=64)
    assert second.im_files == first.im_files
    np.testing.assert_array_equal(second.shapes, first.shapes)
    for a, b in zip(second.labels, first.labels):
        np.testing.assert_array_equal(a, b)
    assert any("(cached)" in m for m in logs)
    assert any("cut_short.jpg" in m for m in logs)  # warnings are repeated from the cache


def test_cache_invalidated_by_changed_label(broken):
    LoadImagesAndLabels(str(broken), img_size=64)
    lb = broken.parent.parent / "labels" / "train" / "good.txt"
    lb.write_text(lb.read_text() + "3 0.5 0.5 0.1 0.1\n")
    ds = LoadImagesAndLabels(str(broken), img_size=64)
    i = [Path(f).name for f in ds.im_files].index("good.jpg")
    assert len(ds.labels[i]) == 3 and ds.labels[i][-1, 0] == 3


def test_cache_invalidated_by_new_image(broken):
    LoadImagesAndLabels(str(broken), img_size=64)
    shutil.copy(broken / "good.jpg", broken / "good_copy.jpg")
    ds = LoadImagesAndLabels(str(broken), img_size=64)
    assert len(ds) == len(GOOD) + 1


def test_cache_from_other_version_or_pickle_is_rebuilt(broken, tmp_path, monkeypatch):
    ds = LoadImagesAndLabels(str(broken), img_size=64)
    cache_file = broken.parent.parent / "labels" / "train.cache"
    hash_ = dc.get_hash(ds.label_files + ds.im_files)
    assert dc.load_cache(cache_file, "other-hash") is None
    monkeypatch.setattr(dc, "CACHE_VERSION", "yolo-labels-v0")
    assert dc.load_cache(cache_file, hash_) is None  # written by another version: never trusted
    monkeypatch.undo()

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    cache_file.write_bytes(pickle.dumps({"version": dc.CACHE_VERSION, "payload": Exploit()}))
    ds2 = LoadImagesAndLabels(str(broken), img_size=64)
    assert not marker.exists()
    assert len(ds2) == len(GOOD)
    with np.load(cache_file, allow_pickle=False) as z:  # rebuilt as a proper cache
        assert str(z["version"]) == dc.CACHE_VERSION


def test_scan_works_without_worker_processes(broken, monkeypatch, logs):
    def no_pool(*args, **kwargs):
        raise OSError("no /dev/shm")

    monkeypatch.setattr(dc, "Pool", no_pool)
    ds = LoadImagesAndLabels(str(broken), img_size=64)
    assert len(ds) == len(GOOD)
    assert any("worker processes unavailable" in m for m in logs)


def test_get_hash_tracks_content_changes(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("0 0.5 0.5 0.1 0.1\n")
    h1 = dc.get_hash([str(f)])
    f.write_text("0 0.5 0.5 0.1 0.2\n")
    assert dc.get_hash([str(f)]) != h1
    assert dc.get_hash([str(f), str(tmp_path / "missing.txt")]) != dc.get_hash([str(f)])


# helpers ------------------------------------------------------------------------------------------------------


def test_img2label_paths_replaces_last_images_folder():
    assert dc.img2label_paths(["/d/images/x/images/train/a.b.jpg"]) == ["/d/images/x/labels/train/a.b.txt"]
    assert dc.img2label_paths(["/d/pics/a.png"]) == ["/d/pics/a.txt"]  # no images/ folder: label beside the image


def test_jpeg_data_complete_tells_missing_marker_from_cut():
    rng = np.random.default_rng(0)
    pixels = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    assert dc.jpeg_data_complete(data[:-2])  # only the end marker missing
    assert dc.jpeg_data_complete(data[:-1])  # half a marker left
    assert not dc.jpeg_data_complete(data[: len(data) * 3 // 4])
    assert not dc.jpeg_data_complete(data[:100])  # cut inside the header


def test_verify_image_label_reports_missing_file(tmp_path):
    im_file, lb, shape, segments, nm, nf, ne, nc, nd, msg = dc.verify_image_label((str(tmp_path / "x.jpg"), "x.txt",
                                                                                    "p: "))
    assert im_file is None and nc == 1 and "x.jpg" in msg and msg.startswith("p: ")


# label lines: polygons and bad classes ------------------------------------------------------------------------


def test_parse_labels_polygons_mixed_with_boxes(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("0 0.1 0.2 0.5 0.2 0.3 0.8\n1 0.6 0.5 0.2 0.4\n0 0.1 0.2 0.5 0.2 0.3 0.8\n")
    lb, segments, nd, bad = dc._parse_labels(str(f))
    np.testing.assert_allclose(lb, [[0, 0.3, 0.5, 0.4, 0.6], [1, 0.6, 0.5, 0.2, 0.4]], atol=1e-6)
    assert nd == 1 and bad == []  # the repeated polygon is a duplicate
    assert [s.shape for s in segments] == [(3, 2), (0, 2)] and segments[0].dtype == np.float32
    np.testing.assert_allclose(segments[0], [[0.1, 0.2], [0.5, 0.2], [0.3, 0.8]])
    f.write_text("0 0.5 0.5 0.2 0.2\n")
    assert dc._parse_labels(str(f))[1] == []  # box-only file: no segments at all


@pytest.mark.parametrize("line, reason", [
    ("0 0.1 0.2 0.3 0.4 0.5", "got 6 columns"),
    ("0 0.1 0.2 0.3 0.4 0.5 0.6 0.7", "an even number of coordinates"),
    ("0 0.1 0.2 1.5 0.2 0.3 0.8", "line 2 (polygon extent as xywh): coordinate > 1"),
])
def test_parse_labels_rejects_malformed_polygons(tmp_path, line, reason):
    f = tmp_path / "a.txt"
    f.write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(reason)):
        dc._parse_labels(str(f))


def test_parse_labels_skips_bad_class_lines_only(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("-1 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n1.5 0.5 0.5 0.2 0.2\nabc 0.5 0.5 0.2 0.2\n"
                 "3.0 0.1 0.1 0.1 0.1\n")
    lb, segments, nd, bad = dc._parse_labels(str(f))
    np.testing.assert_allclose(lb, [[2, 0.5, 0.5, 0.2, 0.2], [3, 0.1, 0.1, 0.1, 0.1]])
    assert bad == ["-1", "1.5", "abc"] and nd == 0
