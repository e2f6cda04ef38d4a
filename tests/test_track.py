"""track.py end to end: video and MOT file for both trackers, segmentation, frame folders, --eval, bad input."""

import inspect
import shutil

import cv2
import numpy as np
import pytest

import track
from tests.fixtures.inference import make_checkpoint
from trackers.shapes_mot import write_sequence

FRAMES, W, H = 12, 160, 128


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    video = write_sequence(d / "seq", seed=1, frames=FRAMES, w=W, h=H, objects=4)
    # the random-weight checkpoints' confidences stay under 0.4: thresholds low enough for them to start tracks
    cfgs = {}
    for kind in ("bytetrack", "botsort"):
        cfgs[kind] = d / f"{kind}-low.yaml"
        cfgs[kind].write_text(f"tracker_type: {kind}\ntrack_high_thresh: 0.2\nnew_track_thresh: 0.2\n")
    return {"video": video, "gt": d / "seq" / "gt" / "gt.txt", "frames": d / "seq" / "images", "cfg": cfgs,
            "det": make_checkpoint(d / "det.pt"), "seg": make_checkpoint(d / "seg.pt", cfg="yolov5n-seg.yaml")}


def run(assets, project, weights="det", **kwargs):
    opts = dict(weights=assets[weights], source=assets["video"], imgsz=(W, W), device="cpu", project=project,
                exist_ok=True, save_txt=True)
    return track.run(**{**opts, **kwargs})


def check_mot(file, frames, w=W, h=H, first=1):
    """A MOT result file: 10 values a line, frames 1..frames, whole ids from 1, boxes in the image, -1 -1 -1."""
    rows = np.loadtxt(file, delimiter=",", ndmin=2)
    assert rows.shape[1] == 10 and len(rows)
    assert set(rows[:, 0].astype(int)) <= set(range(1, frames + 1)) and rows[:, 0].min() == first
    assert (rows[:, 1] >= 1).all() and (rows[:, 1] == rows[:, 1].round()).all()
    assert (rows[:, 2] >= 0).all() and (rows[:, 3] >= 0).all() and (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()
    assert (rows[:, 2] + rows[:, 4] <= w + 0.01).all() and (rows[:, 3] + rows[:, 5] <= h + 0.01).all()
    assert (rows[:, 7:] == -1).all() and ((rows[:, 6] > 0) & (rows[:, 6] <= 1)).all()
    for f in np.unique(rows[:, 0]):  # one box per id and frame
        ids = rows[rows[:, 0] == f, 1]
        assert len(ids) == len(set(ids))
    return rows


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_video_gives_annotated_video_and_mot_file(assets, tmp_path, kind, caplog):
    with caplog.at_level("INFO", logger="yolov5"):
        save_dir = run(assets, tmp_path, tracker=assets["cfg"][kind], trails=5)
    cap = cv2.VideoCapture(str(save_dir / "seq.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == W
    cap.release()
    assert [p.name for p in (save_dir / "labels").iterdir()] == ["seq.txt"]
    rows = check_mot(save_dir / "labels" / "seq.txt", FRAMES)
    assert len(np.unique(rows[:, 1])) < len(rows)  # ids recur across frames: tracks, not per-frame detections
    assert "Tracking: " in caplog.text and f"({kind}, {FRAMES} frames)" in caplog.text
    assert " tracks, " in caplog.text


def test_bare_tracker_name_from_the_cli(assets, tmp_path):
    opt = track.parse_opt(["--weights", str(assets["det"]), "--source", str(assets["video"]), "--tracker",
                           "botsort.yaml", "--imgsz", str(W), "--project", str(tmp_path), "--save-txt", "--nosave"])
    assert opt.conf_thres == 0.1 and opt.tracker == "botsort.yaml" and opt.trails == 0 and opt.eval is None
    save_dir = track.main(opt)
    assert (save_dir / "labels" / "seq.txt").exists() and not (save_dir / "seq.mp4").exists()  # --nosave


def test_segmentation_model_tracks_with_masks(assets, tmp_path):
    save_dir = run(assets, tmp_path, weights="seg", tracker=assets["cfg"]["bytetrack"])
    check_mot(save_dir / "labels" / "seq.txt", FRAMES)
    cap = cv2.VideoCapture(str(save_dir / "seq.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    cap.release()


def test_folder_of_frames_is_one_sequence_and_eval_prints_scores(assets, tmp_path, caplog):
    with caplog.at_level("INFO", logger="yolov5"):
        save_dir = run(assets, tmp_path, source=assets["frames"], tracker=assets["cfg"]["bytetrack"],
                       eval=assets["gt"], save_txt=False, nosave=True)
    rows = check_mot(save_dir / "labels" / "images.txt", FRAMES)  # --eval writes the MOT file it scores
    lines = caplog.text.splitlines()
    head = next(i for i, x in enumerate(lines) if x.split()[-9:] == "HOTA DetA AssA MOTA MOTP IDF1 IDSW FP FN".split())
    values = lines[head + 1].split()[-9:]
    assert all(0 <= float(v) <= 100 for v in values[:3]) and float(values[3]) <= 100  # MOTA may go below 0
    gt = np.loadtxt(assets["gt"], delimiter=",", ndmin=2)
    matched = (gt[:, 6] == 1).sum() - int(values[-1])  # considered ground truth less the misses (FN)
    assert int(values[-2]) <= len(rows) - matched  # FP: result boxes that matched nothing (less any ignored)


def test_video_that_ends_early_is_closed_with_a_warning(assets, tmp_path, caplog):
    cap = cv2.VideoCapture(str(assets["video"]))
    avi = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for _ in range(FRAMES):
        writer.write(cap.read()[1])
    writer.release()
    data = avi.read_bytes()
    avi.write_bytes(data[:len(data) // 2])  # the header still announces every frame
    with caplog.at_level("INFO", logger="yolov5"):
        save_dir = run(assets, tmp_path, source=avi, tracker=assets["cfg"]["bytetrack"])
    rows = check_mot(save_dir / "labels" / "cut.txt", FRAMES)
    last = int(rows[:, 0].max())
    assert last < FRAMES
    assert f"cut: the video ended early, after frame {last} of {FRAMES}" in caplog.text
    out = cv2.VideoCapture(str(save_dir / "cut.mp4"))
    assert int(out.get(cv2.CAP_PROP_FRAME_COUNT)) == last  # the annotated video was closed and is readable
    out.release()


def test_vid_stride_numbers_frames_as_the_source_does(assets, tmp_path):
    save_dir = run(assets, tmp_path, tracker=assets["cfg"]["bytetrack"], vid_stride=3, nosave=True)
    rows = check_mot(save_dir / "labels" / "seq.txt", FRAMES, first=3)
    assert set(rows[:, 0].astype(int)) <= {3, 6, 9, 12}  # every third frame, numbered as in the source


def test_unknown_tracker_and_missing_ground_truth(assets, tmp_path):
    with pytest.raises(FileNotFoundError, match="'strongsort.yaml' not found; known: botsort.yaml, bytetrack.yaml"):
        run(assets, tmp_path, tracker="strongsort.yaml")
    with pytest.raises(FileNotFoundError, match="missing.txt not found"):
        run(assets, tmp_path, tracker=assets["cfg"]["bytetrack"], eval=tmp_path / "missing.txt", nosave=True)
    bad = tmp_path / "gt.txt"
    shutil.copy(assets["gt"], bad)
    with open(bad, "a") as f:
        f.write("13,1,0,0,ten,10,1,1,1\n")
    n = len(bad.read_text().splitlines())
    with pytest.raises(ValueError, match=rf"gt.txt:{n}: non-numeric"):
        run(assets, tmp_path, tracker=assets["cfg"]["bytetrack"], eval=bad, nosave=True)


def test_offline_stream_fails_fast(assets, tmp_path):
    with pytest.raises(ConnectionError, match="Failed to open stream"):
        run(assets, tmp_path, source="rtsp://127.0.0.1:9/live", tracker=assets["cfg"]["bytetrack"])


def test_cli_takes_detect_flags_that_apply_and_one_model():
    opt = track.parse_opt(["--weights", "a.pt", "--classes", "0", "2", "--vid-stride", "2", "--trails", "5"])
    assert opt.weights == "a.pt" and opt.classes == [0, 2] and opt.vid_stride == 2 and opt.trails == 5
    assert opt.conf_thres == 0.1 and str(opt.project).endswith("runs/track")  # tracking's own defaults
    assert set(vars(opt)) == set(inspect.signature(track.run).parameters)  # every flag reaches run(), and no other
    for argv in (["--weights", "a.pt", "b.pt"], ["--augment"]):  # one model; detect.py's test-time flags are not here
        with pytest.raises(SystemExit):
            track.parse_opt(argv)
