"""PyTorch helpers: devices, timing, model summaries, BatchNorm folding, DDP utilities."""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from copy import deepcopy

import torch
import torch.distributed as dist
import torch.nn as nn

from utils.general import LOGGER

LOCAL_RANK = int(os.getenv("LOCAL_RANK", -1))


def smart_inference_mode():
    """torch.inference_mode where it exists (torch>=1.9), else torch.no_grad."""
    return torch.inference_mode() if hasattr(torch, "inference_mode") else torch.no_grad()


@contextmanager
def torch_distributed_zero_first(local_rank: int):
    """Let local rank 0 run a block first (e.g. build a dataset cache) while the other ranks wait."""
    if local_rank not in {-1, 0}:
        dist.barrier(device_ids=[local_rank] if dist.get_backend() == "nccl" else None)
    yield
    if local_rank == 0:
        dist.barrier(device_ids=[0] if dist.get_backend() == "nccl" else None)


def select_device(device: str | torch.device = "", batch_size: int = 0) -> torch.device:
    """Parse 'cpu', '0', '0,1' or '' (first CUDA device if any) into a torch.device, checking availability."""
    if isinstance(device, torch.device):
        return device
    s = str(device).strip().lower().replace("cuda:", "").replace("none", "")
    cpu = s == "cpu"
    mps = s == "mps"
    if cpu or mps:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    elif s:
        if not torch.cuda.is_available() or torch.cuda.device_count() < len(s.replace(",", "")):
            raise ValueError(f"Invalid CUDA '--device {device}' requested, use '--device cpu' or pass valid CUDA device(s)")
    if not cpu and not mps and torch.cuda.is_available():
        devices = s.split(",") if s else ["0"]
        n = len(devices)
        if n > 1 and batch_size > 0 and batch_size % n:
            raise ValueError(f"batch-size {batch_size} not multiple of GPU count {n}")
        info = ", ".join(f"CUDA:{d} ({torch.cuda.get_device_properties(i).name})" for i, d in enumerate(devices))
        LOGGER.info(f"torch-{torch.__version__} {info}")
        return torch.device(f"cuda:{max(LOCAL_RANK, 0)}" if LOCAL_RANK >= 0 else "cuda:0")
    if mps and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    LOGGER.info(f"torch-{torch.__version__} CPU")
    return torch.device("cpu")


def time_sync() -> float:
    """time.time() after waiting for pending CUDA work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.time()


def is_parallel(model: nn.Module) -> bool:
    """True for DataParallel and DistributedDataParallel wrappers."""
    return type(model) in (nn.parallel.DataParallel, nn.parallel.DistributedDataParallel)


def de_parallel(model: nn.Module) -> nn.Module:
    """The model inside a DP/DDP wrapper, or the model itself."""
    return model.module if is_parallel(model) else model


def initialize_weights(model: nn.Module) -> None:
    """YOLOv5's BatchNorm and activation settings for a fresh model (convolutions keep torch's default init)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
            m.momentum = 0.03
        elif isinstance(m, (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU)):
            m.inplace = True


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d with bias equal to conv followed by bn in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, kernel_size=conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
    ).requires_grad_(False).to(conv.weight.device)
    w_conv = conv.weight.clone().view(conv.out_channels, -1)
    scale = bn.weight.div(torch.sqrt(bn.eps + bn.running_var))
    fused.weight.copy_((scale[:, None] * w_conv).view(fused.weight.shape))
    b_conv = torch.zeros(conv.weight.shape[0], device=conv.weight.device) if conv.bias is None else conv.bias
    b_bn = bn.bias - bn.weight.mul(bn.running_mean).div(torch.sqrt(bn.running_var + bn.eps))
    fused.bias.copy_(scale * b_conv + b_bn)
    return fused


def get_flops(model: nn.Module, imgsz: int | list[int] = 640) -> float:
    """GFLOPs (2 x MACs, thop) of a model at imgsz, or 0.0 when thop is unavailable or fails."""
    try:
        import thop
    except ImportError:
        return 0.0
    p = next(model.parameters())
    stride = max(int(model.stride.max()), 32) if hasattr(model, "stride") else 32
    im = torch.empty((1, p.shape[1] if p.dim() > 1 else 3, stride, stride), device=p.device)
    try:
        with warnings_off():
            flops = thop.profile(deepcopy(model), inputs=(im,), verbose=False)[0] / 1e9 * 2
    except Exception as e:  # thop fails on some custom ops: a summary without GFLOPs is still useful
        LOGGER.debug(f"thop profiling failed: {e}")
        return 0.0
    imgsz = imgsz if isinstance(imgsz, list) else [imgsz, imgsz]
    return flops * imgsz[0] / stride * imgsz[1] / stride


@contextmanager
def warnings_off():
    """Silence warnings inside a block."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def model_info(model: nn.Module, verbose: bool = False, imgsz: int | list[int] = 640) -> tuple[int, int, int, float]:
    """Log and return (layers, parameters, gradients, GFLOPs at imgsz)."""
    n_p = sum(x.numel() for x in model.parameters())
    n_g = sum(x.numel() for x in model.parameters() if x.requires_grad)
    n_l = len(list(model.modules()))
    if verbose:
        LOGGER.info(f"{'layer':>5} {'name':>40} {'gradient':>9} {'parameters':>12} {'shape':>20} {'mu':>10} {'sigma':>10}")
        for i, (name, p) in enumerate(model.named_parameters()):
            LOGGER.info(
                f"{i:5g} {name:>40} {str(p.requires_grad):>9} {p.numel():12g} {str(list(p.shape)):>20} "
                f"{p.mean():10.3g} {p.std() if p.numel() > 1 else 0:10.3g}"
            )
    flops = get_flops(model, imgsz)
    name = getattr(model, "yaml_file", "") or "Model"
    LOGGER.info(f"{name} summary: {n_l} layers, {n_p:,} parameters, {n_g:,} gradients, {flops:.1f} GFLOPs")
    return n_l, n_p, n_g, flops


def scale_img(img: torch.Tensor, ratio: float = 1.0, same_shape: bool = False, gs: int = 32) -> torch.Tensor:
    """Resize a BCHW batch by ratio and pad to a multiple of gs (or back to the original shape) with 0.447 grey."""
    if ratio == 1.0:
        return img
    h, w = img.shape[2:]
    s = (int(h * ratio), int(w * ratio))
    img = nn.functional.interpolate(img, size=s, mode="bilinear", align_corners=False)
    if not same_shape:
        h, w = (math.ceil(x * ratio / gs) * gs for x in (h, w))
    return nn.functional.pad(img, [0, w - s[1], 0, h - s[0]], value=0.447)


def copy_attr(a, b, include: tuple = (), exclude: tuple = ()) -> None:
    """Copy public attributes of b onto a (only those in include, when given)."""
    for k, v in b.__dict__.items():
        if (len(include) and k not in include) or k.startswith("_") or k in exclude:
            continue
        setattr(a, k, v)

