"""Tracker YAMLs: found by path or by bare name in trackers/cfg, checked key by key into a TrackerConfig."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from trackers.gmc import GMC_METHODS

CFG_DIR = Path(__file__).resolve().parent / "cfg"
TRACKER_TYPES = ("bytetrack", "botsort")


@dataclasses.dataclass
class TrackerConfig:
    """A tracker's settings, with the ultralytics tracker configs' keys and defaults."""

    tracker_type: str = "bytetrack"
    track_high_thresh: float = 0.5
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    gmc_method: str = "sparseOptFlow"
    proximity_thresh: float = 0.5
    appearance_thresh: float = 0.25
    with_reid: bool = False


def known_configs() -> list[str]:
    """The YAML names a bare --tracker may give."""
    return sorted(p.name for p in CFG_DIR.glob("*.yaml"))


def find_config(name: str | Path) -> Path:
    """The tracker YAML at name, or of that bare name in trackers/cfg."""
    path = Path(name)
    if path.is_file():
        return path
    if path.name == str(name) and (CFG_DIR / path.name).is_file():
        return CFG_DIR / path.name
    raise FileNotFoundError(f"tracker config '{name}' not found; known: {', '.join(known_configs())} "
                            f"(or a path to a YAML with the same keys)")


def check_value(file: Path, key: str, value, want: type):
    """value as the type the key takes, or an error naming the file, the key and the type expected."""
    if want is bool and isinstance(value, bool):
        return value
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if want is str and isinstance(value, str):
        return value
    article = "an" if want is int else "a"
    raise ValueError(f"{file}: '{key}' must be {article} {want.__name__}, got {value!r}")


def load_tracker_config(name: str | Path) -> TrackerConfig:
    """Read and check a tracker YAML: every key known and of its type, tracker_type and gmc_method known ones."""
    file = find_config(name)
    with open(file, errors="replace") as f:
        data = yaml.safe_load(f)  # safe_load: a YAML file never builds Python objects
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected 'key: value' lines, got {type(data).__name__}")
    types = {f.name: f.type for f in dataclasses.fields(TrackerConfig)}
    unknown = sorted(set(map(str, data)) - set(types))
    if unknown:
        raise ValueError(f"{file}: unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}; known keys: "
                         f"{', '.join(types)}")
    builtin = {"str": str, "float": float, "int": int, "bool": bool}  # the annotations are strings (PEP 563)
    cfg = TrackerConfig(**{k: check_value(file, k, v, builtin[types[k]]) for k, v in data.items()})
    if cfg.tracker_type not in TRACKER_TYPES:
        raise ValueError(f"{file}: unknown tracker_type '{cfg.tracker_type}'; known: {', '.join(TRACKER_TYPES)}")
    if cfg.gmc_method not in GMC_METHODS:
        raise ValueError(f"{file}: unknown gmc_method '{cfg.gmc_method}'; known: {', '.join(GMC_METHODS)}")
    if cfg.track_buffer < 0:
        raise ValueError(f"{file}: track_buffer must be 0 or more frames, got {cfg.track_buffer}")
    return cfg
