"""A decompression bomb (a small file whose header claims a huge picture) is each reader's warning, never a crash."""

import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detect
from models.backends import AutoShape, DetectMultiBackend
from tests.fixtures.inference import make_checkpoint, shapes_image, write_video
from tests.test_downloads import Server
from utils import dataset_check
from utils.classify_data import ClassificationDataset
from utils.dataloaders import LoadImagesAndLabels
from utils.dataset_check import ImageError, header_size, imread
from utils.sources import LoadImages, LoadStreams, load_image_url


def bomb_png(path: Path, w: int = 40000, h: int = 40000) -> Path:
    """A valid PNG header declaring w x h grey pixels, with only its first rows of data: a few KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"".join(b"\x00" + bytes(w) for _ in range(16)), 9)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """One good JPEG beside two bombs: one over OpenCV's own limit, one under it (OpenCV would decode 432 MB)."""
    d = tmp_path / "images"
    d.mkdir()
    cv2.imwrite(str(d / "good.jpg"), shapes_image(96, 128, seed=3))
    bomb_png(d / "bomb.png")
    bomb_png(d / "big.png", 12000, 12000)
    return d


def test_header_is_refused_before_decoding(folder):
    assert header_size(folder / "good.jpg") == (128, 96)
    with pytest.raises(ImageError, match=r"bomb.png: its header declares a picture over the limit .*1600000000"):
        imread(folder / "bomb.png")
    with pytest.raises(ImageError, match=r"big.png: its header declares 12000x12000 = 144,000,000 pixels, over"):
        imread(folder / "big.png")
    assert imread(folder / "good.jpg").shape == (96, 128, 3)
    (folder / "text.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="text.jpg: OpenCV could not read it as an image"):
        imread(folder / "text.jpg")


def test_load_images_skips_bombs_with_a_warning(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        got = [Path(p).name for p, *_ in LoadImages(str(folder), img_size=64)]
    assert got == ["good.jpg"]
    assert "skipping" in caplog.text and "bomb.png: its header declares a picture over the limit" in caplog.text
    assert "big.png: its header declares 12000x12000" in caplog.text
    with pytest.raises(ImageError, match="bomb.png"):  # the only source: its own error, not a silent empty run
        list(LoadImages(str(folder / "bomb.png"), img_size=64))


def test_detect_processes_the_good_image_beside_a_bomb(folder, tmp_path, caplog):
    weights = make_checkpoint(tmp_path / "tiny.pt")
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        save_dir = detect.run(weights=weights, source=str(folder), imgsz=64, project=str(tmp_path / "runs"),
                              name="exp", device="cpu")
    assert sorted(p.name for p in Path(save_dir).iterdir() if p.is_file()) == ["good.jpg"]
    assert "bomb.png: its header declares" in caplog.text


def test_autoshape_skips_a_bomb_in_a_batch(folder, tmp_path, caplog):
    model = AutoShape(DetectMultiBackend(make_checkpoint(tmp_path / "tiny.pt")))
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        results = model([str(folder / "good.jpg"), str(folder / "bomb.png")], size=64)
    assert results.files == ["good.jpg"] and len(results.pred) == 1
    assert "bomb.png: its header declares" in caplog.text
    with pytest.raises(ImageError, match="bomb.png"):
        model(str(folder / "bomb.png"), size=64)


def test_image_url_bomb_and_oversized_response_are_refused(folder, monkeypatch):
    server = Server()
    try:
        server.files["/bomb.png"] = (folder / "bomb.png").read_bytes()
        server.files["/good.jpg"] = (folder / "good.jpg").read_bytes()
        server.files["/huge.bin"] = bytes(2048)
        assert load_image_url(f"{server.url}/good.jpg").shape == (96, 128, 3)
        with pytest.raises(ImageError, match=r"bomb.png: its header declares a picture over"):
            load_image_url(f"{server.url}/bomb.png")
        monkeypatch.setattr("utils.sources.MAX_URL_BYTES", 1024)
        with pytest.raises(ImageError, match="huge.bin: the response is larger than"):
            load_image_url(f"{server.url}/huge.bin")
    finally:
        server.close()


def test_streams_list_skips_a_stream_it_must_not_decode(folder, tmp_path, caplog):
    video = write_video(tmp_path / "clip.mp4", n=5)
    listing = tmp_path / "list.streams"
    listing.write_text(f"{folder / 'big.png'}\n{video}\n")
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        streams = LoadStreams(str(listing), img_size=64)
    assert streams.sources == [str(video)] and len(streams.imgs) == 1
    assert "big.png: its frames are 12000x12000" in caplog.text
    for t in streams.threads:
        t.join(5)


def test_classification_dataset_skips_a_bomb(tmp_path, caplog):
    for cls in ("a", "b"):
        d = tmp_path / "train" / cls
        d.mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(d / f"{i}.jpg"), shapes_image(64, 64, seed=i))
    bomb_png(tmp_path / "train" / "a" / "bomb.png")
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        ds = ClassificationDataset(tmp_path / "train", imgsz=64)
    assert len(ds) == 4 and all(not f.endswith("bomb.png") for f, _ in ds.samples)
    assert "bomb.png" in caplog.text and "its header declares a picture over the limit" in caplog.text
    assert isinstance(ds[0][0], torch.Tensor)


def test_training_dataset_skips_a_bomb_under_opencvs_limit(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.jpg"), shapes_image(64, 64, seed=i))
        (labels / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    bomb_png(images / "big.png", 12000, 12000)
    (labels / "big.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    ds = LoadImagesAndLabels(str(images), img_size=64, batch_size=2)
    assert sorted(Path(f).name for f in ds.im_files) == ["0.jpg", "1.jpg"]
    assert np.asarray(ds[0][0]).shape[0] == 3


def test_the_limit_is_one_setting(folder, monkeypatch):
    monkeypatch.setattr(dataset_check, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match="good.jpg: its header declares 128x96"):
        imread(folder / "good.jpg")
