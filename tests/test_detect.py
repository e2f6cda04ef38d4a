"""detect.py end to end: output files, label round trip, videos, and equal detections from .pt and its exports."""

from copy import deepcopy

import cv2
import numpy as np
import pytest
import torch

import detect
import export
from models.backends import DetectMultiBackend
from models.experimental import attempt_load, torch_safe_load
from tests.fixtures.inference import (
    NAMES,
    assert_same_detections,
    make_checkpoint,
    read_labels,
    shapes_image,
    write_video,
)
from utils.general import ROOT, non_max_suppression, scale_boxes
from utils.sources import LoadImages

IMGSZ = 160



@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("detect") / "tiny.pt")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    cv2.imwrite(str(d / "square.jpg"), shapes_image(IMGSZ, IMGSZ, seed=3))
    cv2.imwrite(str(d / "wide.png"), shapes_image(120, 200, seed=4))
    return d


def _run(weights, source, project, **kwargs):
    opts = dict(imgsz=(IMGSZ, IMGSZ), conf_thres=0.3, device="cpu", project=project, exist_ok=True)
    return detect.run(weights=weights, source=source, **{**opts, **kwargs})


def test_images_write_annotated_labels_and_crops(weights, images, tmp_path, caplog):
    with caplog.at_level("INFO", logger="yolov5"):
        save_dir = _run(weights, images, tmp_path, save_txt=True, save_conf=True, save_crop=True)
    assert save_dir == tmp_path / "exp"
    for name, shape in (("square.jpg", (IMGSZ, IMGSZ, 3)), ("wide.png", (120, 200, 3))):
        out = cv2.imread(str(save_dir / name))
        assert out.shape == shape and (out != cv2.imread(str(images / name))).any()  # boxes drawn on it
    labels = {p.name: np.loadtxt(p, ndmin=2) for p in (save_dir / "labels").glob("*.txt")}
    assert set(labels) == {"square.txt", "wide.txt"}
    rows = np.concatenate(list(labels.values()))
    assert rows.shape[1] == 6 and (rows[:, 1:5] >= 0).all() and (rows[:, 1:5] <= 1).all() and (rows[:, 5] >= 0.3).all()
    crops = list((save_dir / "crops").rglob("*.jpg"))
    assert len(crops) == len(rows)
    assert {p.parent.name for p in crops} == {NAMES[int(c)] for c in rows[:, 0]}
    line = next(x for x in caplog.text.splitlines() if "wide.png" in x)
    assert "96x160 " in line and line.rstrip().endswith("ms") and any(n in line for n in NAMES.values())


def test_saved_labels_round_trip_to_the_same_boxes(weights, images, tmp_path):
    save_dir = _run(weights, images / "wide.png", tmp_path, save_txt=True, save_conf=True, nosave=True)
    assert not (save_dir / "wide.png").exists()  # --nosave
    got = read_labels(save_dir / "labels" / "wide.txt", 200, 120)
    model = DetectMultiBackend(weights)
    _, im, im0, _, _ = next(iter(LoadImages(str(images / "wide.png"), img_size=IMGSZ, stride=32, auto=True)))
    with torch.no_grad():
        x = torch.from_numpy(im).float()[None] / 255
        det = non_max_suppression(model(x), 0.3, 0.45, max_det=1000)[0]
    det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], im0.shape).round()
    want = det[:, [5, 0, 1, 2, 3, 4]].numpy()
    assert len(want) > 0
    assert_same_detections(got, want, px=0.01, what="labels")  # %g keeps 6 significant digits


def test_video_written_at_source_fps(weights, tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=4, fps=7.0)
    save_dir = _run(weights, video, tmp_path / "runs", save_txt=True)
    cap = cv2.VideoCapture(str(save_dir / "clip.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(7.0)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 96)
    cap.release()
    assert {p.name for p in (save_dir / "labels").glob("*.txt")} <= {f"clip_{i}.txt" for i in range(1, 5)}
    assert len(list((save_dir / "labels").glob("*.txt"))) > 0


def test_pt_torchscript_onnx_and_dnn_give_the_same_detections(weights, images, tmp_path):
    files = export.run(weights=weights, imgsz=(IMGSZ, IMGSZ), include=["torchscript", "onnx"])
    runs = {
        "pt": (weights, False),
        "torchscript": (files[0], False),
        "onnx": (files[1], False),
        "dnn": (files[1], True),
    }
    results = {}
    for name, (w, dnn) in runs.items():
        save_dir = _run(w, images / "square.jpg", tmp_path, name=name, save_txt=True, save_conf=True, dnn=dnn)
        results[name] = read_labels(save_dir / "labels" / "square.txt", IMGSZ, IMGSZ)
    ref = results["pt"]
    assert len(ref) > 2
    for name, got in results.items():
        assert_same_detections(got, ref, px=1.0, what=name)


def test_augment_and_visualize(weights, images, tmp_path):
    plain = _run(weights, images / "square.jpg", tmp_path, name="plain", save_txt=True, nosave=True)
    tta = _run(weights, images / "square.jpg", tmp_path, name="tta", augment=True, save_txt=True, nosave=True)
    a, b = (np.loadtxt(d / "labels" / "square.txt", ndmin=2) for d in (plain, tta))
    assert len(b) > 0 and not np.array_equal(a, b)  # flipped and scaled passes change the merged predictions
    save_dir = _run(weights, images / "square.jpg", tmp_path, name="vis", visualize=True, nosave=True)
    pngs = list((save_dir / "square").glob("stage*_features.png"))
    assert len(pngs) >= 20 and any("CSPPC" in p.name for p in pngs)


def test_offline_stream_and_url_fail_fast(weights, tmp_path):
    with pytest.raises(ConnectionError, match="Failed to open stream"):
        _run(weights, "rtsp://127.0.0.1:9/live", tmp_path)
    with pytest.raises(ConnectionError, match="Could not fetch http://127.0.0.1:9/im.jpg"):
        _run(weights, "http://127.0.0.1:9/im.jpg", tmp_path)


def test_cli_defaults_match_yolov5():
    opt = detect.parse_opt(["--weights", "a.pt"])
    assert opt.weights == "a.pt" and str(opt.source).endswith("data/images") and opt.imgsz == [640]
    assert (opt.conf_thres, opt.iou_thres, opt.max_det, opt.line_thickness, opt.vid_stride) == (0.25, 0.45, 1000, 3, 1)
    assert str(opt.project).endswith("runs/detect") and opt.name == "exp" and not opt.half and not opt.dnn
    opt = detect.parse_opt(["--classes", "0", "2", "--hide-labels", "--hide-conf", "--agnostic-nms", "--exist-ok"])
    assert opt.classes == [0, 2] and opt.hide_labels and opt.hide_conf and opt.agnostic_nms and opt.exist_ok


def _trained_copy(weights, path):
    """A copy of weights that looks like a mid-training checkpoint: optimizer state, an EMA, epoch 3."""
    ckpt = torch_safe_load(weights)
    model = ckpt["model"].float()
    ckpt.update(epoch=3, best_fitness=0.5, ema=deepcopy(model).half(), updates=12,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9).state_dict())
    torch.save(ckpt, path)
    return path


def test_update_strips_the_optimizer_cli_and_run(weights, images, tmp_path, caplog):
    cli_w, run_w = _trained_copy(weights, tmp_path / "cli.pt"), _trained_copy(weights, tmp_path / "run.pt")
    assert torch_safe_load(cli_w)["optimizer"] is not None
    argv = ["--weights", str(cli_w), "--source", str(images / "square.jpg"), "--imgsz", "64", "--device", "cpu",
            "--project", str(tmp_path), "--name", "cli", "--nosave", "--update"]
    opt = detect.parse_opt(argv)  # no "unrecognized arguments"
    assert opt.update is True and detect.parse_opt([]).update is False
    with caplog.at_level("INFO", logger="yolov5"):
        detect.main(opt)
        _run(run_w, images / "square.jpg", tmp_path, name="run", imgsz=(64, 64), nosave=True, update=True)
    for w in cli_w, run_w:
        ckpt = torch_safe_load(w)  # still loads with the safe loader
        assert ckpt["optimizer"] is None and ckpt["ema"] is None and ckpt["updates"] is None and ckpt["epoch"] == -1
        assert next(ckpt["model"].parameters()).dtype == torch.float16
        assert f"Optimizer stripped from {w}" in caplog.text
        assert attempt_load(w)(torch.zeros(1, 3, 64, 64))[0].shape[0] == 1
    args_line = next(x for x in caplog.text.splitlines() if "detect: " in x)
    assert f"weights={cli_w}" in args_line and "source=" in args_line and "update=True" in args_line


def test_update_leaves_exports_alone(weights, images, tmp_path, caplog):
    onnx_file = export.run(weights=weights, imgsz=(64, 64), include=["onnx"])[0]
    before = open(onnx_file, "rb").read()
    with caplog.at_level("WARNING", logger="yolov5"):
        _run(onnx_file, images / "square.jpg", tmp_path, imgsz=(64, 64), nosave=True, update=True)
    assert f"--update only applies to .pt checkpoints; {onnx_file} left unchanged" in caplog.text
    assert open(onnx_file, "rb").read() == before


def test_run_takes_an_int_image_size(tmp_path):
    """detect.run(imgsz=64) from Python works like imgsz=(64,) on the command line."""
    from tests.fixtures.inference import make_checkpoint

    w = make_checkpoint(tmp_path / "tiny.pt")
    out = detect.run(weights=w, source=str(ROOT / "data" / "images"), imgsz=64, project=str(tmp_path), name="i",
                     nosave=True, save_txt=True, conf_thres=0.001)
    assert out.is_dir()
