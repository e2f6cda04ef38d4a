"""utils/segment: mask cropping, masks from prototypes, rescaling, mask IoU, contours, metrics and the loss."""

import math

import numpy as np
import pytest
import torch

from models.yolo import SegmentationModel
from utils.segment.general import crop_mask, mask_iou, masks2segments, process_mask, process_mask_native, scale_image
from utils.segment.loss import ComputeLoss
from utils.segment.metrics import Metrics, ap_per_class_box_and_mask, fitness

HYP = {"box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0, "anchor_t": 4.0, "fl_gamma": 0.0}


def test_crop_mask_keeps_pixels_inside_the_box_only():
    masks = torch.ones(2, 6, 8)
    out = crop_mask(masks, torch.tensor([[1.0, 2.0, 4.0, 5.0], [0.0, 0.0, 8.0, 6.0]]))
    assert out[0].sum() == 3 * 3 and out[0, 2:5, 1:4].min() == 1 and out[0, 1, 1] == 0 and out[0, 2, 4] == 0
    assert out[1].sum() == 48


def test_process_mask_from_one_prototype():
    protos = torch.full((1, 4, 4), 10.0)  # sigmoid(10) > 0.5 everywhere before the crop
    masks = process_mask(protos, torch.ones(1, 1), torch.tensor([[0.0, 0.0, 8.0, 8.0]]), (16, 16))
    assert masks.shape == (1, 4, 4) and masks[0, :2, :2].all() and masks[0].sum() == 4  # box scaled by 4/16
    up = process_mask(protos, torch.ones(1, 1), torch.tensor([[0.0, 0.0, 8.0, 8.0]]), (16, 16), upsample=True)
    # cropped at prototype resolution, then resized bilinearly: the edge pixels blend with the zeros outside
    assert up.shape == (1, 16, 16) and up[0, :7, :7].all() and up[0, 9:].sum() == 0 and up[0, :, 9:].sum() == 0
    negative = process_mask(protos, -torch.ones(1, 1), torch.tensor([[0.0, 0.0, 16.0, 16.0]]), (16, 16))
    assert negative.sum() == 0


def test_process_mask_native_removes_the_letterbox_padding():
    protos = torch.zeros(1, 8, 8)
    protos[0, 2:6] = 10.0  # the image occupies rows 2..5 of a letterboxed 8x8 input (a 2:1 wide image)
    masks = process_mask_native(protos, torch.ones(1, 1), torch.tensor([[0.0, 0.0, 20.0, 10.0]]), (10, 20))
    assert masks.shape == (1, 10, 20) and masks.all()


def test_scale_image_cuts_padding_and_resizes():
    m = np.zeros((8, 8, 1), dtype=np.float32)
    m[2:6, :4] = 1.0  # left half of the image region (rows 2..5)
    out = scale_image((8, 8), m, (10, 20))
    assert out.shape == (10, 20, 1)
    assert out[:, :9].min() == 1 and out[:, 11:].max() == 0  # bilinear resize: one blended column each side
    with pytest.raises(ValueError, match="letterboxed input"):
        scale_image((16, 16), m, (10, 20))


def test_mask_iou_by_hand():
    a = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    assert mask_iou(a, b)[0].tolist() == pytest.approx([0.5, 0.0, 2 / 3], abs=1e-6)


def test_masks2segments_outlines_a_rectangle():
    m = torch.zeros(2, 10, 12)
    m[0, 2:6, 3:9] = 1  # rectangle: x 3..8, y 2..5
    seg = masks2segments(m)
    assert seg[0].shape[1] == 2 and seg[0][:, 0].min() == 3 and seg[0][:, 0].max() == 8
    assert seg[0][:, 1].min() == 2 and seg[0][:, 1].max() == 5
    assert seg[1].shape == (0, 2)  # empty mask
    with pytest.raises(ValueError, match="strategy"):
        masks2segments(m, strategy="smallest")


def test_fitness_weighs_boxes_and_masks():
    assert fitness(np.array([[0.9, 0.8, 0.5, 0.3, 0.9, 0.8, 0.4, 0.2]]))[0] == pytest.approx(0.05 + 0.27 + 0.04 + 0.18)


def test_box_and_mask_metrics_differ_where_their_matches_differ():
    tp_b = np.array([[True] * 10, [True] * 10])
    tp_m = np.array([[True] * 10, [False] * 10])
    res = ap_per_class_box_and_mask(tp_m, tp_b, np.array([0.9, 0.8]), np.array([0, 0]), np.array([0, 0]))
    metrics = Metrics()
    metrics.update(res)
    box, mask = metrics.mean_results()[:4], metrics.mean_results()[4:]
    assert box[1] == pytest.approx(1.0, abs=1e-3) and mask[1] == pytest.approx(0.5, abs=1e-3)
    assert box[3] > mask[3] > 0
    assert metrics.get_maps(2).tolist() == pytest.approx([box[3] + mask[3]] * 2)


def _loss_setup(overlap: bool):
    model = SegmentationModel("yolov5n-seg.yaml", nc=2)
    model.hyp = HYP
    return model, ComputeLoss(model, overlap=overlap)


def test_mask_loss_by_hand():
    """Zero predictions: every mask logit is 0, so the BCE is log 2 per pixel and the box-area weighting cancels."""
    model, loss = _loss_setup(overlap=False)
    p = [torch.zeros(1, 3, 64 // s, 64 // s, 5 + 2 + 32) for s in (8, 16, 32)]
    proto = torch.zeros(1, 32, 16, 16)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.25, 0.5]])  # 4 x 8 mask pixels of 16 x 16: area fraction 0.125
    masks = torch.zeros(1, 16, 16)
    masks[0, 4:12, 6:10] = 1
    _, items = loss((p, proto), targets, masks)
    levels = sum(len(b) > 0 for b, *_ in loss.build_targets(p, targets)[2])
    assert levels >= 1
    assert items[1].item() == pytest.approx(math.log(2) * levels * HYP["box"] / 1, rel=1e-5)


def test_overlap_and_separate_masks_give_the_same_loss():
    torch.manual_seed(0)
    p = [torch.randn(2, 3, 64 // s, 64 // s, 5 + 2 + 32) for s in (8, 16, 32)]
    proto = torch.randn(2, 32, 16, 16)
    targets = torch.tensor([[0, 0, 0.3, 0.3, 0.3, 0.3], [0, 1, 0.75, 0.7, 0.3, 0.4], [1, 1, 0.5, 0.5, 0.6, 0.5]])
    separate = torch.zeros(3, 16, 16)
    separate[0, 2:7, 2:7] = 1
    separate[1, 8:14, 10:14] = 1
    separate[2, 4:12, 3:13] = 1
    overlap = torch.zeros(2, 16, 16)
    overlap[0][separate[0] > 0] = 1
    overlap[0][separate[1] > 0] = 2
    overlap[1][separate[2] > 0] = 1
    total_s, items_s = _loss_setup(False)[1]((p, proto), targets, separate)
    total_o, items_o = _loss_setup(True)[1]((p, proto), targets, overlap)
    assert items_s.tolist() == pytest.approx(items_o.tolist(), rel=1e-6)
    assert total_s.item() == pytest.approx(total_o.item(), rel=1e-6)
    assert items_s[1] > 0  # the seg item is second: box, seg, obj, cls


def test_detection_items_equal_the_detection_loss():
    from utils.loss import ComputeLoss as DetectionLoss

    model, loss = _loss_setup(overlap=False)
    torch.manual_seed(1)
    p = [torch.randn(1, 3, 64 // s, 64 // s, 5 + 2 + 32) for s in (8, 16, 32)]
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.25, 0.5]])
    _, items = loss((p, torch.randn(1, 32, 16, 16)), targets, torch.ones(1, 16, 16))
    _, det = DetectionLoss(model)([x[..., :7].contiguous() for x in p], targets)
    assert [items[0].item(), items[2].item(), items[3].item()] == pytest.approx(det.tolist(), rel=1e-6)


def test_loss_trains_the_prototypes():
    model, loss = _loss_setup(overlap=True)
    levels, proto = model(torch.rand(2, 3, 64, 64))
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.5, 0.5], [1, 1, 0.4, 0.4, 0.3, 0.3]])
    masks = torch.zeros(2, 16, 16)
    masks[0, 4:12, 4:12] = 1
    masks[1, 4:9, 4:9] = 1
    total, items = loss((levels, proto), targets, masks)
    total.backward()
    assert items.shape == (4,) and torch.isfinite(total)
    assert model.model[-1].proto.cv3.conv.weight.grad.abs().sum() > 0


def _reference_seg_item(loss, p, proto, targets, masks):
    """The mask term written out target by target: for each level and image, the mean over its assigned rows of
    BCE(coefficients @ prototypes, mask) averaged inside the row's box (mask pixels) and divided by the box's area."""
    import torch.nn.functional as F

    _, tbox, indices, _, tidxs, xywhn = loss.assign_targets(p, targets)
    bs, nm, mh, mw = proto.shape
    total = 0.0
    for i, (b, a, gj, gi) in enumerate(indices):
        for img in sorted(set(b.tolist())):
            terms = []
            for k in (b == img).nonzero().flatten().tolist():
                coef = p[i][b[k], a[k], gj[k], gi[k], 5 + loss.nc :]
                logits = (coef @ proto[img].reshape(nm, -1)).reshape(mh, mw)
                gt = masks[tidxs[i][k]].float()
                x, y, w, h = (xywhn[i][k] * torch.tensor([mw, mh, mw, mh])).tolist()
                x1, y1, x2, y2 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
                inside = torch.zeros(mh, mw)
                for r in range(mh):
                    for c in range(mw):
                        inside[r, c] = float(x1 <= c < x2 and y1 <= r < y2)
                bce = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
                terms.append(float((bce * inside).mean()) / float(xywhn[i][k][2] * xywhn[i][k][3]))
            total += sum(terms) / len(terms)
    return total * HYP["box"] / bs


def test_mask_loss_matches_a_target_by_target_reference():
    torch.manual_seed(3)
    p = [torch.randn(2, 3, 64 // s, 64 // s, 5 + 2 + 32) for s in (8, 16, 32)]
    proto = torch.randn(2, 32, 16, 16)
    targets = torch.tensor([[0, 0, 0.3, 0.3, 0.3, 0.3], [0, 1, 0.7, 0.6, 0.4, 0.5], [1, 1, 0.5, 0.5, 0.6, 0.5]])
    masks = (torch.rand(3, 16, 16) > 0.5).float()
    _, loss = _loss_setup(overlap=False)
    _, items = loss((p, proto), targets, masks)
    ref = _reference_seg_item(loss, p, proto, targets, masks)
    assert items[1].item() == pytest.approx(ref, rel=1e-4)


def test_scale_image_resizes_more_masks_than_opencv_takes_at_once():
    m = np.zeros((8, 8, 300), dtype=np.uint8)
    m[2:6, :4, 299] = 1
    out = scale_image((8, 8), m, (10, 20))
    assert out.shape == (10, 20, 300) and out[:, :9, 299].min() == 1 and out[..., :299].max() == 0
