"""Per-op times of one model in each runtime, each op tied to the YOLOv5 layer it belongs to (aggregated by block type
in benchmarks/profile_layers.py).

Each runtime has a Profiler; profile_interleaved runs the models' profiled passes round by round and returns a Profile
per model: the ops in execution order as Op(layer, path, kind, ms), each ms the mean over the faster half of the
profiled passes, and `whole`, the mean wall time of those same passes. What the ops do not cover (the runtime's own
work between ops, the profiler's overhead) is whole - sum(ops). Where a runtime names its ops after the ONNX export's
nodes (ONNX Runtime, OpenVINO, MNN), "/model.<i>/<path>" gives the layer; PyTorch times the modules themselves;
ncnn, whose layers lose the module names, finds each YOLOv5 layer's output blob by its values.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from utils.general import LOGGER

ONNX_NAME = re.compile(r"/model\.(\d+)/(.*)")
ACTIVATIONS = ("Swish", "Sigmoid", "ReLU", "HardSwish", "Mish")  # ncnn layers that follow a convolution


@dataclass
class Op:
    """One op of a runtime's graph: its YOLOv5 layer (None where the runtime added it), its path inside that layer
    (cv1/conv/Conv, m.0/Conv, ...), its kind (Conv, Concat, Reorder ...) and its mean milliseconds."""

    layer: int | None
    path: str
    kind: str
    ms: float


@dataclass
class Profile:
    """A runtime's ops and the mean wall time of the profiled passes (ms)."""

    ops: list[Op] = field(default_factory=list)
    whole: float = 0.0


def _mean_ops(passes: list[list[tuple]], whole: list[float]) -> Profile:
    """Ops (layer, path, kind, seconds) averaged op by op over the faster half of the passes (by wall time), and
    those passes' mean wall time. Every pass runs the same ops in order. On a machine shared with other jobs their
    load spikes land in the slower passes; a mean over whole passes keeps the rows adding up to the pass."""
    cut = sorted(whole)[(len(whole) - 1) // 2]  # the median pass and all faster ones
    kept = [(p, w) for p, w in zip(passes, whole) if w <= cut]
    n = min(len(p) for p, _ in kept)
    ops = [Op(*kept[0][0][i][:3], 1000 * sum(p[i][3] for p, _ in kept) / len(kept)) for i in range(n)]
    return Profile(ops, 1000 * sum(w for _, w in kept) / len(kept))


class Profiler(ABC):
    """One model in one runtime. step() runs one profiled pass and returns (its ops or None, its wall seconds);
    plain() runs one pass with the profiler off; passes() turns the recorded steps into ops (a runtime that hands
    its profile over only at the end, ONNX Runtime, fills them in there)."""

    @abstractmethod
    def step(self) -> tuple[list[tuple] | None, float]:
        """One profiled pass."""

    @abstractmethod
    def plain(self) -> None:
        """One pass without the profiler."""

    def passes(self, recorded: list, warmup: int) -> list[list[tuple]]:
        """The profiled passes after the warm-up ones, as (layer, path, kind, seconds) lists."""
        return recorded[warmup:]


def profile_interleaved(profilers: list[Profiler], runs: int, warmup: int) -> list[Profile]:
    """Every model's profile, the models' passes interleaved round by round so that drifts in the machine's load hit
    them alike."""
    recorded, whole = [[] for _ in profilers], [[] for _ in profilers]
    for _ in range(warmup + runs):
        for j, p in enumerate(profilers):
            ops, seconds = p.step()
            recorded[j].append(ops)
            whole[j].append(seconds)
    return [_mean_ops(p.passes(rec, warmup), w[warmup:]) for p, rec, w in zip(profilers, recorded, whole)]


def onnx_layer(name: str, previous: int | None) -> tuple[int | None, str]:
    """(layer, path) of an op named after an ONNX node; an op the runtime inserted (a layout reorder) has no layer
    in its name and is counted in the layer that ran before it."""
    m = ONNX_NAME.search(name)
    return (int(m[1]), m[2]) if m else (previous, name)


def _layer_type(m: torch.nn.Module) -> str:
    """The block's YAML name: Conv, C3, CSPPC, SPPF, Upsample, Concat, Detect (inference forms keep `type`)."""
    return getattr(m, "type", type(m).__name__).split(".")[-1]


def block_types(model: torch.nn.Module) -> list[str]:
    """The block type of every layer of a YOLOv5 model, by index."""
    return [_layer_type(m) for m in model.model]


# ---------------------------------------------------------------- PyTorch: forward hooks on the modules themselves
def _timed_modules(model: torch.nn.Module) -> list[tuple[int, str, torch.nn.Module]]:
    """(layer, path, module) to time: every layer, and inside C3/CSPPC blocks each child (a ModuleList's items, since
    the block calls them one by one); what a block spends outside its children is its split/concat. A module that
    appears twice in a block (an activation shared by cv1 and cv2) is timed once, under its first name."""
    out = []
    for i, layer in enumerate(model.model):
        out.append((i, "", layer))
        if _layer_type(layer) in ("C3", "CSPPC"):
            seen = set()
            for name, child in layer.named_children():
                items = child.named_children() if isinstance(child, torch.nn.ModuleList) else [("", child)]
                for k, c in items:
                    if id(c) not in seen:
                        seen.add(id(c))
                        out.append((i, f"{name}.{k}" if k else name, c))
    return out


class PyTorchProfiler(Profiler):
    """Per-module times: each timed module's pre- and post-forward hooks read the clock. A module shared between
    layers (YOLOv5's one SiLU instance) counts only while the layer it is listed under runs."""

    def __init__(self, model: torch.nn.Module, im: torch.Tensor):
        self.model, self.im, self.timed = model, im, _timed_modules(model)
        self.clock: dict[int, float] = {}
        self.spent: dict[int, float] = {}
        self.running = -1  # the layer now running

    def _start(self, k: int, i: int, top: bool) -> None:
        if top:
            self.running = i
        if self.running == i:
            self.clock[k] = time.perf_counter()

    def _stop(self, k: int, i: int) -> None:
        if self.running == i and k in self.clock:
            self.spent[k] = self.spent.get(k, 0.0) + time.perf_counter() - self.clock.pop(k)

    @torch.no_grad()
    def step(self) -> tuple[list[tuple], float]:
        """One pass with the hooks on; they are removed after it, so plain() runs without them."""
        hooks = []
        for k, (i, path, m) in enumerate(self.timed):
            hooks.append(m.register_forward_pre_hook(lambda *_, k=k, i=i, top=not path: self._start(k, i, top)))
            hooks.append(m.register_forward_hook(lambda *_, k=k, i=i: self._stop(k, i)))
        self.spent.clear()
        try:
            t = time.perf_counter()
            self.model(self.im)
            seconds = time.perf_counter() - t
        finally:
            for h in hooks:
                h.remove()
        return self._ops(), seconds

    @torch.no_grad()
    def plain(self) -> None:
        """One forward pass."""
        self.model(self.im)

    def _ops(self) -> list[tuple]:
        """The pass's ops: leaf timings as they are, a layer's own time less its timed children's (its glue: the
        split/concat of a CSP block)."""
        ops, children = [], {}
        for k, (i, path, m) in enumerate(self.timed):
            if path:
                ops.append((i, path, type(m).__name__, self.spent.get(k, 0.0)))
                children[i] = children.get(i, 0.0) + self.spent.get(k, 0.0)
        for k, (i, path, m) in enumerate(self.timed):
            if not path:
                kind = "Concat" if i in children else _layer_type(m)  # a CSP block's own code: chunk/slice and cat
                ops.append((i, "", kind, self.spent.get(k, 0.0) - children.get(i, 0.0)))
        return ops


def _timed(call) -> float:
    """Wall seconds of one call."""
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


# ---------------------------------------------------------------- ONNX Runtime: its profiler's JSON, node by node
class OnnxRuntimeProfiler(Profiler):
    """Per-node kernel times from ONNX Runtime's profiler (enable_profiling); plain() runs a second session alike
    without it. Both sessions are set up as benchmarks/timing.ort_session sets one up."""

    def __init__(self, onnx_file: Path, im: np.ndarray, threads: int):
        from benchmarks.timing import ort_session

        self.profiled = ort_session(onnx_file, threads, profile_prefix=str(Path(onnx_file).with_suffix("")) + "_ort")
        self.session = ort_session(onnx_file, threads)
        self.feed = {self.session.get_inputs()[0].name: im}

    def step(self) -> tuple[None, float]:
        """One profiled run; its nodes are read from the JSON at the end."""
        return None, _timed(lambda: self.profiled.run(None, self.feed))

    def plain(self) -> None:
        """One run of the session without profiler."""
        self.session.run(None, self.feed)

    def passes(self, recorded: list, warmup: int) -> list[list[tuple]]:
        """The nodes of each model_run after the warm-up ones, from the profiler's JSON."""
        events = json.loads(Path(self.profiled.end_profiling()).read_text())
        spans = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run"][warmup:]
        nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
        return [_tie([(e["name"][: -len("_kernel_time")], e["args"].get("op_name", ""), e["dur"] / 1e6)
                      for e in nodes if a <= e["ts"] <= b]) for a, b in spans]


def _tie(named: list[tuple[str, str, float]]) -> list[tuple]:
    """(name, kind, seconds) of one pass tied to layers: (layer, path, kind, seconds)."""
    ops, layer = [], None
    for name, kind, s in named:
        layer, path = onnx_layer(name, layer)
        ops.append((layer, path, kind, s))
    return ops


# ---------------------------------------------------------------- OpenVINO: PERF_COUNT, get_profiling_info
class OpenVINOProfiler(Profiler):
    """Per-layer times of the CPU plugin (PERF_COUNT) in FP32, as DetectMultiBackend runs an FP32 export;
    plain() runs the same model compiled without PERF_COUNT."""

    def __init__(self, onnx_file: Path, im: np.ndarray, threads: int):
        import openvino as ov

        from utils.sigstack import keep_signal_stack

        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}
        with keep_signal_stack():  # see utils/sigstack.py
            core, model = ov.Core(), ov.convert_model(str(onnx_file))
            self.profiled = core.compile_model(model, "CPU", {**config, "PERF_COUNT": True}).create_infer_request()
            self.request = core.compile_model(model, "CPU", config).create_infer_request()
        self.im, self.count, self.totals = im, 0, []

    def step(self) -> tuple[list[tuple], float]:
        """One profiled inference and its executed layers.

        The CPU plugin reports each layer's mean over every inference so far, not the last one's time (measured:
        the k-th report times k, less the (k-1)-th times k-1, is the k-th pass, and sums to its wall time); so
        this pass's own times are taken as that difference.
        """
        seconds = _timed(lambda: self.profiled.infer({0: self.im}))
        info = [p for p in self.profiled.get_profiling_info() if str(p.status).endswith("EXECUTED")]
        self.count += 1
        totals = [self.count * p.real_time.total_seconds() for p in info]
        before = self.totals if len(self.totals) == len(totals) else [0.0] * len(totals)
        self.totals = totals
        return _tie([(p.node_name, p.node_type, t - b) for p, t, b in zip(info, totals, before)]), seconds

    def plain(self) -> None:
        """One inference without PERF_COUNT."""
        self.request.infer({0: self.im})


# ---------------------------------------------------------------- MNN: runSessionWithCallBackInfo, op by op
class MNNProfiler(Profiler):
    """Per-op times of MNN's session API: the clock read in the callbacks before and after every op."""

    def __init__(self, mnn_file: Path, im: np.ndarray, threads: int):
        import MNN

        self.interpreter = MNN.Interpreter(str(mnn_file))
        self.session = self.interpreter.createSession({"numThread": threads, "precision": "high"})
        self.x = MNN.Tensor(im.shape, MNN.Halide_Type_Float, np.ascontiguousarray(im), MNN.Tensor_DimensionType_Caffe)
        self.log: list[list] = []

    def _begin(self, _, info) -> bool:
        self.log.append([info.getName(), info.getType(), time.perf_counter()])
        return True

    def _end(self, _, info) -> bool:
        self.log[-1][2] = time.perf_counter() - self.log[-1][2]
        return True

    def step(self) -> tuple[list[tuple], float]:
        """One run with the callbacks."""
        self.log.clear()
        seconds = _timed(lambda: self._run(lambda: self.interpreter.runSessionWithCallBackInfo(
            self.session, self._begin, self._end)))
        return _tie([tuple(e) for e in self.log]), seconds

    def plain(self) -> None:
        """One run without callbacks."""
        self._run(lambda: self.interpreter.runSession(self.session))

    def _run(self, call) -> None:
        """Copy the input in, then run."""
        self.interpreter.getSessionInput(self.session).copyFrom(self.x)
        call()


# ---------------------------------------------------------------- ncnn: one extractor, layer by layer
class NcnnProfiler(Profiler):
    """Per-layer times of ncnn: in one extractor every layer's first output is extracted in file order, so each
    extract computes exactly that layer (its inputs are already there), in the packed layout ncnn keeps (type 1).
    plain() extracts only the outputs, as NcnnRunner does. owner: each layer's YOLOv5 layer (ncnn_layer_of);
    convs: PyTorch's convolutions in order (conv_calls), which give ncnn's convolutions their module paths back."""

    def __init__(self, param: Path, im: np.ndarray, threads: int, owner: list[int | None],
                 convs: list[tuple[int, str, float]]):
        import ncnn

        self.layers, self.net = ncnn_layers(param), _ncnn_net(param, threads)
        self.owner, self.paths = owner, _ncnn_paths(self.layers, owner, convs)
        self.mat = ncnn.Mat(np.ascontiguousarray(im[0])).clone()
        self.input, self.outputs = self.net.input_names()[0], self.net.output_names()

    def step(self) -> tuple[list[tuple], float]:
        """One pass, layer by layer."""
        ops = []
        t = time.perf_counter()
        with self.net.create_extractor() as ex:
            ex.input(self.input, self.mat)
            for layer, i, path in zip(self.layers, self.owner, self.paths):
                if layer["type"] == "Input":
                    continue
                s = time.perf_counter()
                ex.extract(layer["tops"][0], 1)  # the result is dropped at once: a held blob would be copied by an
                ops.append((i, path, layer["type"], time.perf_counter() - s))  # in-place layer after it
        return ops, time.perf_counter() - t

    def plain(self) -> None:
        """The outputs only."""
        with self.net.create_extractor() as ex:
            ex.input(self.input, self.mat)
            for name in self.outputs:
                ex.extract(name)


# ---------------------------------------------------------------- ncnn: one extractor, layer by layer
def ncnn_layers(param: Path) -> list[dict]:
    """The layers of an ncnn .param: type, name, bottom and top blobs, and the params (key=value)."""
    layers = []
    for line in param.read_text().splitlines()[2:]:
        t = line.split()
        if len(t) < 4:
            continue
        nb, nt = int(t[2]), int(t[3])
        params = dict(p.split("=", 1) for p in t[4 + nb + nt :] if "=" in p)
        layers.append({"type": t[0], "name": t[1], "bottoms": t[4 : 4 + nb], "tops": t[4 + nb : 4 + nb + nt],
                       "params": params})
    return layers


def _ncnn_net(param: Path, threads: int):
    """An FP32 ncnn net as NcnnRunner sets it up."""
    import ncnn

    net = ncnn.Net()
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = threads
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    return net


def ncnn_layer_of(param: Path, im: np.ndarray, outputs: list[torch.Tensor], threads: int) -> list[int | None]:
    """The YOLOv5 layer of each ncnn layer: layer i ends at the first blob, after layer i-1's end, that holds layer
    i's PyTorch output (within 1e-3 of its largest value); the ncnn layers up to it belong to layer i, those after
    the last matched output to the head."""
    import ncnn

    layers, net = ncnn_layers(param), _ncnn_net(param, threads)
    owner, i = [], 0
    with net.create_extractor() as ex:
        ex.input(net.input_names()[0], ncnn.Mat(np.ascontiguousarray(im[0])).clone())
        for layer in layers:
            owner.append(i if layer["type"] != "Input" else None)
            if layer["type"] == "Input" or i >= len(outputs):
                continue
            y = np.array(ex.extract(layer["tops"][0])[1])
            ref = outputs[i][0].float().numpy()
            # relative to the layer's own scale: random-weight models shrink activations layer by layer, so that
            # an absolute tolerance would match a layer's input to its output
            if y.shape == ref.shape and np.abs(y - ref).max() <= 1e-3 * np.abs(ref).max():
                i += 1
    if i < len(outputs):
        LOGGER.warning(f"WARNING {param}: no ncnn blob holds layer {i}'s output; its layers and all after it are "
                       f"counted in layer {i}")
    return owner


def _ncnn_paths(layers: list[dict], owner: list[int | None], convs: list[tuple[int, str, float]]) -> list[str]:
    """The module path ncnn dropped, given back: the k-th Convolution of layer i is the k-th nn.Conv2d PyTorch ran in
    layer i (pnnx keeps the traced order); an activation takes its convolution's path, other layers none."""
    queue: dict[int, list[str]] = {}
    for i, path, _ in convs:
        queue.setdefault(i, []).append(path)
    paths, by_top = [], {}
    for layer, i in zip(layers, owner):
        path = ""
        if layer["type"] == "Convolution" and queue.get(i):
            path = queue[i].pop(0)
        elif layer["type"] in ACTIVATIONS and layer["bottoms"]:
            path = by_top.get(layer["bottoms"][0], "")
        paths.append(path)
        by_top.update((t, path) for t in layer["tops"])
    return paths


@torch.no_grad()
def conv_calls(model: torch.nn.Module, im: torch.Tensor) -> list[tuple[int, str, float]]:
    """Every nn.Conv2d call of one forward pass in order: (layer, path inside it, GFLOPs = 2 x multiply-adds)."""
    calls, hooks = [], []
    for i, layer in enumerate(model.model):
        for name, m in layer.named_modules():
            if isinstance(m, torch.nn.Conv2d):
                def hook(m, _, y, i=i, name=name):
                    macs = y.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                    calls.append((i, name, 2 * macs / 1e9))

                hooks.append(m.register_forward_hook(hook))
    try:
        model(im)
    finally:
        for h in hooks:
            h.remove()
    return calls
