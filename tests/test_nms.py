"""Tests for utils.general.non_max_suppression: hand-built cases and a pure-Python greedy NMS reference."""

import numpy as np
import pytest
import torch

from utils.general import non_max_suppression


def _pred(rows, nc=2):
    """Build a (1, n, 5 + nc) prediction from rows (x, y, w, h, obj, cls scores...)."""
    t = torch.tensor(rows, dtype=torch.float32).reshape(1, -1, 5 + nc)
    return t


def test_rejects_bad_thresholds_and_shapes():
    p = _pred([[50, 50, 20, 20, 0.9, 1.0, 0.0]])
    with pytest.raises(ValueError, match="confidence threshold 1.5"):
        non_max_suppression(p, conf_thres=1.5)
    with pytest.raises(ValueError, match="IoU threshold -0.1"):
        non_max_suppression(p, iou_thres=-0.1)
    with pytest.raises(ValueError, match="got \\(1, 5\\)"):
        non_max_suppression(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="nc >= 1"):
        non_max_suppression(torch.zeros(1, 3, 5))


def test_hand_built_case_class_aware_and_agnostic():
    p = _pred([
        [50, 50, 20, 20, 0.9, 1.0, 0.0],  # A: class 0, conf 0.9
        [52, 50, 20, 20, 0.8, 1.0, 0.0],  # B: class 0, IoU 360/440 = 0.82 with A -> suppressed
        [52, 50, 20, 20, 0.8, 0.0, 1.0],  # C: class 1 on the same spot -> kept (different class)
        [200, 200, 20, 20, 0.2, 1.0, 0.0],  # D: conf 0.2 below 0.25 -> dropped
        [300, 300, 20, 20, 0.5, 0.4, 0.0],  # E: obj 0.5 but conf = obj * cls = 0.2 -> dropped
    ])
    before = p.clone()
    out = non_max_suppression(p, conf_thres=0.25, iou_thres=0.45)
    assert torch.equal(p, before)  # input untouched
    assert len(out) == 1 and out[0].shape == (2, 6)
    expected = torch.tensor([[40.0, 40.0, 60.0, 60.0, 0.9, 0.0], [42.0, 40.0, 62.0, 60.0, 0.8, 1.0]])
    assert torch.allclose(out[0], expected, atol=1e-5)

    agnostic = non_max_suppression(p, conf_thres=0.25, iou_thres=0.45, agnostic=True)[0]
    assert agnostic.shape == (1, 6) and agnostic[0, 5] == 0  # C now suppressed by A
    loose = non_max_suppression(p, conf_thres=0.25, iou_thres=0.9)[0]
    assert loose.shape == (3, 6)  # IoU 0.82 < 0.9: B survives


def test_multi_label_classes_filter_and_max_det():
    p = _pred([[50, 50, 20, 20, 1.0, 0.9, 0.5]])
    assert non_max_suppression(p, multi_label=False)[0][:, 5].tolist() == [0.0]
    multi = non_max_suppression(p, multi_label=True)[0]
    assert multi[:, 5].tolist() == [0.0, 1.0] and multi[:, 4].tolist() == pytest.approx([0.9, 0.5])
    only1 = non_max_suppression(p, multi_label=True, classes=[1])[0]
    assert only1[:, 5].tolist() == [1.0]

    grid = [[20 + 40 * i, 20 + 40 * j, 10, 10, 0.5 + 0.001 * (i * 10 + j), 1.0, 0.0]
            for i in range(10) for j in range(10)]
    capped = non_max_suppression(_pred(grid), max_det=7)[0]
    assert capped.shape == (7, 6)
    assert torch.all(capped[:-1, 4] >= capped[1:, 4])  # highest confidence first


def test_batch_tuple_input_and_empty_images():
    p = torch.zeros(3, 4, 7)
    p[1, 0] = torch.tensor([50, 50, 20, 20, 0.9, 0.0, 1.0])
    out = non_max_suppression((p, [torch.zeros(1)]))  # eval-mode model output (pred, raw maps)
    assert [o.shape[0] for o in out] == [0, 1, 0]
    assert out[0].shape == (0, 6) and out[1][0, 5] == 1


def test_hybrid_labels_added_as_certain_predictions():
    p = _pred([[50, 50, 20, 20, 0.9, 1.0, 0.0]])
    labels = [torch.tensor([[1.0, 200.0, 200.0, 40.0, 40.0]])]  # [cls, x, y, w, h] in pixels
    out = non_max_suppression(p, labels=labels)[0]
    assert out.shape == (2, 6)
    assert out[0].tolist() == pytest.approx([180.0, 180.0, 220.0, 220.0, 1.0, 1.0])


def _greedy_nms_reference(boxes, scores, classes, iou_thres):
    """Textbook greedy NMS per class in plain Python."""
    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    keep = []
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):
        if all(classes[j] != classes[i] or iou(boxes[i], boxes[j]) <= iou_thres for j in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_greedy_reference_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    n, nc = 300, 4
    xy = rng.uniform(0, 160, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    obj = rng.uniform(0, 1, (n, 1))
    cls = rng.uniform(0, 1, (n, nc))
    p = torch.tensor(np.concatenate((xy, wh, obj, cls), 1), dtype=torch.float32)[None]
    out = non_max_suppression(p, conf_thres=0.1, iou_thres=0.5, max_det=1000)[0]

    conf_all = (obj * cls)
    best, score = conf_all.argmax(1), conf_all.max(1)
    cand = np.where(score > 0.1)[0]
    boxes = np.concatenate((xy - wh / 2, xy + wh / 2), 1).astype(np.float32).astype(np.float64)
    keep = _greedy_nms_reference(boxes[cand].tolist(), score[cand].tolist(), best[cand].tolist(), 0.5)
    # compare as plain Python floats and ints, one flat list each (classes exactly, scores to 1e-5)
    expected = sorted(zip(score[cand][keep].tolist(), best[cand][keep].tolist()))
    got = sorted(zip(out[:, 4].tolist(), out[:, 5].long().tolist()))
    assert len(got) == len(expected) > 10
    assert [c for _, c in got] == [c for _, c in expected]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in expected], abs=1e-5)


def test_cap_keeps_the_most_confident_pairs():
    # 400 disjoint boxes x 80 classes = 32000 (box, class) pairs above threshold, more than the 30000 NMS takes;
    # nothing overlaps within a class, so exactly the 30000 most confident pairs must come out
    g = torch.Generator().manual_seed(0)
    xy = torch.stack(torch.meshgrid(torch.arange(20), torch.arange(20), indexing="ij"), -1).reshape(-1, 2) * 20.0 + 10
    p = torch.cat((xy, torch.full((400, 2), 10.0), torch.ones(400, 1), torch.rand(400, 80, generator=g) * 0.9 + 0.05),
                  1)[None]
    out = non_max_suppression(p, conf_thres=0.01, multi_label=True, max_det=40000)[0]
    assert out.shape == (30000, 6)
    expected = p[0, :, 5:].flatten().sort(descending=True).values[:30000]
    assert torch.allclose(out[:, 4].sort(descending=True).values, expected)
