"""CAM heatmaps: EigenCAM and Grad-CAM of a model trained in the fixture to find one circle, and detect.py --cam."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detect
from models.experimental import attempt_load
from models.yolo import DetectionModel
from utils.cam import DetectionCAM, overlay_cam, principal_projection, unletterbox
from utils.general import non_max_suppression, yaml_load
from utils.loss import ComputeLoss

S = 96  # training and test image size


def circle_image(seed: int, h: int = S, w: int = S) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR image with one yellow circle on a noisy dark background, and the circle's xyxy box."""
    rng = np.random.default_rng(seed)
    im = (rng.random((h, w, 3)) * 80 + 30).astype(np.uint8)
    r = int(rng.integers(12, 20))
    x, y = int(rng.integers(r + 4, w - r - 4)), int(rng.integers(r + 4, h - r - 4))
    cv2.circle(im, (x, y), r, (40, 220, 240), -1)
    return im, (x - r, y - r, x + r, y + r)


def to_input(im: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(im[..., ::-1].copy()).permute(2, 0, 1).float()[None] / 255


@pytest.fixture(scope="module")
def circle_weights(tmp_path_factory) -> Path:
    """yolov5n (nc=1) fitted for 40 Adam steps to 8 one-circle images; BatchNorm statistics re-estimated at the end."""
    torch.manual_seed(0)
    ims, targets = [], []
    for i in range(8):
        im, (x1, y1, x2, y2) = circle_image(i)
        ims.append(to_input(im)[0])
        targets.append([i, 0, (x1 + x2) / 2 / S, (y1 + y2) / 2 / S, (x2 - x1) / S, (y2 - y1) / S])
    x, t = torch.stack(ims), torch.tensor(targets)
    model = DetectionModel("yolov5n.yaml", nc=1)
    model.hyp, model.names = yaml_load("data/hyps/hyp.scratch-low.yaml"), {0: "circle"}
    loss_fn, opt = ComputeLoss(model), torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(40):
        loss, _ = loss_fn(model(x), t)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:  # 40 steps at BN momentum 0.03 leave the running statistics far behind: average them afresh
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        model(x)
    for m in bns:
        m.momentum = 0.03
    f = tmp_path_factory.mktemp("cam") / "circle.pt"
    torch.save({"epoch": -1, "model": model.eval().half(), "ema": None, "optimizer": None, "updates": None,
                "best_fitness": None, "opt": {}, "date": None}, f)
    return f


def one_strong_detection(model, x: torch.Tensor) -> list[float]:
    with torch.no_grad():
        det = non_max_suppression(model(x)[0], 0.25, 0.45)[0]
    assert len(det) == 1 and float(det[0, 4]) > 0.5, f"expected one strong detection, got {det.tolist()}"
    return det[0, :4].tolist()


def inside_outside(heat: np.ndarray, box) -> tuple[float, float]:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    mask = np.zeros(heat.shape, bool)
    mask[max(y1, 0):y2, max(x1, 0):x2] = True
    return float(heat[mask].mean()), float(heat[~mask].mean())


def check_heat(heat: np.ndarray, box, shape) -> None:
    assert heat.shape == shape
    assert float(heat.std()) > 0.05  # not constant
    inside, outside = inside_outside(heat, box)
    assert inside > outside + 0.2, (inside, outside)


# The heads' inputs at 96 px: layer 17 (P3, 12x12 cells) and 20 (P4, 6x6) resolve a 24-40 pixel circle; the default
# layer 23 (P5, 3x3 cells at this size) is too coarse for a box test and is only checked for size and range.
@pytest.mark.slow
@pytest.mark.parametrize("layer", [17, 20])
@pytest.mark.parametrize("seed", [100, 101, 102])
def test_eigencam_fused_model_is_bright_on_the_detection(circle_weights, seed, layer):
    model = attempt_load(circle_weights, fuse=True)  # EigenCAM needs no gradients: the fused inference model
    im, _ = circle_image(seed)
    x = to_input(im)
    box = one_strong_detection(model, x)
    with torch.inference_mode():  # as detect.py calls it
        heat = DetectionCAM(model, "eigen", layer=layer)(x)[0]
    check_heat(heat, box, (S, S))


@pytest.mark.slow
@pytest.mark.parametrize("layer", [17, 20])
@pytest.mark.parametrize("fuse", [False, True])
def test_gradcam_is_bright_on_the_detection(circle_weights, fuse, layer):
    model = attempt_load(circle_weights, fuse=fuse)
    im, _ = circle_image(100)
    x = to_input(im)
    box = one_strong_detection(model, x)
    with torch.inference_mode():  # detect.py loads and runs under inference mode; Grad-CAM must step out of it
        heat = DetectionCAM(model, "gradcam", layer=layer)(x)[0]
    check_heat(heat, box, (S, S))


@pytest.mark.slow
def test_default_layer_is_the_last_before_detect(circle_weights):
    model = attempt_load(circle_weights, fuse=True)
    cam = DetectionCAM(model, "eigen")
    assert cam.layer == 23 and cam.layer == len(model.model) - 2
    with torch.inference_mode():
        heat = cam(to_input(circle_image(100, 128, 160)[0]))
    assert heat.shape == (1, 128, 160) and 0.0 <= float(heat.min()) < float(heat.max()) <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["eigen", "gradcam"])
def test_detect_cli_saves_cam_beside_each_image(circle_weights, tmp_path, method):
    src = tmp_path / "src"
    src.mkdir()
    im, _ = circle_image(103, h=72, w=120)  # not square: the letterbox padding must be cut off the heatmap
    cv2.imwrite(str(src / "one.png"), im)
    opt = detect.parse_opt(["--weights", str(circle_weights), "--source", str(src), "--imgsz", "128", "--device", "cpu",
                            "--project", str(tmp_path / "runs"), "--cam", method, "--cam-layer", "17", "--save-txt"])
    assert opt.cam == method and opt.cam_layer == 17
    out = detect.main(opt)
    annotated, cam = cv2.imread(str(out / "one.png")), cv2.imread(str(out / "one_cam.jpg"))
    assert cam is not None and cam.shape == annotated.shape == im.shape
    # the heat shows as red-yellow over the most confident detection and blue far from it
    cls, xc, yc, w, h = (float(v) for v in (out / "labels" / "one.txt").read_text().splitlines()[0].split())
    x1, y1, x2, y2 = int((xc - w / 2) * 120), int((yc - h / 2) * 72), int((xc + w / 2) * 120), int((yc + h / 2) * 72)
    red_minus_blue = cam[..., 2].astype(float) - cam[..., 0].astype(float)
    inside, outside = inside_outside(red_minus_blue, (x1, y1, x2, y2))
    assert inside > outside


def test_principal_projection_sign_follows_activation_energy():
    rng = np.random.default_rng(0)
    for flip in (1.0, -1.0):
        a = rng.normal(0, 0.1, (1, 16, 8, 8))
        pattern = rng.normal(0, 1, 16)
        a[0, :, 2:4, 5:7] += 3 * flip * pattern[:, None, None]  # a strong response in one region
        proj = principal_projection(a)[0]
        assert proj.shape == (8, 8)
        assert proj[2:4, 5:7].min() > np.delete(proj.ravel(), [21, 22, 29, 30]).max()


def test_unletterbox_removes_padding_and_restores_size():
    # a 50x100 image letterboxed into 96x96: gain 0.96, content 48x96, 24 rows of padding above and below
    heat = np.zeros((96, 96), np.float32)
    heat[24:72] = 1.0
    out = unletterbox(heat, (50, 100, 3))
    assert out.shape == (50, 100) and float(out.min()) == 1.0
    overlaid = overlay_cam(np.zeros((50, 100, 3), np.uint8), out)
    assert overlaid.shape == (50, 100, 3) and overlaid.dtype == np.uint8


def test_cam_rejects_bad_method_layer_and_model():
    model = DetectionModel("yolov5n.yaml", nc=1).eval()
    with pytest.raises(ValueError, match="unknown method 'score'"):
        DetectionCAM(model, "score")
    with pytest.raises(ValueError, match=r"--cam-layer 24 is out of range: the model has layers 0..23"):
        DetectionCAM(model, "eigen", layer=24)
    with pytest.raises(TypeError, match="DetectionModel"):
        DetectionCAM(torch.nn.Conv2d(3, 3, 1), "eigen")
