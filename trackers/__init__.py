"""Multi-object trackers (ByteTrack, BoT-SORT) and MOTChallenge scoring; numpy and OpenCV only, no torch."""

from __future__ import annotations

from pathlib import Path

from trackers.bot_sort import BOTSORT
from trackers.byte_tracker import BYTETracker
from trackers.config import TrackerConfig, load_tracker_config

TRACKERS = {"bytetrack": BYTETracker, "botsort": BOTSORT}  # tracker_type -> class


def build_tracker(cfg: TrackerConfig | str | Path, frame_rate: float = 30.0) -> BYTETracker:
    """The tracker a config (or a tracker YAML's name or path) describes, for a source at frame_rate."""
    cfg = cfg if isinstance(cfg, TrackerConfig) else load_tracker_config(cfg)
    return TRACKERS[cfg.tracker_type](cfg, frame_rate)


__all__ = ["BOTSORT", "BYTETracker", "TRACKERS", "TrackerConfig", "build_tracker", "load_tracker_config"]
