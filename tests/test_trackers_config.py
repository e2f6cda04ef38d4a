"""Tracker YAMLs: bare names found in trackers/cfg, the ultralytics keys and defaults, clear errors for bad ones."""

import pytest

from trackers import BOTSORT, BYTETracker, build_tracker
from trackers.config import CFG_DIR, TrackerConfig, load_tracker_config


def test_bare_names_resolve_to_the_shipped_configs_with_ultralytics_defaults():
    byte, bot = load_tracker_config("bytetrack.yaml"), load_tracker_config("botsort.yaml")
    assert byte == TrackerConfig()  # the YAML says what the defaults say
    assert (byte.track_high_thresh, byte.track_low_thresh, byte.new_track_thresh, byte.track_buffer,
            byte.match_thresh, byte.fuse_score) == (0.5, 0.1, 0.6, 30, 0.8, True)
    assert (bot.tracker_type, bot.gmc_method, bot.proximity_thresh, bot.appearance_thresh, bot.with_reid) == (
        "botsort", "sparseOptFlow", 0.5, 0.25, False)
    assert type(build_tracker("bytetrack.yaml")) is BYTETracker and isinstance(build_tracker("botsort.yaml"), BOTSORT)


def test_track_buffer_counts_frames_at_30_fps():
    assert build_tracker("bytetrack.yaml", frame_rate=15).max_time_lost == 15
    assert build_tracker("bytetrack.yaml", frame_rate=60).max_time_lost == 60


def test_a_path_to_an_own_yaml(tmp_path):
    (tmp_path / "mine.yaml").write_text("tracker_type: botsort\ntrack_buffer: 60\ngmc_method: ecc\nmatch_thresh: 1\n")
    cfg = load_tracker_config(tmp_path / "mine.yaml")
    assert (cfg.tracker_type, cfg.track_buffer, cfg.gmc_method, cfg.match_thresh) == ("botsort", 60, "ecc", 1.0)
    assert cfg.track_high_thresh == 0.5  # keys left out keep their defaults


def test_unknown_config_lists_the_known_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="'deepsort.yaml' not found; known: botsort.yaml, bytetrack.yaml"):
        load_tracker_config("deepsort.yaml")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tracker_config(tmp_path / "bytetrack.yaml")  # a path is not looked up in trackers/cfg
    assert CFG_DIR.is_dir()


@pytest.mark.parametrize("text, match", [
    ("tracker_type: bytetrack\ntrack_bufer: 30\n", r"unknown key track_bufer; known keys: tracker_type, "
                                                   r"track_high_thresh, .*with_reid"),
    ("tracker_type: deepsort\n", r"unknown tracker_type 'deepsort'; known: bytetrack, botsort"),
    ("tracker_type: botsort\ngmc_method: orb\n", r"unknown gmc_method 'orb'; known: sparseOptFlow, ecc, none"),
    ("track_buffer: 2.5\n", r"'track_buffer' must be an int, got 2.5"),
    ("fuse_score: 1\n", r"'fuse_score' must be a bool, got 1"),
    ("track_high_thresh: high\n", r"'track_high_thresh' must be a float"),
    ("- a\n- b\n", r"expected 'key: value' lines, got list"),
    ("track_buffer: -1\n", r"track_buffer must be 0 or more"),
    ("!!python/object/apply:os.system ['true']\n", r"could not determine a constructor"),
])
def test_bad_yaml_is_refused_with_the_file_named(tmp_path, text, match):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(Exception, match=match) as e:
        load_tracker_config(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(e.value) or "constructor" in str(e.value)  # safe_load names the tag it refused
