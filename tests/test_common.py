"""Building blocks: PConv forward modes, CSPPC structure and gradients, Conv fusing."""

import pytest
import torch

from models.common import C3, CSPPC, SPPF, Bottleneck, Concat, Conv, DualPConv, PConv, autopad


def test_autopad_same():
    assert autopad(3) == 1
    assert autopad(5) == 2
    assert autopad(3, d=2) == 2
    assert autopad([3, 5]) == [1, 2]
    assert autopad(3, p=0) == 0


def test_conv_layout_matches_yolov5():
    m = Conv(8, 16, 3, 2)
    assert m.conv.bias is None and m.conv.stride == (2, 2) and m.conv.padding == (1, 1)
    assert m.bn.eps == 0.001 and m.bn.momentum == 0.03
    assert isinstance(m.act, torch.nn.SiLU)
    assert isinstance(Conv(8, 16, act=False).act, torch.nn.Identity)
    assert Conv(8, 16, 3, 2)(torch.rand(1, 8, 32, 32)).shape == (1, 16, 16, 16)


def test_block_attributes():
    b = Bottleneck(16, 16)
    assert b.add and hasattr(b, "cv1") and hasattr(b, "cv2")
    assert not Bottleneck(16, 32).add
    c3 = C3(16, 32, n=2)
    assert len(c3.m) == 2 and all(hasattr(c3, k) for k in ("cv1", "cv2", "cv3"))
    s = SPPF(32, 32)
    assert s.m.kernel_size == 5
    assert Concat().d == 1


@pytest.mark.parametrize("dim,n_div", [(16, 4), (32, 4), (12, 3)])
def test_pconv_modes_equal_and_input_untouched(dim, n_div):
    torch.manual_seed(0)
    a = PConv(dim, n_div, "split_cat").eval()
    b = PConv(dim, n_div, "slicing").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, dim, 9, 7)
    x_before = x.clone()
    ya, yb = a(x), b(x)
    assert torch.equal(x, x_before), "PConv modified its input"
    assert torch.allclose(ya, yb, atol=1e-6)
    k = dim // n_div
    assert torch.equal(ya[:, k:], x[:, k:]), "untouched channels changed"
    assert not torch.allclose(ya[:, :k], x[:, :k])


def test_pconv_slicing_refuses_training_and_bad_mode():
    with pytest.raises(RuntimeError, match="inference only"):
        PConv(16, forward="slicing").train()(torch.rand(1, 16, 4, 4))
    with pytest.raises(ValueError, match="split_cat"):
        PConv(16, forward="copy")


def test_pconv_parameter_count():
    assert sum(p.numel() for p in PConv(64).parameters()) == 16 * 16 * 9


@pytest.mark.parametrize("n", [1, 2, 3])
def test_csppc_structure(n):
    m = CSPPC(32, 64, n=n)
    c = 32
    assert m.c == c
    assert m.cv1.conv.out_channels == 2 * c
    assert m.cv2.conv.in_channels == (2 + n) * c
    assert len(m.m) == n and all(isinstance(b, DualPConv) for b in m.m)
    # a DualPConv has no BatchNorm, activation or residual: only two partial 3x3 convolutions
    for b in m.m:
        kinds = {type(x) for x in b.modules()} - {DualPConv, PConv}
        assert kinds == {torch.nn.Conv2d}
    assert m(torch.rand(2, 32, 16, 16)).shape == (2, 64, 16, 16)


def test_csppc_accepts_c3_arguments():
    m = CSPPC(32, 32, 1, False, 1, 0.5)
    assert m(torch.rand(1, 32, 8, 8)).shape == (1, 32, 8, 8)


def test_csppc_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = CSPPC(16, 32, n=2).train()
    m(torch.randn(2, 16, 12, 12)).square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"
