"""ncnn (<name>_ncnn_model/ with model.ncnn.param, model.ncnn.bin and metadata.yaml): the traced model converted by
pnnx, run by the ncnn package."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from models.formats.registry import ExportContext, ExportFormat, Runner, register
from models.formats.tracing import quiet_tracing
from utils.general import LOGGER, colorstr, yaml_load, yaml_save

PARAM_MAGIC = 7767517  # the first line of every ncnn .param file


def _pnnx():
    """The pnnx module (its package carries the converter binary), or an ImportError saying how to install it."""
    try:
        import pnnx
    except ImportError as e:
        raise ImportError("ncnn export needs the 'pnnx' package: pip install pnnx ncnn") from e
    return pnnx


class FlatInputs(torch.nn.Module):
    """A layer whose input is a list of tensors (Concat, Detect) called with the tensors as separate arguments,
    since pnnx's inputshape describes tensors only."""

    def __init__(self, layer: torch.nn.Module, as_list: bool):
        super().__init__()
        self.layer, self.as_list = layer, as_list

    def forward(self, *xs: torch.Tensor):
        """The layer on the list of xs, or on xs."""
        return self.layer(list(xs)) if self.as_list else self.layer(*xs)


def pnnx_convert(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], param: Path, fp16: bool) -> Path:
    """Trace module on inputs and convert it with the pnnx binary: param and its .bin written, nothing else kept.

    Every file pnnx writes is named here, so none lands in the working directory; pnnx never downloads.
    """
    pnnx = _pnnx()
    shapes = ",".join(f"[{','.join(str(d) for d in x.shape)}]f32" for x in inputs)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with quiet_tracing():
            torch.jit.trace(module, inputs, strict=False, check_trace=False).save(str(d / "model.pt"))
        outputs = {"pnnxparam": "pnnx.param", "pnnxbin": "pnnx.bin", "pnnxpy": "pnnx.py", "pnnxonnx": "pnnx.onnx",
                   "ncnnpy": "ncnn.py"}
        command = [pnnx.EXEC_PATH, str(d / "model.pt"), f"inputshape={shapes}", "device=cpu", f"fp16={int(fp16)}",
                   f"ncnnparam={param}", f"ncnnbin={param.with_suffix('.bin')}",
                   *(f"{k}={d / v}" for k, v in outputs.items())]
        r = subprocess.run(command, capture_output=True, text=True)
    if r.returncode != 0 or not param.is_file():
        lines = [x for x in (r.stderr + r.stdout).splitlines() if x.strip() and not x.startswith("inline module")]
        raise RuntimeError(f"pnnx could not convert the model (exit code {r.returncode}): " +
                           " | ".join(lines[-3:]))
    return param


def export_ncnn(model: torch.nn.Module, im: torch.Tensor, file: Path, metadata: dict, half: bool = False,
                prefix: str = colorstr("ncnn:")) -> Path:
    """Convert the model with pnnx to <name>_ncnn_model/ (param + bin in FP32, FP16 weights with half) and
    metadata.yaml."""
    pnnx = _pnnx()
    LOGGER.info(f"\n{prefix} starting export with pnnx {getattr(pnnx, '__version__', '')}...")
    f = NCNN.path(file)
    f.mkdir(parents=True, exist_ok=True)
    pnnx_convert(model, (im.float(),), f / "model.ncnn.param", fp16=half)
    yaml_save(f / "metadata.yaml", {**metadata, "imgsz": list(im.shape[2:]), "half": half})
    return f


def _export(ctx: ExportContext) -> Path:
    """The registry's call: export_ncnn with export.run's --half."""
    return export_ncnn(ctx.model.float(), ctx.im, ctx.file, ctx.metadata, ctx.options["half"])


def _check_layer(layer: torch.nn.Module, args: tuple, opset: int) -> None:
    """Convert one layer alone with pnnx (raises where pnnx cannot)."""
    as_list = len(args) == 1 and isinstance(args[0], (list, tuple))
    inputs = tuple(args[0]) if as_list else args
    with tempfile.TemporaryDirectory() as tmp:
        pnnx_convert(FlatInputs(layer, as_list), inputs, Path(tmp) / "layer.ncnn.param", fp16=False)


def check_param(param: Path) -> None:
    """Refuse a .param that is not ncnn's text format, or whose header promises more layers than it has lines,
    before ncnn allocates for it."""
    with open(param, "rb") as fh:
        head = fh.read(1 << 20)
    lines = head.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != str(PARAM_MAGIC):
        raise ValueError(f"{param}: not an ncnn .param file (first line should be the magic number {PARAM_MAGIC})")
    counts = lines[1].split() if len(lines) > 1 else []
    if len(counts) != 2 or not all(c.isdigit() for c in counts):
        raise ValueError(f"{param}: line 2 should hold the layer and blob counts, got {lines[1:2]}")
    layers = int(counts[0])
    if layers == 0 or len(lines) - 2 < layers:
        raise ValueError(f"{param}: header says {layers} layers but the file has {len(lines) - 2} layer lines "
                         f"(truncated?)")


class NcnnRunner(Runner):
    """An ncnn model folder (or its .param): run image by image, outputs in pnnx's order (out0, out1, ...)."""

    def __init__(self, w: str, device: torch.device, **_):
        try:
            import ncnn
        except ImportError as e:
            raise ImportError(f"{w}: ncnn models need the 'ncnn' package (pip install ncnn)") from e
        LOGGER.info(f"Loading {w} for ncnn inference...")
        p = Path(w)
        param = p if p.suffix == ".param" else next(iter(sorted(p.glob("*.param"))), None)
        if param is None:
            raise FileNotFoundError(f"{w}: no .param file inside this ncnn folder")
        meta_file = param.parent / "metadata.yaml"
        self.meta = yaml_load(meta_file) if meta_file.exists() else {}
        check_param(param)
        self.net = ncnn.Net()
        half = bool(self.meta.get("half", False))  # FP32 exports run in FP32, so they match PyTorch to 1e-3
        self.net.opt.use_fp16_storage = self.net.opt.use_fp16_packed = self.net.opt.use_fp16_arithmetic = half
        self.net.opt.use_bf16_storage = False
        self.net.opt.num_threads = torch.get_num_threads()
        if self.net.load_param(str(param)) != 0:
            raise ValueError(f"{param}: ncnn could not parse this .param file")
        weights = param.with_suffix(".bin")
        if not weights.is_file() or self.net.load_model(str(weights)) != 0:
            raise ValueError(f"{weights}: missing, truncated or not the weights of {param.name}")
        self.input_name = self.net.input_names()[0]
        self.output_names = sorted(self.net.output_names(), key=lambda n: int("".join(filter(str.isdigit, n)) or 0))

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output, for each image of the batch in turn (ncnn's Mat holds one image), stacked."""
        import ncnn

        x = im.cpu().float().numpy()
        per_image = []
        for xi in x:
            with self.net.create_extractor() as ex:
                ex.input(self.input_name, ncnn.Mat(np.ascontiguousarray(xi)).clone())
                per_image.append([np.array(ex.extract(n)[1]) for n in self.output_names])
        return [np.stack(ys) for ys in zip(*per_image)]


NCNN = register(ExportFormat("ncnn", "ncnn", "_ncnn_model", "ncnn", export=_export, load=NcnnRunner,
                             requirements=("ncnn", "pnnx"), also=(".ncnn.param",), check_layer=_check_layer))
