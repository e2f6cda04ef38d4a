"""LoadImages over files, folders, globs, .txt lists and videos; LoadStreams failing fast and clearly when offline."""

import logging
import time

import cv2
import numpy as np
import pytest

from tests.fixtures.inference import shapes_image, write_video
from utils.sources import LoadImages, LoadStreams, is_stream_source, load_image_url


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    cv2.imwrite(str(d / "a.jpg"), shapes_image(64, 96, seed=1))
    cv2.imwrite(str(d / "b.png"), shapes_image(80, 80, seed=2))
    return d


def test_image_yields_letterboxed_rgb_chw_and_original(folder):
    path, im, im0, cap, s = next(iter(LoadImages(str(folder / "a.jpg"), img_size=64, stride=32, auto=False)))
    assert path.endswith("a.jpg") and cap is None and s.startswith("image 1/1 ")
    assert im0.shape == (64, 96, 3) and im.shape == (3, 64, 64) and im.dtype == np.uint8
    # the letterbox scales 96 -> 64 wide, so the middle row of im is im0's middle row, resized, channels reversed
    expected = cv2.resize(im0, (64, 43), interpolation=cv2.INTER_LINEAR)[21, :, ::-1].T
    assert np.abs(im[:, 10 + 21].astype(int) - expected.astype(int)).max() <= 1
    auto = next(iter(LoadImages(str(folder / "a.jpg"), img_size=64, stride=32, auto=True)))[1]
    assert auto.shape == (3, 64, 64)  # 43 rows padded to the next multiple of 32


def test_folder_glob_and_txt_list_with_bad_entries(folder, tmp_path, caplog):
    assert [p.split("/")[-1] for p, *_ in LoadImages(str(folder), img_size=64)] == ["a.jpg", "b.png"]
    assert [p.split("/")[-1] for p, *_ in LoadImages(str(folder / "*.png"), img_size=64)] == ["b.png"]
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.md").write_text("# not an image")
    listing = tmp_path / "list.txt"
    listing.write_text("images/a.jpg\nimages/missing.jpg\nimages/broken.jpg\n" + str(folder / "b.png") + "\n")
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        got = [p.split("/")[-1] for p, *_ in LoadImages(str(listing), img_size=64)]
        folder_got = [p.split("/")[-1] for p, *_ in LoadImages(str(folder), img_size=64)]
    assert got == ["a.jpg", "b.png"] and folder_got == ["a.jpg", "b.png"]  # good files survive bad neighbours
    assert "missing.jpg: listed as a source but it does not exist" in caplog.text
    assert "broken.jpg: OpenCV could not read it as an image" in caplog.text
    assert "notes.md: not a supported image" in caplog.text


def test_missing_and_empty_sources_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LoadImages(str(tmp_path / "nope.jpg"))
    with pytest.raises(FileNotFoundError, match="No images or videos found"):
        LoadImages(str(tmp_path))


def test_video_frames_and_vid_stride(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=5)
    frames = list(LoadImages(str(video), img_size=64))
    assert len(frames) == 5
    assert frames[0][4].startswith("video 1/1 (1/5) ") and frames[-1][4].startswith("video 1/1 (5/5) ")
    assert frames[0][3] is not None and frames[0][2].shape == (96, 128, 3)
    assert len(list(LoadImages(str(video), img_size=64, vid_stride=2))) == 2  # frames 2 and 4


def test_stream_detection_and_offline_errors():
    assert is_stream_source("0") and is_stream_source("rtsp://host/live") and is_stream_source("http://h/cam")
    assert is_stream_source("https://h/clip.mp4")  # a video URL is read progressively, as a stream
    assert not is_stream_source("http://h/x.jpg") and not is_stream_source("data/images")
    t = time.time()
    with pytest.raises(ConnectionError, match="Failed to open stream rtsp://127.0.0.1:9/live"):
        LoadStreams("rtsp://127.0.0.1:9/live", img_size=64, timeout_ms=2000)
    with pytest.raises(ConnectionError, match="Failed to open webcam 97"):
        LoadStreams("97", img_size=64)
    with pytest.raises(ConnectionError, match="Could not fetch http://127.0.0.1:9/x.jpg"):
        load_image_url("http://127.0.0.1:9/x.jpg", timeout=2)
    with pytest.raises(ConnectionError, match="YouTube"):
        LoadStreams("https://www.youtube.com/watch?v=abc", img_size=64)
    assert time.time() - t < 15  # refused connections and absent cameras answer at once, never hang


def test_load_streams_reads_a_stream_list_until_it_ends(tmp_path):
    video = write_video(tmp_path / "cam.mp4", n=6)
    listing = tmp_path / "list.streams"
    listing.write_text(f"{video}\n")
    dataset = LoadStreams(str(listing), img_size=64, stride=32, auto=True)
    assert len(dataset) == 1 and dataset.fps[0] == pytest.approx(7.0) and dataset.frames[0] == 6
    batches = []
    for _, im, im0, _, _ in dataset:
        batches.append((im.shape, im0[0].shape))
        if len(batches) > 10000:
            pytest.fail("LoadStreams did not stop after the video ended")
    assert batches and all(b == ((1, 3, 64, 64), (96, 128, 3)) for b in batches)  # 64x48, padded to stride


def test_v7_import_paths_and_a_threaded_video_stream(tmp_path):
    """v7.0 scripts import the sources from utils.dataloaders; LoadStreams reads a video in a thread until it ends."""
    from utils import dataloaders

    assert dataloaders.LoadImages is LoadImages and dataloaders.LoadStreams is LoadStreams
    video = write_video(tmp_path / "cam.mp4", n=6)
    cap, decoded = cv2.VideoCapture(str(video)), []
    while (frame := cap.read()[1]) is not None:
        decoded.append(frame)
    cap.release()
    assert len(decoded) == 6
    dataset = dataloaders.LoadStreams(str(video), img_size=64, stride=32, auto=False, vid_stride=2)
    assert dataset.threads[0].daemon and dataset.mode == "stream"
    seen = set()
    for i, (sources, im, im0, _, _) in enumerate(dataset):
        assert sources == [str(video)] and im.shape == (1, 3, 64, 64)
        seen |= {k for k, f in enumerate(decoded) if np.array_equal(f, im0[0])}
        if i > 100000:
            pytest.fail("LoadStreams did not stop after the video ended")
    # the first frame is read on opening; after that the thread keeps every second frame: 2 and 4 of 0..5
    assert seen and seen <= {0, 2, 4}
    assert not dataset.threads[0].is_alive()
