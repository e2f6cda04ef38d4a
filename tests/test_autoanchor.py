"""AutoAnchor: best possible recall, k-means + evolution, keeping anchors only when they are better."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models.yolo import Model
from utils.autoanchor import anchor_metric, check_anchor_order, check_anchors, dataset_wh, kmean_anchors


def fake_dataset(wh_px, imgsz=640):
    """A dataset-like object: square imgsz images, one label per image with the given pixel sizes."""
    wh = np.asarray(wh_px, dtype=np.float32) / imgsz
    labels = [np.array([[0, 0.5, 0.5, w, h]], dtype=np.float32) for w, h in wh]
    return SimpleNamespace(shapes=np.full((len(labels), 2), imgsz), labels=labels)


def test_anchor_metric_by_hand():
    k = torch.tensor([[10.0, 10.0], [100.0, 100.0]])
    wh = torch.tensor([[10.0, 10.0], [50.0, 50.0], [200.0, 20.0]])
    bpr, aat = anchor_metric(k, wh, thr=4.0)
    # [10,10] fits anchor 0 exactly; [50,50] is 0.5x anchor 1; [200,20] is 20x/2x of anchor 0, 2x/0.2x of anchor 1
    assert bpr == pytest.approx(2 / 3)
    assert aat == pytest.approx(2 / 3)


def test_dataset_wh_rescales_to_long_side():
    ds = SimpleNamespace(shapes=np.array([[200, 100]]), labels=[np.array([[0, 0.5, 0.5, 0.5, 0.5]])])
    assert dataset_wh(ds, imgsz=640).tolist() == [[320.0, 160.0]]


def test_good_anchors_are_kept():
    model = Model("yolov5n.yaml", nc=2)
    before = model.model[-1].anchors.clone()
    rng = np.random.default_rng(0)
    wh = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198], [373, 326]])
    check_anchors(fake_dataset(np.repeat(wh, 5, 0) * rng.uniform(0.8, 1.2, (45, 2))), model, thr=4.0, imgsz=640)
    assert torch.equal(model.model[-1].anchors, before)


def test_poor_anchors_are_replaced_by_better_ones():
    np.random.seed(0)
    model = Model("yolov5n.yaml", nc=2)
    m = model.model[-1]
    before = m.anchors.clone()
    rng = np.random.default_rng(1)
    wh = np.concatenate([rng.uniform(500, 600, (30, 1)), rng.uniform(20, 30, (30, 1))], 1)  # long thin boxes
    ds = fake_dataset(wh)
    k_old = (before * m.stride.view(-1, 1, 1)).view(-1, 2)
    bpr_old = anchor_metric(k_old, torch.tensor(dataset_wh(ds)))[0]
    assert bpr_old < 0.98
    check_anchors(ds, model, thr=4.0, imgsz=640)
    k_new = (m.anchors * m.stride.view(-1, 1, 1)).view(-1, 2)  # stored in grid units
    assert not torch.equal(m.anchors, before)
    assert anchor_metric(k_new, torch.tensor(dataset_wh(ds)))[0] > bpr_old
    areas = k_new.prod(1).view(3, 3).mean(1)
    assert areas[0] <= areas[1] <= areas[2]  # smallest anchors on the smallest stride


def test_kmean_anchors_finds_clusters():
    np.random.seed(0)
    rng = np.random.default_rng(0)
    centres = np.array([[20, 20], [80, 40], [200, 300]])
    wh = np.concatenate([c * rng.uniform(0.9, 1.1, (40, 2)) for c in centres])
    k = kmean_anchors(fake_dataset(wh), n=3, img_size=640, thr=4.0, gen=200, verbose=False)
    assert k.shape == (3, 2) and k.dtype == np.float32
    assert np.all(np.diff(k.prod(1)) > 0)  # sorted by area
    assert np.allclose(k, centres, rtol=0.25)


def test_kmean_anchors_with_fewer_labels_than_anchors():
    np.random.seed(0)
    k = kmean_anchors(fake_dataset([[30, 40], [100, 90]]), n=9, img_size=640, gen=50, verbose=False)
    assert k.shape == (9, 2) and (k >= 2.0).all()


def test_check_anchor_order_reverses():
    m = SimpleNamespace(anchors=torch.tensor([[[100.0, 100.0]], [[10.0, 10.0]]]), stride=torch.tensor([8.0, 16.0]))
    check_anchor_order(m)
    assert m.anchors[:, 0, 0].tolist() == [10.0, 100.0]
