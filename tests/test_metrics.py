"""Tests for utils/metrics.py: hand-computed IoU, matching, AP and confusion-matrix cases, and COCOeval agreement."""

import contextlib
import io
import math

import numpy as np
import pytest
import torch

from utils.metrics import (
    ConfusionMatrix,
    ap_per_class,
    bbox_ioa,
    bbox_iou,
    box_iou,
    compute_ap,
    fitness,
    match_predictions,
    plot_mc_curve,
    plot_pr_curve,
    wh_iou,
)

IOUV = torch.linspace(0.5, 0.95, 10)

# IoU --------------------------------------------------------------------------------------------------------


def test_box_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    expected = torch.tensor([[25 / 175, 1.0, 0.0], [0.0, 4 / 100, 0.0]])
    assert torch.allclose(iou, expected, atol=1e-6)


def test_box_iou_empty_inputs():
    assert box_iou(torch.zeros((0, 4)), torch.tensor([[0.0, 0.0, 1.0, 1.0]])).shape == (0, 1)
    assert box_iou(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.zeros((0, 4))).shape == (1, 0)


def test_bbox_iou_plain_matches_box_iou_and_xywh():
    xyxy1 = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    xyxy2 = torch.tensor([[5.0, 5.0, 15.0, 15.0]])
    xywh1, xywh2 = torch.tensor([[5.0, 5.0, 10.0, 10.0]]), torch.tensor([[10.0, 10.0, 10.0, 10.0]])
    a = bbox_iou(xyxy1, xyxy2, xywh=False)
    b = bbox_iou(xywh1, xywh2, xywh=True)
    assert a.shape == (1, 1)
    assert a.item() == pytest.approx(1 / 7, abs=1e-6)
    assert b.item() == pytest.approx(1 / 7, abs=1e-6)


def test_giou_diou_ciou_disjoint_same_shape():
    # Unit squares 1 apart: IoU 0, enclosing box 3 x 1, centre distance 2
    b1, b2 = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    assert bbox_iou(b1, b2, xywh=False).item() == pytest.approx(0.0, abs=1e-6)
    assert bbox_iou(b1, b2, xywh=False, GIoU=True).item() == pytest.approx(-(3 - 2) / 3, abs=1e-6)
    assert bbox_iou(b1, b2, xywh=False, DIoU=True).item() == pytest.approx(-4 / 10, abs=1e-6)
    # equal aspect ratios: the CIoU shape term vanishes
    assert bbox_iou(b1, b2, xywh=False, CIoU=True).item() == pytest.approx(-4 / 10, abs=1e-6)


def test_ciou_aspect_term_hand_computed():
    b1, b2 = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[0.0, 0.0, 2.0, 1.0]])
    iou = 2 / 4
    rho2_c2 = 0.25 / 8  # centres (1, 1) and (1, 0.5); enclosing box 2 x 2
    v = 4 / math.pi**2 * (math.atan(2 / 1) - math.atan(2 / 2)) ** 2
    alpha = v / (v - iou + 1)
    assert bbox_iou(b1, b2, xywh=False, DIoU=True).item() == pytest.approx(iou - rho2_c2, abs=1e-5)
    assert bbox_iou(b1, b2, xywh=False, CIoU=True).item() == pytest.approx(iou - rho2_c2 - alpha * v, abs=1e-5)


def test_ciou_is_differentiable_and_broadcasts():
    pred = torch.tensor([[5.0, 5.0, 4.0, 6.0], [2.0, 2.0, 3.0, 3.0]], requires_grad=True)
    target = torch.tensor([[5.0, 5.0, 5.0, 5.0], [2.5, 2.0, 3.0, 2.0]])
    ciou = bbox_iou(pred, target, CIoU=True)
    assert ciou.shape == (2, 1)
    (1 - ciou).mean().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    one_vs_many = bbox_iou(target[:1], target, xywh=True)
    assert one_vs_many.shape == (2, 1)
    assert one_vs_many[0].item() == pytest.approx(1.0, abs=1e-6)


def test_bbox_ioa_and_wh_iou():
    ioa = bbox_ioa(np.array([0, 0, 10, 10]), np.array([[5, 5, 15, 15], [0, 0, 5, 5], [20, 20, 30, 30]]))
    assert np.allclose(ioa, [25 / 100, 1.0, 0.0], atol=1e-6)
    wh = wh_iou(torch.tensor([[2.0, 2.0]]), torch.tensor([[2.0, 2.0], [4.0, 1.0]]))
    assert torch.allclose(wh, torch.tensor([[1.0, 2 / 6]]), atol=1e-6)


# Matching ----------------------------------------------------------------------------------------------------


def test_match_predictions_one_detection_per_label_and_thresholds():
    labels = torch.tensor([[0.0, 0.0, 0.0, 10.0, 10.0]])
    dets = torch.tensor([
        [0.0, 0.0, 10.0, 10.0, 0.9, 0.0],  # exact: correct at every threshold
        [0.0, 0.0, 10.0, 10.0, 0.8, 0.0],  # duplicate of the same object: never correct
        [0.0, 0.0, 10.0, 10.0, 0.7, 1.0],  # wrong class
    ])
    correct = match_predictions(dets, labels, IOUV)
    assert correct.shape == (3, 10) and correct.dtype == torch.bool
    assert correct[0].all() and not correct[1].any() and not correct[2].any()

    # IoU 0.72 box: correct at 0.50 ... 0.70, not at 0.75 and above
    dets = torch.tensor([[0.0, 0.0, 10.0, 7.2, 0.9, 0.0]])
    correct = match_predictions(dets, labels, IOUV)
    assert correct[0].tolist() == [True] * 5 + [False] * 5


def test_match_predictions_first_detection_wins_as_in_v7():
    labels = torch.tensor([[0.0, 0.0, 0.0, 10.0, 10.0], [0.0, 20.0, 0.0, 30.0, 10.0]])
    dets = torch.tensor([[0.0, 0.0, 10.0, 6.0, 0.9, 0.0], [0.0, 0.0, 10.0, 9.0, 0.5, 0.0]])  # IoU 0.6 and 0.9
    correct = match_predictions(dets, labels, IOUV)
    # YOLOv5 v7.0: where both qualify (0.50-0.60) the label goes to the first (more confident) detection, not to
    # the better box; above 0.6 only the second one qualifies. A rule that re-sorts by IoU would credit det 1 at 0.5.
    assert correct[0].tolist() == [True] * 3 + [False] * 7
    assert correct[1].tolist() == [False] * 3 + [True] * 6 + [False]
    assert match_predictions(torch.zeros((0, 6)), labels, IOUV).shape == (0, 10)
    assert not match_predictions(dets, torch.zeros((0, 5)), IOUV).any()


def test_match_predictions_detection_keeps_only_its_best_label():
    # det 0 overlaps label A (IoU 0.75) and label B (IoU 0.8) and keeps only B; det 1 overlaps B alone (IoU 0.9).
    # v7.0 then gives B to det 0 (first in detection order) and leaves det 1 and label A unmatched.
    labels = torch.tensor([[0.0, 0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 10.0, 9.0]])
    dets = torch.tensor([[0.0, 0.0, 10.0, 7.5, 0.9, 0.0], [0.0, 0.0, 10.0, 8.1, 0.8, 0.0]])
    iou = box_iou(labels[:, 1:], dets[:, :4])
    assert torch.allclose(iou, torch.tensor([[0.75, 0.81], [7.5 / 9, 0.9]]), atol=1e-6)
    correct = match_predictions(dets, labels, torch.tensor([0.5]))
    assert correct[:, 0].tolist() == [True, False]  # an IoU re-sort would give B to det 1 and A to nobody


def _reference_matching(labels: list, dets: list, thr: float) -> list[bool]:
    """v7.0's rule in plain Python: each detection picks its best same-class label, each label its first picker."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        return iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih)

    picked = {}  # detection index -> label index
    for j, d in enumerate(dets):
        ious = [(iou(lb[1:], d[:4]), i) for i, lb in enumerate(labels) if lb[0] == d[5]]
        ious = [(v, i) for v, i in ious if v >= thr]
        if ious:
            picked[j] = max(ious)[1]
    winners = {}
    for j in sorted(picked):
        winners.setdefault(picked[j], j)
    correct = [False] * len(dets)
    for j in winners.values():
        correct[j] = True
    return correct


@pytest.mark.parametrize("seed", range(4))
def test_match_predictions_equals_reference_on_random_crowds(seed):
    rng = np.random.default_rng(seed)
    thresholds = [0.3, 0.5, 0.75]

    def crowd(centres, n):
        """n [cls, x1, y1, x2, y2] rows jittered around a few centres, so labels and detections compete."""
        c = centres[rng.integers(len(centres), size=n)] + rng.normal(0, 4, (n, 2))
        wh = rng.uniform(10, 30, (n, 2))
        return np.concatenate((rng.integers(2, size=(n, 1)), c - wh / 2, c + wh / 2), 1)

    for _ in range(25):
        centres = rng.uniform(20, 80, (rng.integers(1, 4), 2))
        labels = torch.tensor(crowd(centres, int(rng.integers(1, 6))), dtype=torch.float32)
        b = crowd(centres, int(rng.integers(1, 12)))
        conf = np.sort(rng.uniform(0, 1, len(b)))[::-1]  # NMS order: most confident first
        dets = torch.tensor(np.concatenate((b[:, 1:], conf[:, None], b[:, :1]), 1), dtype=torch.float32)
        correct = match_predictions(dets, labels, torch.tensor(thresholds))
        for k, t in enumerate(thresholds):
            assert correct[:, k].tolist() == _reference_matching(labels.tolist(), dets.tolist(), t)


# AP ------------------------------------------------------------------------------------------------------------


def test_compute_ap_known_values():
    # Perfect detector: YOLOv5's trapezoid over 101 points with a (1, 0) sentinel gives 0.995, not 1
    assert compute_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0]))[0] == pytest.approx(0.995, abs=1e-9)
    # Half the objects found, all correct: 0.5 at precision 1, then a straight line to (1, 0): 0.5 + 0.25
    assert compute_ap(np.array([0.5]), np.array([1.0]))[0] == pytest.approx(0.75, abs=1e-9)


def test_ap_per_class_three_labels_hand_computed():
    # One class, 3 labels; detections by confidence: TP, FP, TP -> recall 1/3, 1/3, 2/3, precision 1, 1/2, 2/3.
    # Precision envelope: 1 up to recall 1/3, 2/3 up to 2/3, then the line to (1, 0). Trapezoids on the 0.01 grid:
    # [0, .33]: .33 * 1; [.33, .34]: .01 * (1 + 2/3) / 2; [.34, .66]: .32 * 2/3;
    # [.66, .67]: .01 * (2/3 + .66) / 2 (the line is at .66 at recall .67); [.67, 1]: .33 * .66 / 2
    expected = 0.33 + 0.01 * (1 + 2 / 3) / 2 + 0.32 * 2 / 3 + 0.01 * (2 / 3 + 0.66) / 2 + 0.33 * 0.66 / 2
    tp = np.array([[True], [False], [True]])
    conf = np.array([0.9, 0.8, 0.7])
    tp_out, fp_out, p, r, f1, ap, classes = ap_per_class(tp, conf, np.zeros(3), np.zeros(3))
    assert classes.tolist() == [0]
    assert ap.shape == (1, 1)
    assert ap[0, 0] == pytest.approx(expected, abs=1e-9)
    # best F1 is at the end of the list: R 2/3, P 2/3
    assert r[0] == pytest.approx(2 / 3, abs=0.01) and p[0] == pytest.approx(2 / 3, abs=0.01)
    assert f1[0] == pytest.approx(2 / 3, abs=0.01)
    assert tp_out[0] == 2 and fp_out[0] == 1


def test_ap_per_class_classes_without_predictions_or_labels():
    # class 0: one perfect detection; class 1: a label but no detection; class 2: a detection but no label
    tp = np.array([[True] * 10, [False] * 10])
    conf = np.array([0.9, 0.8])
    pred_cls = np.array([0, 2])
    target_cls = np.array([0, 1])
    *_, ap, classes = ap_per_class(tp, conf, pred_cls, target_cls)
    assert classes.tolist() == [0, 1]  # only classes that have labels are reported
    assert ap.shape == (2, 10)
    assert np.allclose(ap[0], 0.995) and np.allclose(ap[1], 0.0)


def test_fitness_weights():
    assert fitness(np.array([[0.9, 0.8, 0.5, 0.3]]))[0] == pytest.approx(0.1 * 0.5 + 0.9 * 0.3)
    assert fitness(np.array([[0.0, 0.0, 0.5, 0.3, 1.0, 2.0, 3.0]])).shape == (1,)  # extra loss columns ignored


def _random_dataset(seed: int, n_img: int = 60, nc: int = 3):
    """Ground truths and detector-like predictions: jittered true boxes plus many low-confidence false ones."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n_img):
        g = []
        for _ in range(rng.integers(1, 7)):
            w, h = rng.uniform(20, 200, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            g.append([rng.integers(nc), x, y, x + w, y + h])
        g = np.array(g, dtype=np.float64)
        d = []
        for c, x1, y1, x2, y2 in g:
            if rng.random() < 0.85:
                s, w, h = rng.uniform(0.02, 0.15), x2 - x1, y2 - y1
                box = np.array([x1, y1, x2, y2]) + rng.normal(0, s, 4) * [w, h, w, h]
                d.append([*box, rng.uniform(0.2, 1.0), c if rng.random() < 0.9 else rng.integers(nc)])
        for _ in range(rng.integers(0, 91)):  # like a detector at conf 0.001: most false boxes score low
            w, h = rng.uniform(20, 200, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            conf = rng.uniform(0.001, 0.6) if rng.random() < 0.2 else rng.uniform(0.001, 0.1)
            d.append([x, y, x + w, y + h, conf, rng.integers(nc)])
        gts.append(g)
        dets.append(np.array(d, dtype=np.float64).reshape(-1, 6))
    return gts, dets


def _ours(gts, dets):
    stats = []
    for g, d in zip(gts, dets):
        d, g = torch.tensor(d, dtype=torch.float32), torch.tensor(g, dtype=torch.float32)
        d = d[d[:, 4].argsort(descending=True)]  # as NMS returns them: matching takes detection order as priority
        correct = match_predictions(d, g, IOUV)
        stats.append((correct.numpy(), d[:, 4].numpy(), d[:, 5].numpy(), g[:, 0].numpy()))
    tp, conf, pred_cls, target_cls = (np.concatenate(x) for x in zip(*stats))
    *_, ap, _ = ap_per_class(tp, conf, pred_cls, target_cls)
    return ap[:, 0].mean(), ap.mean()


def _cocoeval(gts, dets, nc: int = 3):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = []
    for i, g in enumerate(gts):
        for c, x1, y1, x2, y2 in g:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    results = [{"image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
               for i, d in enumerate(dets) for x1, y1, x2, y2, s, c in d]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in range(len(gts))], "annotations": anns,
                      "categories": [{"id": c} for c in range(nc)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[1], ev.stats[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_cocoeval(seed):
    pytest.importorskip("pycocotools")
    gts, dets = _random_dataset(seed)
    assert max(len(d) for d in dets) <= 100  # COCOeval's default maxDets
    map50, map50_95 = _ours(gts, dets)
    coco50, coco50_95 = _cocoeval(gts, dets)
    assert 0.1 < coco50_95 < 0.9  # a meaningful, non-degenerate case
    diff = abs(map50_95 - coco50_95)
    msg = (f"mAP@0.5:0.95 ap_per_class {map50_95:.4f} vs COCOeval {coco50_95:.4f} (diff {diff:.4f}); "
           f"mAP@0.5 {map50:.4f} vs {coco50:.4f}. Matching is the same; AP differs by interpolation: "
           f"YOLOv5 integrates a linear interpolation of the envelope closed by a (recall 1, precision 0) sentinel, "
           f"COCO averages the envelope at 101 recall points.")
    assert diff < 0.01, msg
    assert abs(map50 - coco50) < 0.02, msg


# Confusion matrix -------------------------------------------------------------------------------------------


def test_confusion_matrix_hand_computed():
    cm = ConfusionMatrix(nc=2, conf=0.25, iou_thres=0.45)
    labels = torch.tensor([[0.0, 0.0, 0.0, 10.0, 10.0], [1.0, 20.0, 20.0, 30.0, 30.0], [1.0, 50.0, 50.0, 60.0, 60.0]])
    dets = torch.tensor([
        [0.0, 0.0, 10.0, 10.0, 0.9, 0.0],  # right class at label 0
        [20.0, 20.0, 30.0, 30.0, 0.8, 0.0],  # wrong class (0) at a class-1 object
        [80.0, 80.0, 90.0, 90.0, 0.7, 1.0],  # class 1 on background
        [50.0, 50.0, 60.0, 60.0, 0.1, 1.0],  # below conf: ignored, so label 2 is missed
    ])
    cm.process_batch(dets, labels)
    expected = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 0]])  # rows predicted, columns true, last = background
    assert np.array_equal(cm.matrix, expected)
    tp, fp = cm.tp_fp()
    assert tp.tolist() == [1, 0] and fp.tolist() == [1, 1]

    cm.process_batch(None, torch.tensor([0.0, 1.0]))  # an image with no detections
    assert cm.matrix[2, 0] == 1 and cm.matrix[2, 1] == 2


def test_confusion_matrix_false_positives_without_any_match():
    cm = ConfusionMatrix(nc=1)
    cm.process_batch(torch.tensor([[100.0, 100.0, 110.0, 110.0, 0.9, 0.0]]), torch.tensor([[0.0, 0, 0, 10, 10]]))
    assert cm.matrix[0, 1] == 1 and cm.matrix[1, 0] == 1  # one false positive, one missed label


def test_metric_plots_written(tmp_path):
    cm = ConfusionMatrix(nc=2)
    cm.process_batch(torch.tensor([[0.0, 0, 10, 10, 0.9, 0]]), torch.tensor([[0.0, 0, 0, 10, 10]]))
    cm.plot(save_dir=tmp_path, names=["a", "b"])
    tp = np.array([[True], [False], [True], [True]])
    ap_per_class(tp, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 0, 1, 1]), np.array([0, 1, 1]), plot=True,
                 save_dir=tmp_path, names={0: "a", 1: "b"})
    for f in ("confusion_matrix.png", "PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png"):
        assert (tmp_path / f).stat().st_size > 1000, f
    plot_pr_curve(np.linspace(0, 1, 1000), np.zeros((1000, 0)), np.zeros((0, 1)), tmp_path / "empty_pr.png")
    plot_mc_curve(np.linspace(0, 1, 1000), np.zeros((0, 1000)), tmp_path / "empty_mc.png")
    assert (tmp_path / "empty_pr.png").exists() and (tmp_path / "empty_mc.png").exists()
