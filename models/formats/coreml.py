"""CoreML (<name>.mlpackage): an ML program converted by coremltools, FP32 or FP16 (--half), with an image input
scaled by 1/255 and stride, names, task and image size as user-defined metadata. Core ML runs only on macOS: there
DetectMultiBackend predicts with it; elsewhere it checks the package and says that it cannot run it.

coremltools converts from torch.export's program of the model. Its other frontend, TorchScript, fails in
coremltools <= 9.0 with numpy >= 2.4: YOLOv5's Detect head traces its shape arithmetic as aten::Int nodes, which
coremltools casts with int() on a one-element array, an error since numpy 2.4 (coremltools issue #2633, fixed after
9.0). The TorchScript frontend is used only where torch.export cannot take a model, and only with versions that work.
"""

from __future__ import annotations

import ast
import copy
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from packaging.version import Version

from models.formats.batching import run_fixed_shape
from models.formats.registry import ExportContext, ExportFormat, NotRunnableHere, Runner, register
from models.formats.tracing import quiet_tracing
from utils.general import LOGGER, colorstr

COREMLTOOLS_MIN = "8.1"  # the first to convert torch.export programs with an image input
TORCHSCRIPT_LAST_BROKEN = "9.0"  # its TorchScript frontend casts aten::Int with int() on an array
NUMPY_STRICT_INT = "2.4"  # int() of a one-element, non-0-d array is an error from this numpy on
WORKING = (f"coremltools>={COREMLTOOLS_MIN} (9.0 tested, with numpy 2.4.6 and torch 2.14.1, through torch.export); "
           f"its TorchScript frontend needs numpy<{NUMPY_STRICT_INT} up to coremltools {TORCHSCRIPT_LAST_BROKEN}")
MANIFEST_MAX_BYTES = 1 << 20  # a manifest lists two or three items: far less than this


class CoreMLToolsConflict(ImportError):
    """coremltools is installed, but cannot convert with the installed versions of its dependencies."""


def version_conflict(coremltools_version: str, numpy_version: str) -> str | None:
    """Why this coremltools cannot convert the project's models with this numpy, or None when it can."""
    ct = Version(coremltools_version)
    if ct < Version(COREMLTOOLS_MIN):
        numpy_note = f" and needs numpy<2 (numpy {numpy_version} is installed)" if ct < Version("8.0") else ""
        return (f"coremltools {coremltools_version} cannot convert torch.export programs with an image input"
                f"{numpy_note}; install coremltools>={COREMLTOOLS_MIN}")
    return None


def torchscript_conflict(coremltools_version: str, numpy_version: str) -> str | None:
    """Why coremltools' TorchScript frontend cannot convert YOLOv5's Detect head here, or None when it can."""
    if Version(coremltools_version) <= Version(TORCHSCRIPT_LAST_BROKEN) and \
            Version(numpy_version) >= Version(NUMPY_STRICT_INT):
        return (f"coremltools {coremltools_version}'s TorchScript frontend cannot convert with numpy {numpy_version} "
                f"(it casts aten::Int with int() on an array, an error since numpy {NUMPY_STRICT_INT}; coremltools "
                f"issue #2633); install numpy<{NUMPY_STRICT_INT} in a separate environment, or a coremltools newer "
                f"than {TORCHSCRIPT_LAST_BROKEN}")
    return None


def _coremltools():
    """The coremltools module, imported without its Linux-only noise; CoreMLToolsConflict naming the versions that
    work where it cannot convert here, ImportError saying how to install it where it is absent."""
    quiet = logging.getLogger("coremltools")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # on import: "Failed to load _MLModelProxy" (no Core ML off macOS), sklearn checks
    try:
        import coremltools as ct
    except ImportError as e:
        raise ImportError(f"CoreML export needs coremltools (about 28 MB installed): pip install "
                          f"'coremltools>={COREMLTOOLS_MIN}'") from e
    finally:
        quiet.setLevel(level)
    conflict = version_conflict(ct.__version__, np.__version__)
    if conflict:
        raise CoreMLToolsConflict(f"{conflict}. Versions that work: {WORKING}")
    return ct


def program_to_convert(model: torch.nn.Module, im: torch.Tensor, ct_version: str, numpy_version: str = np.__version__):
    """What coremltools converts: torch.export's program, or the traced model where torch.export cannot take it and
    the TorchScript frontend works with these versions; CoreMLToolsConflict naming them where it does not."""
    try:
        return torch.export.export(model, (im,)).run_decompositions({})
    except Exception as e:  # a model torch.export refuses (Python control flow on values): trace it instead
        conflict = torchscript_conflict(ct_version, numpy_version)
        if conflict:
            raise CoreMLToolsConflict(f"torch.export could not export this model ({type(e).__name__}: "
                                      f"{str(e).strip().splitlines()[0]}), and {conflict}") from e
        LOGGER.warning(f"WARNING torch.export could not export this model ({e}); converting its TorchScript trace")
        with quiet_tracing():
            return torch.jit.trace(model, im, strict=False, check_trace=False)


def coreml_user_metadata(metadata: dict, task: str, imgsz: list[int], half: bool) -> dict[str, str]:
    """The package's user-defined metadata (strings only, as Core ML stores them)."""
    return {"stride": str(int(metadata["stride"])), "names": str(dict(metadata["names"])), "task": task,
            "imgsz": json.dumps(list(imgsz)), "batch": "1", "half": str(bool(half))}


def export_coreml(model: torch.nn.Module, im: torch.Tensor, file: Path, metadata: dict, task: str, half: bool = False,
                  prefix: str = colorstr("CoreML:")) -> Path:
    """Convert the model to an ML program in <name>.mlpackage: one RGB image input scaled by 1/255, FP16 with half."""
    ct = _coremltools()
    LOGGER.info(f"\n{prefix} starting export with coremltools {ct.__version__} (from torch.export)...")
    model = copy.deepcopy(model).float().cpu().eval()  # converted in float; half only sets compute_precision
    im = im[:1].float().cpu()  # a Core ML image input holds one image: DetectMultiBackend runs a batch one by one
    with torch.no_grad():
        y = model(im)
    n_outputs = len(y) if isinstance(y, (list, tuple)) else 1
    program = program_to_convert(model, im, ct.__version__)
    ml = ct.convert(program, inputs=[ct.ImageType(name="image", shape=tuple(im.shape), scale=1 / 255, bias=[0, 0, 0])],
                    outputs=[ct.TensorType(name=f"output{i}") for i in range(n_outputs)], convert_to="mlprogram",
                    compute_precision=ct.precision.FLOAT16 if half else ct.precision.FLOAT32)
    ml.author = "YOLOv5-CSPPC export.py"
    ml.short_description = f"YOLOv5 {task} model, {len(metadata['names'])} classes, {im.shape[2]}x{im.shape[3]} input"
    ml.version = f"coremltools {ct.__version__}, torch {torch.__version__.split('+')[0]}"
    ml.license = "AGPL-3.0"
    ml.user_defined_metadata.update(coreml_user_metadata(metadata, task, list(im.shape[2:]), half))
    f = COREML.path(file)
    ml.save(str(f))
    return f


def _task(ctx: ExportContext) -> str:
    """The exported model's task, from what export.py gathered: a classifier, two outputs (masks) or detection."""
    return "classify" if ctx.options.get("classifier") else "segment" if len(ctx.outputs) == 2 else "detect"


def _export(ctx: ExportContext) -> Path:
    """The registry's call: export_coreml on the prepared model, FP16 with --half."""
    return export_coreml(ctx.model, ctx.im, ctx.file, ctx.metadata, _task(ctx), ctx.options["half"])


def check_mlpackage(p: Path) -> Path:
    """The model spec file of an .mlpackage, after checking its Manifest.json; ValueError naming what is wrong."""
    manifest = p / "Manifest.json"
    if not p.is_dir():
        raise ValueError(f"{p}: not an .mlpackage (a .mlpackage is a folder with Manifest.json and Data/)")
    if not manifest.is_file():
        raise ValueError(f"{p}: no Manifest.json in this .mlpackage (corrupt or incomplete copy)")
    if manifest.stat().st_size > MANIFEST_MAX_BYTES:
        raise ValueError(f"{manifest}: {manifest.stat().st_size} bytes, more than a CoreML manifest holds")
    try:
        info = json.loads(manifest.read_text())
        root = info["itemInfoEntries"][info["rootModelIdentifier"]]["path"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{manifest}: not a CoreML manifest (no root model entry: {type(e).__name__} {e})") from None
    data = (p / "Data").resolve()
    spec = (data / str(root)).resolve()
    if not spec.is_relative_to(data):  # a manifest must not point a reader outside its package
        raise ValueError(f"{manifest}: root model path '{root}' leads outside {p / 'Data'}")
    if not spec.is_file() or spec.stat().st_size == 0:
        raise ValueError(f"{p}: the model file Data/{root} named by Manifest.json is missing or empty")
    return spec


def coreml_metadata(w: str | Path, user: dict | None = None) -> dict:
    """stride, names, task, imgsz and half from an export's user-defined metadata (`user`, else read from the
    package's spec, which works on any OS)."""
    if user is None:
        user = _coremltools().models.MLModel(str(w), skip_model_load=True).user_defined_metadata
    meta = dict(user)
    try:
        if "stride" in meta:
            meta["stride"] = int(meta["stride"])
        if "names" in meta:
            meta["names"] = ast.literal_eval(meta["names"])  # a dict literal; literal_eval never runs code
        if "imgsz" in meta:
            meta["imgsz"] = json.loads(meta["imgsz"])
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"{w}: user-defined metadata not as export.py writes it ({e})") from None
    return meta


class CoreMLRunner(Runner):
    """A CoreML model run by Core ML through coremltools (macOS only), one image at a time."""

    def __init__(self, w: str, device: torch.device, **_):
        if Path(w).suffix == ".mlpackage":
            check_mlpackage(Path(w))
        elif not Path(w).is_file():
            raise ValueError(f"{w}: not a CoreML .mlmodel file")
        if sys.platform != "darwin":
            raise NotRunnableHere(f"{w}: CoreML models predict only on macOS (Core ML is part of macOS; coremltools "
                                  f"on {sys.platform} can write and inspect them, not run them)")
        ct = _coremltools()
        LOGGER.info(f"Loading {w} for CoreML inference...")
        self.model = ct.models.MLModel(w)
        self.meta = coreml_metadata(w, self.model.user_defined_metadata)
        self.input = self.model.get_spec().description.input[0].name
        imgsz = self.meta.get("imgsz")
        self.shape = [1, 3, *imgsz] if imgsz else None

    def __call__(self, im: torch.Tensor, augment: bool = False, visualize: bool = False) -> list[np.ndarray]:
        """Every output, image by image (a Core ML image input holds one)."""
        x = im.cpu().float().numpy()
        return run_fixed_shape(self.forward, x, self.shape or [1, *x.shape[1:]], "CoreML")

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The model's outputs (output0, output1, ...) for one BCHW image in 0-1."""
        from PIL import Image

        image = Image.fromarray((x[0].transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8))
        y = self.model.predict({self.input: image})
        return [np.asarray(y[k]) for k in sorted(y, key=lambda k: (len(k), k))]  # output0, output1, ... output10


# replaces unsupported.py's CoreML row in v7.0's place; .mlmodel is v7.0's CoreML file
COREML = register(ExportFormat("CoreML", "coreml", ".mlpackage", "coreml", export=_export, load=CoreMLRunner,
                               requirements=("coremltools",), also=(".mlmodel",), half_on_cpu=True))
