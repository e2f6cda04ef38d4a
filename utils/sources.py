"""Inference sources: images, folders, globs, .txt lists, videos (LoadImages); webcams and streams (LoadStreams)."""

from __future__ import annotations

import glob
import io
import math
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from utils import IMG_FORMATS, VID_FORMATS
from utils.augmentations import letterbox
from utils.dataset_check import MAX_IMAGE_PIXELS, ImageError, header_size, imread, opencv_reason
from utils.general import LOGGER, clean_str

STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://")
MAX_URL_BYTES = 64 << 20  # an image fetched from a URL is read into memory up to this size, and refused beyond it
OPEN_TIMEOUT_MS = 5000  # a stream that does not answer within this is reported, never waited on forever


def is_url(source: str) -> bool:
    """True for an http(s)/rtsp/rtmp address."""
    return str(source).lower().startswith(STREAM_PREFIXES)


def is_stream_source(source: str) -> bool:
    """True for a webcam index, a .streams list, or any URL but an image's (videos at a URL are read as streams)."""
    s = str(source)
    image_url = is_url(s) and Path(urlparse(s).path).suffix[1:].lower() in IMG_FORMATS
    return s.isnumeric() or s.endswith(".streams") or (is_url(s) and not image_url)


def _to_model_input(im0: np.ndarray, img_size, stride: int, auto: bool) -> np.ndarray:
    """Letterbox a BGR HWC image and return it as contiguous RGB CHW uint8."""
    im = letterbox(im0, img_size, stride=stride, auto=auto)[0]
    return np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])


def _expand(path: str | Path) -> list[str]:
    """The files one source entry names: itself, a folder's files (sorted), or a glob's matches."""
    p = str(Path(path).resolve()) if not str(path).startswith("~") else os.path.expanduser(path)
    if "*" in p:
        return sorted(glob.glob(p, recursive=True))
    if os.path.isdir(p):
        return sorted(glob.glob(os.path.join(p, "*.*")))
    if os.path.isfile(p):
        return [p]
    raise FileNotFoundError(f"{path} does not exist")


class LoadImages:
    """Iterate images and video frames: yields (path, letterboxed RGB CHW image, original BGR image, capture, log)."""

    def __init__(self, path, img_size: int | tuple[int, int] = 640, stride: int = 32, auto: bool = True,
                 transforms=None, vid_stride: int = 1):
        if isinstance(path, str) and Path(path).suffix == ".txt":  # a text file listing one source per line
            txt = Path(path)
            if not txt.is_file():
                raise FileNotFoundError(f"{path} does not exist")
            entries = [x.strip() for x in txt.read_text().splitlines() if x.strip()]
            # relative entries are read relative to the list file, as dataset lists are
            path = [e if Path(e).is_absolute() or Path(e).exists() else str(txt.parent / e) for e in entries]
        many = isinstance(path, (list, tuple))
        files = []
        for p in path if many else [path]:
            if is_url(str(p)):  # an image URL is read into memory when its turn comes; streams go to LoadStreams
                if Path(urlparse(str(p)).path).suffix[1:].lower() not in IMG_FORMATS:
                    raise ValueError(f"{p}: only image URLs are read by LoadImages; use LoadStreams for streams")
                files.append(str(p))
                continue
            try:
                files.extend(_expand(p))
            except FileNotFoundError:
                if not many:
                    raise
                LOGGER.warning(f"WARNING skipping {p}: listed as a source but it does not exist")
        images = [x for x in files if x.split(".")[-1].lower() in IMG_FORMATS]
        videos = [x for x in files if x.split(".")[-1].lower() in VID_FORMATS]
        for x in files:
            if x not in images and x not in videos:
                LOGGER.warning(f"WARNING skipping {x}: not a supported image ({', '.join(IMG_FORMATS)}) "
                               f"or video ({', '.join(VID_FORMATS)}) file")
        self.img_size, self.stride, self.auto, self.transforms = img_size, stride, auto, transforms
        self.files = images + videos
        self.nf = len(self.files)
        self.video_flag = [False] * len(images) + [True] * len(videos)
        self.mode = "image"
        self.vid_stride = max(int(vid_stride), 1)
        self.cap, self.frame, self.frames = None, 0, 0
        if videos:
            self._new_video(videos[0])
        if self.nf == 0:
            raise FileNotFoundError(f"No images or videos found in {path}. Supported formats are:\n"
                                    f"images: {IMG_FORMATS}\nvideos: {VID_FORMATS}")

    def __iter__(self):
        self.count = 0
        return self

    def __next__(self):
        while True:
            if self.count == self.nf:
                raise StopIteration
            path = self.files[self.count]
            if self.video_flag[self.count]:
                frame = self._read_frame(path)
                if frame is None:
                    continue  # this video ended or could not be read: _read_frame moved on to the next file
                im0 = frame
                s = f"video {self.count + 1}/{self.nf} ({self.frame}/{self.frames}) {path}: "
            else:
                self.count += 1
                im0 = self._read_image(path)
                if im0 is None:
                    continue
                self.mode = "image"
                s = f"image {self.count}/{self.nf} {path}: "
            im = self.transforms(im0) if self.transforms else _to_model_input(im0, self.img_size, self.stride,
                                                                             self.auto)
            return path, im, im0, self.cap, s

    def _read_image(self, path: str) -> np.ndarray | None:
        """A BGR image from a file or URL; a broken one is reported and skipped (None) unless it is the only one."""
        try:
            return load_image_url(path) if is_url(path) else imread(path)
        except ImageError as e:  # not an image, or one that must not be decoded: this file's problem only
            if self.nf == 1:
                raise
            LOGGER.warning(f"WARNING skipping {e}")
        except ConnectionError:
            if self.nf == 1:
                raise
            LOGGER.warning(f"WARNING skipping {path}: it could not be fetched")
        return None

    def _read_frame(self, path: str):
        """The next frame (honouring vid_stride) of the current video, or None after moving to the next file."""
        self.mode = "video"
        if self.cap is None or not self.cap.isOpened():
            LOGGER.warning(f"WARNING skipping {path}: OpenCV could not open it as a video")
            self._next_file()
            return None
        ok = all(self.cap.grab() for _ in range(self.vid_stride))  # keep every vid_stride-th frame
        ok, frame = self.cap.retrieve() if ok else (False, None)
        if not ok:
            self.cap.release()
            self._next_file()
            return None
        self.frame += 1
        return frame

    def _next_file(self) -> None:
        self.count += 1
        if self.count < self.nf:
            self._new_video(self.files[self.count])

    def _new_video(self, path: str) -> None:
        """Open a video and read its frame count (divided by vid_stride, as frames are skipped)."""
        self.frame = 0
        self.cap = cv2.VideoCapture(path)
        self.frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) / self.vid_stride)

    def __len__(self) -> int:
        return self.nf


def open_capture(source: str, timeout_ms: int = OPEN_TIMEOUT_MS) -> cv2.VideoCapture:
    """Open a webcam index or a stream URL with a bounded wait; ConnectionError naming the source otherwise."""
    if "youtube.com/" in source or "youtu.be/" in source:
        raise ConnectionError(f"{source}: YouTube pages are not video streams; resolving them needs a download tool, "
                              f"which this project does not use")
    if source.isnumeric():
        cap = cv2.VideoCapture(int(source))
    else:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        if source.isnumeric():
            raise ConnectionError(f"Failed to open webcam {source}: no camera with that index on this machine")
        raise ConnectionError(f"Failed to open stream {source}: unreachable (offline?) or not a video stream, "
                              f"no answer within {timeout_ms / 1000:g} s")
    return cap


class LoadStreams:
    """Read webcams/streams in background threads; yields the newest frame of each as one letterboxed batch."""

    def __init__(self, sources: str = "file.streams", img_size: int | tuple[int, int] = 640, stride: int = 32,
                 auto: bool = True, transforms=None, vid_stride: int = 1, timeout_ms: int = OPEN_TIMEOUT_MS):
        if os.path.isfile(sources) and Path(sources).suffix[1:].lower() not in VID_FORMATS:  # a list, one a line
            sources = Path(sources).read_text().split()
        else:
            sources = [sources]
        self.mode = "stream"
        self.img_size, self.stride, self.auto, self.transforms = img_size, stride, auto, transforms
        self.vid_stride = max(int(vid_stride), 1)
        opened = []
        for s in sources:
            try:
                opened.append((s, *self._open(str(s), timeout_ms)))
            except (ConnectionError, ImageError) as e:
                if len(sources) == 1:
                    raise
                LOGGER.warning(f"WARNING skipping stream {e}")
        if not opened:
            raise ConnectionError(f"none of the {len(sources)} streams gave a frame: {', '.join(map(str, sources))}")
        n = len(opened)
        self.sources = [clean_str(s) for s, _, _ in opened]
        self.imgs, self.fps, self.frames, self.threads = [None] * n, [0.0] * n, [0] * n, [None] * n
        self.caps = [cap for _, cap, _ in opened]
        for i, (s, cap, frame) in enumerate(opened):
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.frames[i] = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) or math.inf  # live streams never end
            self.fps[i] = max((fps if math.isfinite(fps) else 0) % 100, 0) or 30
            self.imgs[i] = frame
            self.threads[i] = threading.Thread(target=self.update, args=(i, cap, s), daemon=True)
            LOGGER.info(f"{i + 1}/{n}: {s}... Success ({self.frames[i]} frames {w}x{h} at {self.fps[i]:.2f} FPS)")
            self.threads[i].start()
        shapes = {_to_model_input(x, img_size, stride, auto).shape for x in self.imgs}
        self.rect = len(shapes) == 1  # rectangular inference only when every stream letterboxes alike
        self.auto = auto and self.rect
        if not self.rect:
            LOGGER.warning("WARNING Stream shapes differ. For optimal performance supply similarly-shaped streams.")

    @staticmethod
    def _open(source: str, timeout_ms: int) -> tuple[cv2.VideoCapture, np.ndarray]:
        """An opened capture and its first frame; ConnectionError or ImageError naming the source otherwise."""
        cap = open_capture(source, timeout_ms)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > MAX_IMAGE_PIXELS:  # checked before the first frame is decoded
            cap.release()
            raise ImageError(source, f"its frames are {w}x{h} = {w * h:,} pixels, over the limit of "
                                     f"{MAX_IMAGE_PIXELS:,}; not decoded")
        try:
            ok, frame = cap.read()
        except cv2.error as e:
            cap.release()
            raise ImageError(source, f"OpenCV could not decode its first frame ({opencv_reason(e)})") from None
        if not ok:
            cap.release()
            raise ConnectionError(f"{source}: opened but returned no frame within {timeout_ms / 1000:g} s")
        return cap, frame

    def update(self, i: int, cap: cv2.VideoCapture, stream: str) -> None:
        """Keep the newest frame of stream i (reading every vid_stride-th), until it ends."""
        n, f = 0, self.frames[i]
        while cap.isOpened() and n < f:
            n += 1
            cap.grab()
            if n % self.vid_stride == 0:
                ok, im = cap.retrieve()
                if ok:
                    self.imgs[i] = im
                else:
                    LOGGER.warning(f"WARNING {stream}: no response, keeping the last frame")
                    self.imgs[i] = np.zeros_like(self.imgs[i])
                    cap.open(int(stream) if str(stream).isnumeric() else stream)
            time.sleep(0.0)

    def __iter__(self):
        self.count = -1
        return self

    def __next__(self):
        self.count += 1
        if not all(t.is_alive() for t in self.threads):
            for cap in self.caps:
                cap.release()
            raise StopIteration
        im0 = [x.copy() for x in self.imgs]
        if self.transforms:
            im = np.stack([self.transforms(x) for x in im0])
        else:
            im = np.stack([_to_model_input(x, self.img_size, self.stride, self.auto) for x in im0])
        return self.sources, im, im0, None, ""

    def __len__(self) -> int:
        return len(self.sources)


def load_image_url(url: str, timeout: float = 10.0) -> np.ndarray:
    """Read an image at an http(s) URL into memory (nothing is saved) as BGR; ConnectionError when unreachable."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read(MAX_URL_BYTES + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(f"Could not fetch {url}: {reason} (offline or unreachable?)") from None
    if len(data) > MAX_URL_BYTES:
        raise ImageError(url, f"the response is larger than {MAX_URL_BYTES >> 20} MB; not read further")
    header_size(io.BytesIO(data), name=url)
    try:
        im = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageError(url, f"OpenCV refused to decode it ({opencv_reason(e)})") from None
    if im is None:
        raise ImageError(url, "the response is not an image OpenCV can decode")
    return im
