"""ComputeLoss: hand-checked target assignment, perfect predictions, label smoothing, level balance and gains."""

import math

import pytest
import torch

from models.yolo import Model
from utils.loss import ComputeLoss, FocalLoss, smooth_BCE

HYP = {"box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0}
NC = 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Model("yolov5n.yaml", nc=NC)


def make_loss(model, **hyp):
    model.hyp = {**HYP, **hyp}
    return ComputeLoss(model)


def zero_preds(bs=1, imgsz=64, fill=0.0):
    """Training-mode shaped outputs for a 64x64 input: grids 8, 4, 2 with 3 anchors each."""
    return [torch.full((bs, 3, imgsz // s, imgsz // s, 5 + NC), fill) for s in (8, 16, 32)]


def logit(p):
    return math.log(p / (1 - p))


def entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


TARGET = torch.tensor([[0, 1, 0.3, 0.7, 0.25, 0.25]])  # image 0, class 1, centre (0.3, 0.7), 16x16 px at 64


def test_single_target_assignment(model):
    """Level 0 (8x8): all 3 anchors fit a 2x2-cell box; centre (2.4, 5.6) also goes left and down."""
    cl = make_loss(model)
    tcls, tbox, indices, anchors = cl.build_targets(zero_preds(), TARGET)
    b, a, gj, gi = indices[0]
    got = sorted(zip(a.tolist(), gi.tolist(), gj.tolist()))
    assert got == sorted((ai, x, y) for ai in range(3) for x, y in [(2, 5), (1, 5), (2, 6)])
    assert (b == 0).all() and (tcls[0] == 1).all()
    for k in range(len(b)):  # xy relative to the assigned cell, wh in grid units
        assert torch.allclose(tbox[0][k], torch.tensor([2.4 - gi[k], 5.6 - gj[k], 2.0, 2.0]), atol=1e-5)
        assert torch.equal(anchors[0][k], cl.anchors[0][a[k]])
    # Level 1 (4x4): box is 1x1 cell; anchor 2 (3.69 x 7.44 cells) exceeds anchor_t=4; centre (1.2, 2.8)
    b, a, gj, gi = indices[1]
    got = sorted(zip(a.tolist(), gi.tolist(), gj.tolist()))
    assert got == sorted((ai, x, y) for ai in range(2) for x, y in [(1, 2), (0, 2), (1, 3)])
    # Level 2 (2x2): every anchor is more than 4x the 0.5-cell box
    assert len(indices[2][0]) == 0


def test_anchor_t_controls_matching(model):
    """With anchor_t 8 the level-2 anchor 0 (ratio 7.25) matches too."""
    cl = make_loss(model, anchor_t=8.0)
    _, _, indices, _ = cl.build_targets(zero_preds(), TARGET)
    assert 0 in indices[2][1].tolist()


def test_no_neighbour_outside_grid(model):
    """A centre in the first cell, near the left/top image edge, gets no neighbour beyond the edge."""
    cl = make_loss(model)
    t = torch.tensor([[0, 0, 0.05, 0.05, 0.25, 0.25]])  # level 0: centre (0.4, 0.4)
    _, _, indices, _ = cl.build_targets(zero_preds(), t)
    b, a, gj, gi = indices[0]
    assert set(zip(gi.tolist(), gj.tolist())) == {(0, 0)} and len(b) == 3


def perfect_preds(cl, targets, bs=1, cls_logits=(20.0, -20.0)):
    """Outputs that decode exactly to each assigned target box, confident objectness and class there."""
    p = zero_preds(bs, fill=0.0)
    for pi in p:
        pi[..., 4] = -20.0  # no object anywhere else
    tcls, tbox, indices, anchors = cl.build_targets(p, targets)
    for i, pi in enumerate(p):
        b, a, gj, gi = indices[i]
        for k in range(len(b)):
            xy, wh = tbox[i][k, :2], tbox[i][k, 2:]
            sig_wh = torch.sqrt(wh / anchors[i][k]) / 2  # (2 sigmoid)^2 * anchor = wh
            pi[b[k], a[k], gj[k], gi[k], 0:2] = torch.logit((xy + 0.5) / 2)
            pi[b[k], a[k], gj[k], gi[k], 2:4] = torch.logit(sig_wh)
            pi[b[k], a[k], gj[k], gi[k], 4] = 20.0
            pi[b[k], a[k], gj[k], gi[k], 5:] = cls_logits[1]
            pi[b[k], a[k], gj[k], gi[k], 5 + tcls[i][k]] = cls_logits[0]
    return p


def test_perfect_prediction_gives_zero_loss(model):
    cl = make_loss(model)
    loss, items = cl(perfect_preds(cl, TARGET), TARGET)
    assert items.shape == (3,)
    assert items[0] < 1e-5 and items[1] < 1e-5 and items[2] < 1e-5
    assert loss.item() < 3e-5


def test_box_loss_is_one_minus_ciou(model):
    """Predictions with the right centre and aspect but twice the size: IoU = CIoU = 1/4 on both levels."""
    cl = make_loss(model)
    p = perfect_preds(cl, TARGET)
    _, tbox, indices, anchors = cl.build_targets(p, TARGET)
    for i in range(2):
        b, a, gj, gi = indices[i]
        sig_wh = torch.sqrt(2 * tbox[i][:, 2:] / anchors[i]) / 2
        p[i][b, a, gj, gi, 2:4] = torch.logit(sig_wh)
    _, items = cl(p, TARGET)
    assert items[0].item() == pytest.approx(HYP["box"] * 2 * 0.75, rel=1e-4)


def test_label_smoothing_targets(model):
    """With eps the class targets are 1 - eps/2 and eps/2: logits equal to those are the loss minimum."""
    eps = 0.1
    cp, cn = smooth_BCE(eps)
    assert (cp, cn) == (pytest.approx(0.95), pytest.approx(0.05))
    cl = make_loss(model, label_smoothing=eps)
    p = perfect_preds(cl, TARGET, cls_logits=(logit(cp), logit(cn)))
    for pi in p:
        pi.requires_grad_(True)
    loss, items = cl(p, TARGET)
    # every class element is at its own target, so the BCE equals the target entropy H(0.05) = H(0.95)
    assert items[2].item() == pytest.approx(HYP["cls"] * 2 * entropy(0.05), rel=1e-4)
    loss.backward()
    assert max(pi.grad[..., 5:].abs().max().item() for pi in p) < 1e-6  # minimum: zero gradient


def test_objectness_balance_and_gains(model):
    """No targets: obj loss is obj * sum(balance_i * BCE(c_i, 0)), times the batch size; box and cls are 0."""
    cl = make_loss(model, obj=0.7)
    assert cl.balance == [4.0, 1.0, 0.4]
    p = zero_preds(bs=2)
    cs = (-1.0, 0.5, 2.0)
    for pi, c in zip(p, cs):
        pi[..., 4] = c
    loss, items = cl(p, torch.zeros((0, 6)))
    softplus = [math.log1p(math.exp(c)) for c in cs]  # BCE of logit c against target 0
    expected = 0.7 * (4.0 * softplus[0] + 1.0 * softplus[1] + 0.4 * softplus[2])
    assert items.tolist() == [0.0, pytest.approx(expected, rel=1e-5), 0.0]
    assert loss.item() == pytest.approx(2 * expected, rel=1e-5)


def test_single_class_has_no_class_loss():
    m = Model("yolov5n.yaml", nc=1)
    m.hyp = dict(HYP)
    cl = ComputeLoss(m)
    p = [torch.randn(1, 3, 64 // s, 64 // s, 6) for s in (8, 16, 32)]
    _, items = cl(p, torch.tensor([[0, 0, 0.5, 0.5, 0.3, 0.3]]))
    assert items[2] == 0 and items[0] > 0


def test_focal_loss_matches_formula():
    gamma, alpha = 2.0, 0.25
    fl = FocalLoss(torch.nn.BCEWithLogitsLoss(), gamma=gamma, alpha=alpha)
    x, y = torch.tensor([1.5, -0.5]), torch.tensor([1.0, 0.0])
    p = torch.sigmoid(x).tolist()  # plain floats: the reference is computed in Python, not with tensors
    expected = [-math.log(p[0]) * alpha * (1 - p[0]) ** gamma, -math.log(1 - p[1]) * (1 - alpha) * p[1] ** gamma]
    assert fl(x, y).item() == pytest.approx(sum(expected) / 2, rel=1e-5)


def test_fl_gamma_wraps_bce(model):
    cl = make_loss(model, fl_gamma=1.5)
    assert isinstance(cl.BCEcls, FocalLoss) and isinstance(cl.BCEobj, FocalLoss)


def test_autobalance_normalises_to_stride_16(model):
    model.hyp = dict(HYP)
    cl = ComputeLoss(model, autobalance=True)
    p = zero_preds(bs=1)
    cl(p, TARGET)
    assert cl.balance[1] == pytest.approx(1.0)
    assert cl.balance != [4.0, 1.0, 0.4]



def test_loss_drops_on_fixed_batch():
    """Training repeatedly on one batch must drive the loss down."""
    torch.manual_seed(0)
    m = Model("yolov5n.yaml", nc=NC)
    m.hyp = dict(HYP)
    cl = ComputeLoss(m)
    imgs = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 0, 0.3, 0.3, 0.3, 0.4], [0, 2, 0.7, 0.6, 0.2, 0.2], [1, 1, 0.5, 0.5, 0.5, 0.5]])
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    m.train()
    losses = []
    for _ in range(25):
        loss, _ = cl(m(imgs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses
