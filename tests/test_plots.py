"""Tests for utils/plots.py: colours, cv2 annotation, batch mosaics, label and result plots, feature maps."""

import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from utils.plots import (
    Annotator,
    colors,
    feature_visualization,
    output_to_target,
    plot_images,
    plot_labels,
    plot_results,
    plot_val_study,
    save_one_box,
)

ROOT = Path(__file__).resolve().parents[1]


def test_import_has_no_matplotlib_side_effects():
    code = "import sys; import utils.plots, utils.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_colors_palette():
    c0, c1 = colors(0), colors(1)
    assert len(c0) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c0)
    assert c0 != c1
    assert colors(0, bgr=True) == c0[::-1]
    assert colors(colors.n) == c0  # wraps around


def test_annotator_draws_box_and_label_and_scales_line_width():
    im = np.zeros((100, 200, 3), dtype=np.uint8)
    a = Annotator(im)
    assert a.lw == 2  # minimum
    a.box_label([50, 40, 150, 90], "cat 0.87", color=(0, 0, 255))
    out = a.result()
    assert out is im  # drawn in place
    assert tuple(out[65, 50]) == (0, 0, 255)  # left edge of the box
    assert tuple(out[65, 100]) == (0, 0, 0)  # inside stays untouched
    assert (out[20:40, 50:80] == (0, 0, 255)).all(axis=2).sum() > 50  # filled label tag above the box
    assert Annotator(np.zeros((1280, 1920, 3), dtype=np.uint8)).lw == 5  # round((1280 + 1920 + 3) / 2 * 0.003)
    Annotator(im).box_label([0, 0, 10, 10], "Zürich")  # non-ASCII is drawn as '?' instead of failing
    with pytest.raises(TypeError, match="HWC numpy image"):
        Annotator(torch.zeros(3, 10, 10))


def test_output_to_target_hand_computed():
    out = [torch.tensor([[10.0, 20.0, 30.0, 60.0, 0.9, 2.0]]), torch.zeros((0, 6)),
           torch.tensor([[0.0, 0.0, 4.0, 4.0, 0.5, 1.0], [1.0, 1.0, 3.0, 3.0, 0.4, 0.0]])]
    t = output_to_target(out)
    assert t.shape == (3, 7)
    assert np.allclose(t[0], [0, 2, 20, 40, 20, 40, 0.9])
    assert t[1:, 0].tolist() == [2, 2]
    assert output_to_target(out, max_det=1).shape == (2, 7)


def test_plot_images_labels_and_predictions(tmp_path):
    images = torch.zeros(3, 3, 64, 64, dtype=torch.uint8)
    labels = torch.tensor([[0, 0, 0.5, 0.5, 0.5, 0.5], [2, 1, 0.25, 0.25, 0.25, 0.25]])  # normalised
    mosaic = plot_images(images, labels, paths=["a.jpg", "b.jpg", "c.jpg"], fname=tmp_path / "labels.jpg",
                         names={0: "circle", 1: "square"})
    assert mosaic.shape == (128, 128, 3)  # 3 images -> 2x2 grid
    saved = cv2.imread(str(tmp_path / "labels.jpg"))
    assert saved is not None and saved.shape == (128, 128, 3)

    def near(y, x, color):  # lines are anti-aliased: the closest pixel around (y, x) carries the colour
        patch = mosaic[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int)
        return np.abs(patch - color).max(1).min() < 40

    # image 0 sits top-left: its box (16..48) has class 0's colour on its left edge and an untouched inside
    assert near(32, 16, colors(0)) and not mosaic[32, 32].any()
    # image 2 is in the second column: its box (8..24) is shifted right by 64 px
    assert near(16, 64 + 8, colors(1)) and not near(16, 8, colors(1))

    preds_low = np.array([[1, 0, 32, 32, 20, 20, 0.2]])  # pixel boxes; conf 0.2 is not drawn
    preds_high = np.array([[1, 0, 32, 32, 20, 20, 0.9]])
    empty = plot_images(images, np.zeros((0, 7)), fname=tmp_path / "p0.jpg")
    low = plot_images(images, preds_low, fname=tmp_path / "p1.jpg")
    high = plot_images(images, preds_high, fname=tmp_path / "p2.jpg")
    assert np.array_equal(empty, low)
    assert not np.array_equal(empty, high)


def test_plot_images_downscales_large_batches(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (16, 3, 640, 640)).astype(np.uint8)
    mosaic = plot_images(images, np.zeros((0, 6)), fname=tmp_path / "big.jpg")
    assert max(mosaic.shape[:2]) <= 1920 + 4
    with pytest.raises(ValueError, match="BCHW"):
        plot_images(np.zeros((3, 64, 64)), np.zeros((0, 6)), fname=tmp_path / "bad.jpg")


def test_plot_labels(tmp_path, caplog):
    rng = np.random.default_rng(0)
    labels = np.concatenate((rng.integers(0, 3, (50, 1)), rng.uniform(0.1, 0.9, (50, 4))), 1)
    plot_labels(labels, names=["a", "b", "c"], save_dir=tmp_path)
    im = cv2.imread(str(tmp_path / "labels.jpg"))
    assert im is not None and im.shape[0] > 500
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        plot_labels(np.zeros((0, 5)), save_dir=empty_dir)
    assert not (empty_dir / "labels.jpg").exists()


def test_plot_results_every_column(tmp_path):
    cols = ["epoch", "train/box_loss", "train/obj_loss", "metrics/mAP_0.5", "x/lr0"]
    rows = [[e, 0.1 / (e + 1), 0.05, 0.1 * e, 0.01] for e in range(5)]
    text = ",".join(f"{c:>20s}" for c in cols) + "\n" + "\n".join(",".join(f"{v:>20.5g}" for v in r) for r in rows)
    (tmp_path / "results.csv").write_text(text + "\n")
    out = plot_results(tmp_path / "results.csv")
    assert out == tmp_path / "results.png"
    assert cv2.imread(str(out)) is not None
    assert plot_results(dir=tmp_path) == out
    with pytest.raises(FileNotFoundError, match="No results.csv"):
        plot_results(tmp_path / "missing.csv")


def test_plot_val_study(tmp_path):
    f = tmp_path / "study.csv"
    f.write_text("imgsz,P,R,mAP50,mAP50-95,box_loss,obj_loss,cls_loss,preprocess_ms,inference_ms,nms_ms\n"
                 "64,0.1,0.2,0.3,0.1,0,0,0,0.1,1.0,0.2\n96,0.2,0.3,0.4,0.2,0,0,0,0.1,2.0,0.2\n")
    out = plot_val_study(f)
    assert out == tmp_path / "study.png" and cv2.imread(str(out)) is not None


def test_feature_visualization(tmp_path):
    x = torch.randn(1, 12, 8, 8)
    f = feature_visualization(x, "models.common.C3", stage=2, n=10, save_dir=tmp_path)
    assert f == tmp_path / "stage2_C3_features.png" and cv2.imread(str(f)) is not None
    assert np.load(tmp_path / "stage2_C3_features.npy").shape == (12, 8, 8)
    assert feature_visualization(x, "models.yolo.Detect", stage=3, save_dir=tmp_path) is None
    assert feature_visualization(torch.randn(1, 4, 1, 1), "Conv", stage=0, save_dir=tmp_path) is None


def test_save_one_box(tmp_path):
    im = np.zeros((100, 100, 3), dtype=np.uint8)
    im[20:40, 30:70] = (255, 0, 0)  # BGR blue
    crop = save_one_box([30, 20, 70, 40], im, file=tmp_path / "crops" / "a.jpg", gain=1.0, pad=0, BGR=True)
    assert crop.shape == (20, 40, 3) and (crop == (255, 0, 0)).all()
    save_one_box([30, 20, 70, 40], im, file=tmp_path / "crops" / "a.jpg", gain=1.0, pad=0, BGR=True)
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["a.jpg", "a2.jpg"]  # never overwritten
    assert (save_one_box([30, 20, 70, 40], im, gain=1.0, pad=0, save=False) == (0, 0, 255)).all()  # RGB
