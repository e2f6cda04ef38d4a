"""YOLOv5 models built from YAML (DetectionModel, SegmentationModel, ClassificationModel), parse_model, summary CLI.

The heads live in models/heads.py; Detect and Segment are re-exported here, where v7.0 code and pickles name them.

Usage:
    python models/yolo.py --cfg yolov5n-csppc.yaml
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import math
import re
import sys
from copy import deepcopy
from pathlib import Path

if __name__ == "__main__":  # running as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn as nn

from models import extra_blocks  # noqa: F401  (registers v7.0's other blocks with parse_model)
from models.blocks import BLOCKS, Conv, register, resolve_arg  # noqa: F401  (register: v7.0-era imports)
from models.fused import inference_form
from models.heads import Classify, Detect, Proto, Segment, detect_parser, segment_parser  # noqa: F401  (see above)
from utils.autoanchor import check_anchor_order
from utils.general import LOGGER, check_yaml, make_divisible, yaml_load  # noqa: F401  (make_divisible: v7.0 name)
from utils.torch_utils import (
    fuse_conv_and_bn,
    get_flops,
    initialize_weights,
    model_info,
    scale_img,
    select_device,
    time_sync,
)


class BaseModel(nn.Module):
    """A sequence of layers whose inputs are named by each layer's `f` (from) index."""

    def forward(self, x, profile: bool = False, visualize: bool | Path = False):
        return self._forward_once(x, profile, visualize)

    def _forward_once(self, x, profile: bool = False, visualize: bool | Path = False):
        y, dt = [], []
        for m in self.model:
            if m.f != -1:  # input from earlier layers
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            if profile:
                self._profile_one_layer(m, x, dt)
            x = m(x)
            y.append(x if m.i in self.save else None)
            if visualize:
                from utils.plots import feature_visualization  # plotting is only needed here

                feature_visualization(x, m.type, m.i, save_dir=visualize)
        return x

    def _profile_one_layer(self, m, x, dt):
        last = m == self.model[-1]
        flops = 0.0
        with contextlib.suppress(ImportError, Exception):
            import thop

            flops = thop.profile(m, inputs=(x.copy() if last else x,), verbose=False)[0] / 1e9 * 2
        t = time_sync()
        for _ in range(10):
            m(x.copy() if last else x)
        dt.append((time_sync() - t) * 100)
        if m == self.model[0]:
            LOGGER.info(f"{'time (ms)':>10s} {'GFLOPs':>10s} {'params':>10s}  module")
        LOGGER.info(f"{dt[-1]:10.2f} {flops:10.2f} {m.np:10.0f}  {m.type}")
        if last:
            LOGGER.info(f"{sum(dt):10.2f} {'-':>10s} {'-':>10s}  Total")

    def fuse(self):
        """Fold every BatchNorm into its convolution, swap in exact inference forms (CSPPC, SPPF, Detect); eval only.

        On CPU the fused model also stores its weights channels-last, the layout oneDNN runs fastest.
        """
        LOGGER.info("Fusing layers... ")
        for m in self.model.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        for parent in list(self.model.modules()):  # a list: children are replaced while walking
            for name, child in parent.named_children():
                new = inference_form(child)
                if new is not None:
                    for k in ("i", "f", "type"):  # the layer bookkeeping _forward_once and the tables read
                        if hasattr(child, k):
                            setattr(new, k, getattr(child, k))
                    new.np = sum(x.numel() for x in new.parameters())
                    setattr(parent, name, new)
        if all(p.device.type == "cpu" for p in self.parameters()):
            # oneDNN convolves channels-last (NHWC) tensors 1.3-5x faster than NCHW ones on CPU, and a convolution
            # whose weight is channels-last returns a channels-last output, so the whole network runs NHWC from the
            # first layer on. CUDA keeps NCHW: cuDNN's choice depends on dtype and GPU, and it is not measured here.
            for p in self.parameters():
                if p.dim() == 4:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
        self.info()
        return self

    def info(self, verbose: bool = False, img_size: int = 640):
        """Log layers, parameters, gradients and GFLOPs; return them."""
        return model_info(self, verbose, img_size)

    def _apply(self, fn):
        # to(), cpu(), cuda(), half() must also reach the non-buffer tensors of Detect
        self = super()._apply(fn)
        m = self.model[-1]
        if isinstance(m, Detect):
            m.stride = fn(m.stride)
            m.grid = list(map(fn, m.grid))
            if isinstance(m.anchor_grid, list):
                m.anchor_grid = list(map(fn, m.anchor_grid))
        return self


class DetectionModel(BaseModel):
    """YOLOv5 detection model built from a YAML file or dict."""

    def __init__(self, cfg: str | Path | dict = "yolov5s.yaml", ch: int = 3, nc: int | None = None, anchors=None):
        super().__init__()
        if isinstance(cfg, dict):
            self.yaml = cfg
        else:
            self.yaml_file = Path(cfg).name
            self.yaml = yaml_load(check_yaml(cfg))
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        if nc and nc != self.yaml["nc"]:
            LOGGER.info(f"Overriding model.yaml nc={self.yaml['nc']} with nc={nc}")
            self.yaml["nc"] = nc
        if anchors:
            LOGGER.info(f"Overriding model.yaml anchors with anchors={anchors}")
            self.yaml["anchors"] = round(anchors) if isinstance(anchors, float) else anchors
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=[ch])
        self.names = {i: f"{i}" for i in range(self.yaml["nc"])}
        self.inplace = self.yaml.get("inplace", True)

        m = self.model[-1]
        if isinstance(m, Detect):
            s = 256  # a size every stride divides
            m.inplace = self.inplace
            out = self.forward(torch.zeros(1, ch, s, s))
            out = out[0] if isinstance(out, tuple) else out  # a head such as Segment trains on (levels, extras)
            m.stride = torch.tensor([s / x.shape[-2] for x in out])
            check_anchor_order(m)
            m.anchors /= m.stride.view(-1, 1, 1)  # anchors are kept in grid units
            self.stride = m.stride
            self._initialize_biases()
        initialize_weights(self)

    def forward(self, x, augment: bool = False, profile: bool = False, visualize: bool | Path = False):
        if augment:
            return self._forward_augment(x)
        return self._forward_once(x, profile, visualize)

    def _forward_augment(self, x):
        """Test-time augmentation: original, 0.83x flipped left-right, 0.67x; predictions merged before NMS."""
        img_size = x.shape[-2:]
        y = []
        for si, fi in zip((1, 0.83, 0.67), (None, 3, None)):
            xi = scale_img(x.flip(fi) if fi else x, si, gs=int(self.stride.max()))
            yi = self._forward_once(xi)[0]
            y.append(self._descale_pred(yi, fi, si, img_size))
        y = self._clip_augmented(y)
        return torch.cat(y, 1), None

    def _descale_pred(self, p, flips, scale, img_size):
        p = p.clone()
        p[..., :4] /= scale
        if flips == 2:
            p[..., 1] = img_size[0] - p[..., 1]
        elif flips == 3:
            p[..., 0] = img_size[1] - p[..., 0]
        return p

    def _clip_augmented(self, y):
        """Drop the large-object tail of the up-scaled pass and the small-object head of the down-scaled one."""
        nl = self.model[-1].nl
        g = sum(4**x for x in range(nl))
        e = 1
        i = (y[0].shape[1] // g) * sum(4**x for x in range(e))
        y[0] = y[0][:, :-i]
        i = (y[-1].shape[1] // g) * sum(4 ** (nl - 1 - x) for x in range(e))
        y[-1] = y[-1][:, i:]
        return y

    def _initialize_biases(self, cf=None):
        """Objectness prior of 8 objects per 640 image; class prior 0.6 / nc (or from class frequencies cf)."""
        m = self.model[-1]
        for mi, s in zip(m.m, m.stride):
            b = mi.bias.view(m.na, -1)
            b.data[:, 4] += math.log(8 / (640 / s) ** 2)
            b.data[:, 5 : 5 + m.nc] += (
                math.log(0.6 / (m.nc - 0.99999)) if cf is None else torch.log(cf / cf.sum())
            )
            mi.bias = nn.Parameter(b.view(-1), requires_grad=True)


Model = DetectionModel  # retain YOLOv5 'Model' name


class SegmentationModel(DetectionModel):
    """YOLOv5 segmentation model: a DetectionModel whose head is Segment."""

    def __init__(self, cfg: str | Path | dict = "yolov5s-seg.yaml", ch: int = 3, nc: int | None = None, anchors=None):
        super().__init__(cfg, ch, nc, anchors)


class ClassificationModel(BaseModel):
    """YOLOv5 classifier: a detection model's backbone cut at `cutoff` with a Classify head, or built from a YAML."""

    def __init__(self, cfg: str | Path | dict | None = None, model: nn.Module | None = None, nc: int = 1000,
                 cutoff: int = 10):
        super().__init__()
        if model is not None:
            self._from_detection_model(model, nc, cutoff)
        elif cfg is not None:
            self._from_yaml(cfg, nc)
        else:
            raise ValueError("ClassificationModel needs a model YAML (cfg=) or a detection model (model=)")

    def _from_detection_model(self, model: nn.Module, nc: int = 1000, cutoff: int = 10) -> None:
        """Keep layers [0, cutoff) and replace the last kept one by Classify, fed what that layer was fed (v7.0)."""
        if not isinstance(model, BaseModel) and isinstance(getattr(model, "model", None), BaseModel):
            model = model.model  # a DetectMultiBackend around a PyTorch model
        n = len(model.model)
        if not 1 <= cutoff < n:
            raise ValueError(f"cutoff={cutoff} must be in 1..{n - 1}: the model has {n} layers, the last its head")
        layers = model.model[:cutoff]
        branched = [int(m.i) for m in layers if m.f != -1]
        if branched:
            raise ValueError(f"cutoff={cutoff} keeps layer {branched[0]}, which reads an earlier layer's output "
                             f"(from={layers[branched[0]].f}): cut before the head, at the backbone's end")
        m = layers[-1]
        c = Classify(self._in_channels(layers), nc)
        c.i, c.f, c.type = m.i, m.f, "models.common.Classify"
        c.np = sum(x.numel() for x in c.parameters())
        layers[-1] = c
        self.model = layers
        self.stride = getattr(model, "stride", None)
        if self.stride is None:
            self.stride = torch.tensor([32.0])
        self.save = []
        self.nc = nc
        self.names = {i: f"class{i}" for i in range(nc)}

    @staticmethod
    def _in_channels(layers: nn.Sequential) -> int:
        """Channels entering the last layer: its first convolution's input, else measured on a small forward pass."""
        m = layers[-1]
        for conv in (getattr(m, "conv", None), getattr(getattr(m, "cv1", None), "conv", None)):
            if isinstance(conv, nn.Conv2d):
                return conv.in_channels
        p = next(layers.parameters())
        x = torch.zeros(1, p.shape[1] if p.dim() == 4 else 3, 64, 64, device=p.device)
        with torch.no_grad():
            for layer in layers[:-1]:
                x = layer(x)
        return int(x.shape[1])

    def _from_yaml(self, cfg: str | Path | dict, nc: int | None = None) -> None:
        """Build from a model YAML whose last layer is Classify, e.g. [-1, 1, Classify, [nc]]."""
        if isinstance(cfg, dict):
            self.yaml = cfg
        else:
            self.yaml_file = Path(cfg).name
            self.yaml = yaml_load(check_yaml(cfg))
        if nc and nc != self.yaml.get("nc"):
            self.yaml["nc"] = nc
        ch = self.yaml["ch"] = self.yaml.get("ch", 3)
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=[ch])
        if not isinstance(self.model[-1], Classify):
            raise ValueError(f"{self.yaml_file if not isinstance(cfg, dict) else 'model dict'}: the last layer is "
                             f"{type(self.model[-1]).__name__}, a classification YAML ends with Classify")
        self.nc = self.model[-1].linear.out_features
        self.names = {i: f"class{i}" for i in range(self.nc)}
        seen = []
        hook = self.model[-1].register_forward_pre_hook(lambda m, x: seen.append(x[0]))
        s = 256
        with torch.no_grad():
            self.forward(torch.zeros(1, ch, s, s))
        hook.remove()
        x = torch.cat(seen[0], 1) if isinstance(seen[0], list) else seen[0]
        self.stride = torch.tensor([s / x.shape[-2]])
        initialize_weights(self)


def _activation(name: str) -> nn.Module:
    """'nn.SiLU()' or 'nn.LeakyReLU(0.1)' from a YAML 'activation' key, without eval."""
    match = re.fullmatch(r"nn\.(\w+)\((.*)\)", name.strip())
    cls = getattr(nn, match.group(1), None) if match else None
    if cls is None or not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"activation {name!r} is not of the form 'nn.Name(args)' with a torch.nn module")
    text = match.group(2).strip()
    args = ast.literal_eval(f"({text},)") if text else ()
    return cls(*args)


def _layer_type(cls: type) -> str:
    """A layer's module.Class name for the table; run as a script, this file's heads show bare (Detect), as in v7.0."""
    t = f"{cls.__module__}.{cls.__name__}"
    script = __name__ == "__main__" and t.startswith("models.yolo.")  # v7.0 strips '__main__.' from its own classes
    return t[len("models.yolo.") :] if script else t


def parse_model(d: dict, ch: list[int]):
    """Build nn.Sequential and the list of layer outputs to keep from a model dict."""
    LOGGER.info(f"\n{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}")
    gd, gw = d["depth_multiple"], d["width_multiple"]
    act = _activation(d["activation"]) if d.get("activation") else None
    layers, save, c2 = [], [], ch[-1]
    for i, (f, n, name, args) in enumerate(d["backbone"] + d["head"]):
        if name not in BLOCKS:
            raise KeyError(f"layer {i}: unknown module '{name}'; known modules: {', '.join(sorted(BLOCKS))}")
        cls, parser = BLOCKS[name]
        args = [resolve_arg(a, d) for a in args]
        n = n_ = max(round(n * gd), 1) if n > 1 else n
        ch_in = [ch[x] for x in (f if isinstance(f, list) else [f])]
        args, n, c2 = parser(args, n, ch_in, gw, d)
        m_ = nn.Sequential(*(cls(*args) for _ in range(n))) if n > 1 else cls(*args)
        t = _layer_type(cls)
        m_.i, m_.f, m_.type, m_.np = i, f, t, sum(x.numel() for x in m_.parameters())
        LOGGER.info(f"{i:>3}{str(f):>18}{n_:>3}{m_.np:10.0f}  {t:<40}{str(args):<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m_)
        if i == 0:
            ch = []
        ch.append(c2)
    model = nn.Sequential(*layers)
    if act is not None:  # per-model activation, without changing Conv.default_act for other models
        for m in model.modules():
            if isinstance(m, Conv) and m.act is Conv.default_act:
                m.act = deepcopy(act)
    return model, sorted(save)


def run(cfg: str = "yolov5s.yaml", batch_size: int = 1, device: str = "", profile: bool = False,
        imgsz: int = 640) -> DetectionModel:
    """Build a model from cfg, print its layer table and the summary of its trained and fused forms."""
    device = select_device(device)
    model = DetectionModel(cfg).to(device).eval()
    _, n_p, _, flops = model.info(img_size=imgsz)
    fused = deepcopy(model).fuse()  # fuse() logs the fused summary
    n_pf, flops_f = sum(x.numel() for x in fused.parameters()), get_flops(fused, imgsz)
    LOGGER.info(f"{Path(str(cfg)).name} at {imgsz}x{imgsz}: trained {n_p:,} parameters {flops:.2f} GFLOPs, "
                f"fused {n_pf:,} parameters {flops_f:.2f} GFLOPs")
    if profile:
        im = torch.rand(batch_size, 3, imgsz, imgsz, device=device)
        with torch.no_grad():
            LOGGER.info("\nTrained form:")
            model(im, profile=True)
            LOGGER.info("\nFused form:")
            fused(im, profile=True)
    return model


def parse_opt(argv=None):
    parser = argparse.ArgumentParser(description="Build a model from a YAML and print its summary")
    parser.add_argument("--cfg", type=str, default="yolov5s.yaml", help="model.yaml (path or bare name)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size for --profile")
    parser.add_argument("--imgsz", "--img", "--img-size", type=int, default=640, help="image size for GFLOPs")
    parser.add_argument("--device", default="", help="cpu, or CUDA device ids such as 0 or 0,1")
    parser.add_argument("--profile", action="store_true", help="profile model speed layer by layer")
    return parser.parse_args(argv)


if __name__ == "__main__":
    from utils.general import set_logging

    set_logging()
    run(**vars(parse_opt()))
