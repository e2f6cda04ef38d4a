"""Tracking as hooks on the shared predict loop: each video, stream or folder of frames gets its own tracker.

The loop (engine/predictor.py) detects and scales boxes as detect.py does; render(), which sees each frame once and in
order, runs the sequence's tracker on them, then draws and writes as detection does with the tracks in place of the
detections. Rows of a tracked result are x1 y1 x2 y2 conf cls id; a segmentation result keeps the masks of the
detections its tracks matched.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.predictor import ImageDest, PredictOptions
from engine.tasks.detect_predict import DetectionPredictor
from engine.tasks.segment_predict import SegmentationPredictor
from trackers import build_tracker
from trackers.byte_tracker import BYTETracker
from trackers.config import TrackerConfig, load_tracker_config
from trackers.metrics import evaluate, format_scores
from trackers.mot import format_rows
from utils.general import LOGGER
from utils.plots import Annotator, colors
from utils.segment.plots import overlay_masks


@dataclasses.dataclass
class TrackOptions(PredictOptions):
    """The predict options plus the tracker's."""

    tracker: str | Path = "bytetrack.yaml"
    trails: int = 0  # draw each track's last `trails` centres
    eval: str | Path | None = None  # MOTChallenge ground truth to score the (single) sequence against


@dataclasses.dataclass
class Sequence:
    """One video, stream or folder of frames: its tracker, frames seen, MOT file and the tracks' recent centres."""

    name: str
    tracker: BYTETracker
    mot_file: Path
    stride: int = 1  # source frames per frame read (--vid-stride, for videos)
    expected: float = 0  # frames the video's header announces (0: unknown)
    frames: int = 0
    trails: dict = dataclasses.field(default_factory=dict)

    @property
    def frame(self) -> int:
        """The MOT frame number of the last frame read: the loader keeps every stride-th source frame, from 1."""
        return self.frames * self.stride


class TrackingMixin:
    """Tracking hooks for a DetectionPredictor or a subclass of it (see the module docstring)."""

    def __init__(self, model, opt: TrackOptions):
        super().__init__(model, opt)
        self.tracker_cfg: TrackerConfig = load_tracker_config(opt.tracker)
        if opt.eval is not None:
            opt.save_txt = True  # scoring reads the MOT file
        self.sequences: dict[str, Sequence] = {}
        self.current: Sequence | None = None  # the sequence of the frame being rendered (one at a time, in order)
        self.track_time, self.track_frames = 0.0, 0

    def load_source(self, source: str, webcam: bool):
        """The loop's dataset, kept to read each video's frame rate and frame count."""
        self.dataset = super().load_source(source, webcam)
        return self.dataset

    def sequence(self, dest: ImageDest) -> Sequence:
        """The sequence dest belongs to (started on its first frame): a video, a stream, or the folder of images."""
        key = str(dest.image if dest.mode == "stream" else dest.source if dest.mode == "video" else dest.source.parent)
        if key not in self.sequences:
            name = Path(key).stem if dest.mode != "image" else Path(key).name  # images: their folder's name
            fps, expected, stride = self.source_rate(dest)
            tracker = build_tracker(self.tracker_cfg, frame_rate=fps)
            mot_file = self.save_dir / "labels" / f"{name}.txt"
            if self.opt.save_txt:
                mot_file.write_text("")  # a rerun into the same folder (--exist-ok) starts the file afresh
            self.sequences[key] = Sequence(name, tracker, mot_file, stride, expected)
        return self.sequences[key]

    def source_rate(self, dest: ImageDest) -> tuple[float, float, int]:
        """Frames per second as read (after --vid-stride), frames announced, and the stride of dest's source."""
        ds, stride = self.dataset, max(int(self.opt.vid_stride), 1)
        if dest.mode == "video" and ds.cap is not None:
            fps = ds.cap.get(cv2.CAP_PROP_FPS)
            return (fps if np.isfinite(fps) and fps > 0 else 30.0) / stride, ds.frames, stride
        if dest.mode == "stream":
            sources = [str(Path(s)) for s in ds.sources]
            i = sources.index(str(dest.source)) if str(dest.source) in sources else 0
            return ds.fps[i] / stride, 0, stride
        return 30.0, 0, 1

    def track(self, result, im: np.ndarray, seq: Sequence) -> None:
        """Run the sequence's tracker on result's boxes; result then holds the tracks (and their masks)."""
        seq.frames += 1
        det = result.det
        t0 = time.perf_counter()
        tracks = seq.tracker.update(det[:, :6].float().cpu().numpy(), im)
        self.track_time += time.perf_counter() - t0
        self.track_frames += 1
        h, w = im.shape[:2]
        tracks[:, [0, 2]] = tracks[:, [0, 2]].clip(0, w)  # Kalman boxes may reach past the image
        tracks[:, [1, 3]] = tracks[:, [1, 3]].clip(0, h)
        rows = tracks[:, [0, 1, 2, 3, 5, 6, 4]]  # x1 y1 x2 y2 conf cls id
        result.det = torch.from_numpy(rows).to(det.device, torch.float32)
        if getattr(result, "masks", None) is not None:
            result.masks = result.masks[torch.from_numpy(tracks[:, 7].astype(np.int64)).to(result.masks.device)]
        if self.opt.trails > 1:
            for x1, y1, x2, y2, tid in tracks[:, :5].tolist():
                trail = seq.trails.setdefault(int(tid), deque(maxlen=self.opt.trails))
                trail.append((int((x1 + x2) / 2), int((y1 + y2) / 2)))
            alive = {t.track_id for t in seq.tracker.tracks}
            seq.trails = {k: v for k, v in seq.trails.items() if k in alive}  # a removed track's path is dropped

    def empty_note(self, result) -> str:
        """The number of tracks reported in the frame (render has put them in result by the time the line is logged)."""
        return f"{len(result.det)} track{'s' * (len(result.det) != 1)}, "

    def render(self, result, im: np.ndarray, dest: ImageDest, draw: bool) -> np.ndarray:
        """Track, append the MOT lines of this frame (--save-txt), then draw as detection does."""
        seq = self.current = self.sequence(dest)
        self.track(result, im, seq)
        if self.opt.save_txt:
            with open(seq.mot_file, "a") as f:
                f.write(format_rows(seq.frame, result.det[:, [0, 1, 2, 3, 6, 4]].cpu().numpy()))
        return super().render(result, im, dest, draw)

    def write_txt(self, result, file: Path, shape: tuple[int, ...]) -> None:
        """Nothing per image: --save-txt writes one MOT file per sequence (render)."""

    def draw(self, result, annotator: Annotator) -> None:
        """Masks, boxes and 'id:N class conf' labels coloured by track id, and --trails."""
        o, det = self.opt, result.det
        ids = [int(i) for i in det[:, 6].tolist()]
        if getattr(result, "masks", None) is not None and len(det):
            overlay_masks(annotator.im, result.masks.cpu().numpy()[::-1], [colors(i, True) for i in ids][::-1])
        for (*xyxy, conf, cls), tid in zip(det[:, :6].tolist(), ids):
            name = self.names[int(cls)]
            label = None if o.hide_labels else f"id:{tid} {name}" + ("" if o.hide_conf else f" {conf:.2f}")
            annotator.box_label(xyxy, label or "", color=colors(tid, True))
        if o.trails > 1:
            for tid in ids:
                pts = np.array(self.current.trails.get(tid, ()), np.int32)
                if len(pts) > 1:
                    cv2.polylines(annotator.im, [pts], False, colors(tid, True), max(annotator.lw // 2, 1))

    def summary(self, dt: list[float], seen: int) -> None:
        """The loop's summary, the tracker's time per frame, warnings for videos that ended early, then --eval."""
        super().summary(dt, seen)
        ms = self.track_time / max(self.track_frames, 1) * 1e3
        LOGGER.info(f"Tracking: {ms:.2f}ms per frame ({self.tracker_cfg.tracker_type}, {self.track_frames} frames)")
        for seq in self.sequences.values():
            seq.tracker.reset()  # the tracks are closed with their sequence
            if seq.expected and seq.frames < seq.expected:
                LOGGER.warning(f"WARNING {seq.name}: the video ended early, after frame {seq.frame} of "
                               f"{int(seq.expected * seq.stride)}; its tracks are closed and its files written")
        if self.opt.eval is not None:
            self.score()

    def score(self) -> dict[str, float]:
        """HOTA, MOTA, IDF1, IDSW, FP, FN of the one tracked sequence against --eval's ground truth, logged."""
        if len(self.sequences) != 1:
            raise ValueError(f"--eval scores one sequence; this source gave {len(self.sequences)}")
        seq = next(iter(self.sequences.values()))
        self.scores = evaluate(self.opt.eval, seq.mot_file)
        LOGGER.info(f"Scores of {seq.mot_file} against {self.opt.eval}:")
        for line in format_scores(self.scores):
            LOGGER.info(line)
        return self.scores


class DetectionTracker(TrackingMixin, DetectionPredictor):
    """Track the boxes of a detection model."""


class SegmentationTracker(TrackingMixin, SegmentationPredictor):
    """Track the boxes of a segmentation model, each track with its mask."""
