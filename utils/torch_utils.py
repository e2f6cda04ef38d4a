"""PyTorch helpers: devices, timing, model summaries, BatchNorm folding, DDP utilities."""

from __future__ import annotations

import ctypes
import math
import os
import platform
import time
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from utils import LOCAL_RANK, LOGGER

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt() parameter numbers (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS or Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):  # x86 and ARM spellings
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX-BF16), so bf16 inference is faster, not emulated."""
    return any(f in cpu_flags() for f in BF16_CPU_FLAGS)


def tune_cpu_allocator(enable: bool | None = None) -> bool:
    """Keep freed CPU tensor memory in the heap (glibc only), so inference stops page-faulting it back every pass.

    glibc serves blocks above M_MMAP_THRESHOLD with fresh mmap()s and returns heap tops above M_TRIM_THRESHOLD to the
    OS. A YOLO forward pass allocates and frees activations of 0.1-30 MB each, so every pass faults (and zeroes) them
    in again: measured here, 30-40% of CPU latency. Raising both thresholds keeps those pages mapped; the peak memory
    is unchanged, the process just does not shrink back after it. Set YOLOV5_TUNE_MALLOC=0 to leave malloc alone.
    Returns True when the thresholds were set.
    """
    if enable is None:
        enable = os.getenv("YOLOV5_TUNE_MALLOC", "1") != "0"
    if not enable or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this interpreter already runs on
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


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
            raise ValueError(
                f"Invalid CUDA '--device {device}' requested, use '--device cpu' or pass valid CUDA device(s)"
            )
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
    tune_cpu_allocator()  # CPU inference and training both reuse their activation memory from here on
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
    with torch.no_grad():  # the fused weights are constants, not part of any autograd graph
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


def count_multihead_attention(m: nn.MultiheadAttention, x: tuple, y) -> None:
    """thop rule for nn.MultiheadAttention (which thop counts as zero): q/k/v and output projections, QK^T and AV."""
    q, k = (x[0].transpose(0, 1), x[1].transpose(0, 1)) if m.batch_first else (x[0], x[1])
    lq, n, e = q.shape
    ls = k.shape[0]
    macs = n * (2 * lq * e * e + 2 * ls * e * e + 2 * lq * ls * e)
    m.total_ops += torch.DoubleTensor([float(macs)])


def get_flops(model: nn.Module, imgsz: int | list[int] = 640) -> float:
    """GFLOPs (2 x MACs, thop) of a model at imgsz, or 0.0 when thop is unavailable or fails.

    Convolutions cost the same per pixel at any size, so a stride-sized input is profiled and the count scaled; a model
    with attention or global pooling (classifiers), whose cost is not proportional to the area, is profiled at imgsz.
    """
    try:
        import thop
    except ImportError:
        return 0.0
    p = next(model.parameters())
    stride = max(int(model.stride.max()), 32) if hasattr(model, "stride") else 32
    imgsz = imgsz if isinstance(imgsz, list) else [imgsz, imgsz]
    # attention grows with the square of the pixel count, and global pooling makes what follows it (a classifier's
    # Linear) cost the same at any size: neither scales with the image area, so such models are profiled at imgsz
    exact = any(isinstance(m, (nn.MultiheadAttention, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
                for m in model.modules())
    size = list(imgsz) if exact else [stride, stride]
    im = torch.empty((1, p.shape[1] if p.dim() > 1 else 3, *size), device=p.device)
    try:
        with warnings_off():
            flops = thop.profile(deepcopy(model), inputs=(im,), verbose=False, custom_ops=_thop_ops())[0] / 1e9 * 2
    except Exception as e:  # thop fails on some custom ops: a summary without GFLOPs is still useful
        LOGGER.debug(f"thop profiling failed: {e}")
        return 0.0
    return flops * imgsz[0] / size[0] * imgsz[1] / size[1]


def _thop_ops() -> dict:
    """thop hooks that differ from its defaults: nearest upsampling copies values, so it costs no multiply-adds;
    attention, which thop counts as zero, costs its projections and its two products (count_multihead_attention).

    Recent thop releases count one op per output element there; the releases YOLOv5's published GFLOPs were
    measured with count none, and the difference is visible on segmentation models (Proto upsamples a large map).
    """
    from thop.vision.basic_hooks import count_upsample

    def upsample(m, x, y):
        if m.mode == "nearest":
            m.total_ops += torch.zeros(1, dtype=torch.float64)
        else:
            count_upsample(m, x, y)

    return {nn.Upsample: upsample, nn.MultiheadAttention: count_multihead_attention}


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
        LOGGER.info(
            f"{'layer':>5} {'name':>40} {'gradient':>9} {'parameters':>12} {'shape':>20} {'mu':>10} {'sigma':>10}"
        )
        for i, (name, p) in enumerate(model.named_parameters()):
            LOGGER.info(
                f"{i:5g} {name:>40} {str(p.requires_grad):>9} {p.numel():12g} {str(list(p.shape)):>20} "
                f"{p.mean():10.3g} {p.std() if p.numel() > 1 else 0:10.3g}"
            )
    flops = get_flops(model, imgsz)
    yaml_file = getattr(model, "yaml_file", "")
    name = Path(yaml_file).stem.replace("yolov5", "YOLOv5") if yaml_file else "Model"  # yolov5n.yaml -> YOLOv5n
    gflops = f", {flops:.1f} GFLOPs" if flops else ""  # thop missing or failed: no figure rather than a wrong 0.0
    LOGGER.info(f"{name} summary: {n_l} layers, {n_p} parameters, {n_g} gradients{gflops}")
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



# Training helpers -------------------------------------------------------------------------------------------


def init_seeds(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; with deterministic, ask torch for deterministic kernels where they exist."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # safe to call without CUDA
    if deterministic:
        # warn_only: an op without a deterministic kernel on this device warns instead of stopping training
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # cuBLAS needs this to be deterministic
        os.environ["PYTHONHASHSEED"] = str(seed)


def smart_optimizer(model: nn.Module, name: str = "Adam", lr: float = 0.001, momentum: float = 0.9,
                    decay: float = 1e-5) -> torch.optim.Optimizer:
    """Optimizer with parameter groups 0 biases (no decay), 1 weights (decay), 2 norm weights (no decay)."""
    g = [], [], []  # weights with decay, norm weights, biases
    norms = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
    for module in model.modules():
        for p_name, p in module.named_parameters(recurse=False):
            if p_name == "bias":
                g[2].append(p)
            elif p_name == "weight" and isinstance(module, norms):
                g[1].append(p)
            else:
                g[0].append(p)
    if name == "Adam":
        optimizer = torch.optim.Adam(g[2], lr=lr, betas=(momentum, 0.999))
    elif name == "AdamW":
        optimizer = torch.optim.AdamW(g[2], lr=lr, betas=(momentum, 0.999), weight_decay=0.0)
    elif name == "RMSProp":
        optimizer = torch.optim.RMSprop(g[2], lr=lr, momentum=momentum)
    elif name == "SGD":
        optimizer = torch.optim.SGD(g[2], lr=lr, momentum=momentum, nesterov=True)
    else:
        raise NotImplementedError(f"Optimizer {name} not implemented; choose one of SGD, Adam, AdamW, RMSProp")
    optimizer.add_param_group({"params": g[0], "weight_decay": decay})
    optimizer.add_param_group({"params": g[1], "weight_decay": 0.0})
    LOGGER.info(f"optimizer: {type(optimizer).__name__}(lr={lr}) with parameter groups "
                f"{len(g[1])} weight(decay=0.0), {len(g[0])} weight(decay={decay}), {len(g[2])} bias")
    return optimizer


def smart_DDP(model: nn.Module) -> nn.parallel.DistributedDataParallel:
    """Wrap a model in DistributedDataParallel: pinned to the local GPU on CUDA, device-less on CPU (gloo)."""
    if next(model.parameters()).device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[LOCAL_RANK], output_device=LOCAL_RANK)
    return nn.parallel.DistributedDataParallel(model)


class ModelEMA:
    """Exponential moving average of a model's state; decay ramps up as decay * (1 - exp(-updates / tau))."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, updates: int = 0):
        self.ema = deepcopy(de_parallel(model)).eval()
        self.updates = updates
        # The ramp keeps early averages close to the current weights, when the initial ones are meaningless
        self.decay = lambda x: decay * (1 - math.exp(-x / tau))
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        """Blend the model's current floating-point state into the average."""
        self.updates += 1
        d = self.decay(self.updates)
        msd = de_parallel(model).state_dict()
        with torch.no_grad():
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v *= d
                    v += (1 - d) * msd[k].detach()

    def update_attr(self, model: nn.Module, include: tuple = (), exclude: tuple = ("process_group", "reducer")) -> None:
        """Copy attributes such as names, nc, hyp from the model (inside any DDP wrapper) to the EMA."""
        copy_attr(self.ema, de_parallel(model), include, exclude)


class EarlyStopping:
    """Stop when fitness has not improved for `patience` epochs (0 or None: never stop)."""

    def __init__(self, patience: int = 30):
        self.best_fitness = 0.0
        self.best_epoch = 0
        self.patience = patience or float("inf")
        self.possible_stop = False  # the next epoch may be the last

    def __call__(self, epoch: int, fitness: float) -> bool:
        if fitness >= self.best_fitness:  # >= so that a run of 0.0 fitness early on keeps moving best_epoch
            self.best_epoch = epoch
            self.best_fitness = fitness
        delta = epoch - self.best_epoch
        self.possible_stop = delta >= (self.patience - 1)
        stop = delta >= self.patience
        if stop:
            LOGGER.info(f"Stopping training early as no improvement observed in last {self.patience} epochs. "
                        f"Best results observed at epoch {self.best_epoch}, best model saved as best.pt.\n"
                        f"To update EarlyStopping(patience={self.patience}) pass a new patience value, "
                        f"i.e. `python train.py --patience 300` or use `--patience 0` to disable EarlyStopping.")
        return stop


def smart_resume(ckpt: dict, optimizer: torch.optim.Optimizer, ema: ModelEMA | None = None, weights: str = "",
                 epochs: int = 300, resume: bool = True) -> tuple[float, int, int]:
    """Restore optimizer, EMA and best fitness from a checkpoint; return (best_fitness, start_epoch, epochs)."""
    best_fitness = 0.0
    start_epoch = ckpt["epoch"] + 1
    if ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        best_fitness = ckpt.get("best_fitness") or 0.0
    if ema is not None and ckpt.get("ema") is not None:
        ema.ema.load_state_dict(ckpt["ema"].float().state_dict())
        ema.updates = ckpt["updates"]
    if resume:
        if start_epoch <= 0 or ckpt.get("optimizer") is None:
            raise ValueError(f"{weights} is a finished (stripped) checkpoint, nothing to resume. Start a new training "
                             f"from it without --resume, i.e. python train.py --weights {weights}")
        LOGGER.info(f"Resuming training from {weights} from epoch {start_epoch} to {epochs} total epochs")
    if epochs < start_epoch:  # fine-tuning a checkpoint for --epochs more epochs
        LOGGER.info(f"{weights} has been trained for {ckpt['epoch']} epochs. Fine-tuning for {epochs} more epochs.")
        epochs += ckpt["epoch"]
    return best_fitness, start_epoch, epochs


def save_atomic(obj, f) -> None:
    """torch.save to a temporary file beside f, then rename: a crash at any moment leaves f complete or absent."""
    f = str(f)
    tmp = f"{f}.tmp{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, f)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def amp_outputs_match(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether FP32 and autocast Detect outputs (..., 5 + nc) agree: boxes within 5% or 1 px, scores within 0.05."""
    if a.shape != b.shape:
        return False
    a, b = a.float(), b.float()
    boxes = torch.allclose(a[..., :4], b[..., :4], rtol=0.05, atol=1.0)
    scores = torch.allclose(a[..., 4:], b[..., 4:], rtol=0.0, atol=0.05)
    return bool(boxes and scores)


def check_amp(model: nn.Module) -> bool:
    """Whether mixed precision can be trusted for this model: CUDA only, outputs under autocast match FP32."""
    device = next(model.parameters()).device
    if device.type != "cuda":
        return False  # AMP is only used on CUDA
    m = deepcopy(de_parallel(model)).float().eval()
    s = max(int(m.stride.max()), 32) if hasattr(m, "stride") else 32
    g = torch.Generator(device="cpu").manual_seed(0)
    im = torch.rand((1, 3, 8 * s, 8 * s), generator=g).to(device)
    try:
        with torch.no_grad():
            a = m(im)[0]
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                b = m(im)[0]
        ok = amp_outputs_match(a, b)
    except Exception as e:  # any failure under autocast means training in FP32 is the safe choice
        LOGGER.warning(f"AMP: checks failed ({e}), disabling Automatic Mixed Precision")
        return False
    if ok:
        LOGGER.info("AMP: checks passed")
    else:
        LOGGER.warning("AMP: FP32 and autocast outputs differ, disabling Automatic Mixed Precision")
    return ok
