"""Tests for utils/plots.py: colours, cv2 annotation, batch mosaics, label and result plots, feature maps."""

import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from utils.loggers import RESULTS_KEYS, write_results_row
from utils.plots import (
    RESULTS_PANELS,
    Annotator,
    colors,
    feature_visualization,
    labels_correlogram,
    output_to_target,
    plot_images,
    plot_labels,
    plot_results,
    plot_val_study,
    results_figure,
    save_one_box,
    smooth,
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
    im = cv2.imread(str(tmp_path / "labels_correlogram.jpg"))
    assert im is not None and im.shape[:2] == (1600, 1600)  # 8x8 in at 200 dpi
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        plot_labels(np.zeros((0, 5)), save_dir=empty_dir)
    assert not (empty_dir / "labels.jpg").exists() and not (empty_dir / "labels_correlogram.jpg").exists()


def plt_close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_labels_correlogram_is_a_corner_pair_plot():
    rng = np.random.default_rng(1)
    boxes = np.column_stack((rng.uniform(0, 1, 300), rng.uniform(0, 0.5, 300), rng.uniform(0.1, 0.2, 300),
                             np.full(300, 0.75)))
    fig = labels_correlogram(boxes)
    try:
        assert len(fig.axes) == 10  # 4 histograms on the diagonal + 6 pairs below it, upper triangle removed
        grid = {(a.get_subplotspec().rowspan.start, a.get_subplotspec().colspan.start): a for a in fig.axes}
        assert set(grid) == {(i, j) for i in range(4) for j in range(i + 1)}
        names = ("x", "y", "width", "height")
        assert [grid[3, j].get_xlabel() for j in range(4)] == list(names)
        assert [grid[i, 0].get_ylabel() for i in range(1, 4)] == list(names[1:])
        for i in range(4):  # diagonal: 50-bin histogram of variable i holding every box
            heights = [p.get_height() for p in grid[i, i].patches]
            assert len(heights) == 50 and sum(heights) == 300
        counts = np.histogram(boxes[:, 3], bins=50, range=(0, 1))[0]
        assert [p.get_height() for p in grid[3, 3].patches] == counts.tolist()  # height is 0.75 everywhere
        for i, j in ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)):  # below: 2-D histogram, x = var j, y = var i
            mesh = grid[i, j].collections[0].get_array()
            want = np.histogram2d(boxes[:, j], boxes[:, i], bins=50, range=[[0, 1], [0, 1]])[0].T
            assert np.ma.filled(mesh, 0).reshape(50, 50).tolist() == want.tolist()
    finally:
        plt_close(fig)


def _results_csv(tmp_path, epochs: int = 4) -> Path:
    f = tmp_path / "results.csv"
    for e in range(epochs):
        write_results_row(f, e, [(k + 1) / (e + 1) for k in range(len(RESULTS_KEYS))])  # column k: (k+1)/(e+1)
    return f


def test_plot_results_v7_layout(tmp_path):
    f = _results_csv(tmp_path, epochs=4)
    out = plot_results(f)
    assert out == tmp_path / "results.png" and cv2.imread(str(out)).shape[:2] == (1200, 2400)  # 12x6 in at 200 dpi
    assert plot_results(dir=tmp_path) == out
    data = pd.read_csv(f)
    data.columns = [c.strip() for c in data.columns]
    fig = results_figure({"results": data})
    try:
        assert len(fig.axes) == 10
        assert [a.get_title() for a in fig.axes] == list(RESULTS_PANELS)
        assert RESULTS_PANELS == (*RESULTS_KEYS[:5], *RESULTS_KEYS[7:10], *RESULTS_KEYS[5:7])  # v7.0's order
        assert not any("lr" in a.get_title() for a in fig.axes)  # learning rates stay in results.csv
        rows = sorted({round(a.get_position().y0, 3) for a in fig.axes})
        cols = sorted({round(a.get_position().x0, 3) for a in fig.axes})
        assert len(rows) == 2 and len(cols) == 5
        for a, col in zip(fig.axes, RESULTS_PANELS):
            data_line, smooth_line = a.get_lines()
            k = RESULTS_KEYS.index(col)
            assert data_line.get_xdata().tolist() == [0, 1, 2, 3]
            assert data_line.get_ydata().tolist() == pytest.approx([(k + 1) / (e + 1) for e in range(4)], rel=1e-4)
            assert smooth_line.get_linestyle() == ":"
            assert smooth_line.get_ydata().tolist() == pytest.approx(smooth(data_line.get_ydata()).tolist())
            ticks = a.xaxis.get_major_locator().tick_values(0, 3)
            assert all(float(t).is_integer() for t in ticks)  # whole-number epochs
        legend = fig.axes[1].get_legend()
        assert [t.get_text() for t in legend.get_texts()] == ["results", "smooth"]
    finally:
        plt_close(fig)
    with pytest.raises(FileNotFoundError, match="No results.csv"):
        plot_results(tmp_path / "missing.csv")


def test_plot_results_warns_about_missing_columns(tmp_path, caplog):
    f = tmp_path / "results.csv"
    f.write_text("epoch,train/box_loss,metrics/mAP_0.5\n0,0.1,0.2\n1,0.05,0.3\n")
    with caplog.at_level(logging.WARNING, logger="yolov5"):
        assert plot_results(f).is_file()
    assert "results.csv has no column train/obj_loss" in caplog.text


def test_smooth_hand_computed():
    assert smooth(np.full(7, 2.5)).tolist() == pytest.approx([2.5] * 7)  # a constant is unchanged
    y = np.arange(40, dtype=float)
    assert smooth(y)[13:27].tolist() == pytest.approx(y[13:27].tolist())  # a line, away from the edges (4 sigma)
    assert smooth(y)[0] > y[0]  # the mirrored edge pulls the first value towards its neighbours
    assert smooth(np.array([1.0])).tolist() == [1.0]
    z = smooth(np.array([1.0, np.nan, 3.0, 3.0]))
    assert np.isfinite(z).all() and 1.0 < z[0] < 3.0  # a missing value is left out, not spread


def test_smooth_equals_scipy_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    y = np.random.default_rng(0).random(30)
    for sigma in (1.0, 3.0):
        assert smooth(y, sigma).tolist() == pytest.approx(ndimage.gaussian_filter1d(y, sigma).tolist(), abs=1e-12)


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
