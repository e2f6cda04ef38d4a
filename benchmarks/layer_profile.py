"""Per-op times of one model in each runtime, each op tied to the YOLOv5 layer it belongs to (aggregated by block type
in benchmarks/profile_layers.py).

Every profiler returns one Profile: the ops in execution order as Op(layer, path, kind, ms), each ms the mean over the
profiled passes, and `whole`, the mean wall time of those same passes. What the ops do not cover (the runtime's own
work between ops, the profiler's overhead) is whole - sum(ops). Where a runtime names its ops after the ONNX export's
nodes (ONNX Runtime, OpenVINO, MNN), "/model.<i>/<path>" gives the layer; PyTorch times the modules themselves;
ncnn, whose layers lose the module names, finds each YOLOv5 layer's output blob by its values.
"""

from __future__ import annotations

import json
import re
import time
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
    """Ops (layer, path, kind, seconds) of several passes averaged op by op (every pass runs the same ops in order)."""
    n = min(len(p) for p in passes)
    ops = [Op(*passes[0][i][:3], 1000 * sum(p[i][3] for p in passes) / len(passes)) for i in range(n)]
    return Profile(ops, 1000 * sum(whole) / len(whole))


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


@torch.no_grad()
def pytorch_profile(model: torch.nn.Module, im: torch.Tensor, runs: int, warmup: int) -> Profile:
    """Per-module times of a PyTorch model: each timed module's pre- and post-forward hooks read the clock. A module
    shared between layers (YOLOv5's one SiLU instance) counts only while the layer it is listed under runs."""
    timed = _timed_modules(model)
    clock: dict[int, float] = {}
    spent: dict[int, float] = {}
    running = [-1]  # the layer now running

    def start(k: int, i: int, top: bool) -> None:
        if top:
            running[0] = i
        if running[0] == i:
            clock[k] = time.perf_counter()

    def stop(k: int, i: int) -> None:
        if running[0] == i and k in clock:
            spent[k] = spent.get(k, 0.0) + time.perf_counter() - clock.pop(k)

    hooks = []
    for k, (i, path, m) in enumerate(timed):
        hooks.append(m.register_forward_pre_hook(lambda *_, k=k, i=i, top=not path: start(k, i, top)))
        hooks.append(m.register_forward_hook(lambda *_, k=k, i=i: stop(k, i)))
    passes, whole = [], []
    try:
        for r in range(warmup + runs):
            spent.clear()
            t = time.perf_counter()
            model(im)
            if r >= warmup:
                whole.append(time.perf_counter() - t)
                passes.append(_pytorch_ops(timed, spent))
    finally:
        for h in hooks:
            h.remove()
    return _mean_ops(passes, whole)


def _pytorch_ops(timed: list[tuple[int, str, torch.nn.Module]], spent: dict[int, float]) -> list[tuple]:
    """One pass's ops: leaf timings as they are, a layer's own time less its timed children's (its glue: the
    split/concat of a CSP block)."""
    ops, children = [], {}
    for k, (i, path, m) in enumerate(timed):
        if path:
            ops.append((i, path, type(m).__name__, spent.get(k, 0.0)))
            children[i] = children.get(i, 0.0) + spent.get(k, 0.0)
    for k, (i, path, m) in enumerate(timed):
        if not path:
            kind = "Concat" if i in children else _layer_type(m)  # a CSP block's own code: chunk/slice and cat
            ops.append((i, "", kind, spent.get(k, 0.0) - children.get(i, 0.0)))
    return ops


# ---------------------------------------------------------------- ONNX Runtime: its profiler's JSON, node by node
def onnxruntime_profile(onnx_file: Path, im: np.ndarray, threads: int, runs: int, warmup: int) -> Profile:
    """Per-node kernel times from ONNX Runtime's profiler (enable_profiling), the passes' wall times beside them."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as benchmarks/timing.ort_session
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(onnx_file).with_suffix("")) + "_ortprofile"
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: im}
    whole = []
    for _ in range(warmup + runs):
        t = time.perf_counter()
        session.run(None, feed)
        whole.append(time.perf_counter() - t)
    events = json.loads(Path(session.end_profiling()).read_text())
    runs_seen = [e for e in events if e.get("name") == "model_run"]
    start = runs_seen[warmup]["ts"] if len(runs_seen) > warmup else 0  # the warm-up passes' nodes are dropped
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start]
    passes = _split_passes([(e["name"][: -len("_kernel_time")], e["args"].get("op_name", ""), e["dur"] / 1e6)
                            for e in nodes], runs)
    return _mean_ops(passes, whole[warmup:])


def _split_passes(named: list[tuple[str, str, float]], runs: int) -> list[list[tuple]]:
    """A flat list of (name, kind, seconds) over `runs` passes, cut into passes and tied to layers."""
    n = len(named) // runs
    passes = []
    for r in range(runs):
        ops, layer = [], None
        for name, kind, s in named[r * n : (r + 1) * n]:
            layer, path = onnx_layer(name, layer)
            ops.append((layer, path, kind, s))
        passes.append(ops)
    return passes


# ---------------------------------------------------------------- OpenVINO: PERF_COUNT, get_profiling_info
def openvino_profile(onnx_file: Path, im: np.ndarray, threads: int, runs: int, warmup: int) -> Profile:
    """Per-layer times of the CPU plugin (PERF_COUNT), in FP32 as DetectMultiBackend runs an FP32 export."""
    import openvino as ov

    from utils.sigstack import keep_signal_stack

    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True, "ENABLE_CPU_PINNING": False}
    with keep_signal_stack():  # see utils/sigstack.py
        compiled = ov.Core().compile_model(ov.convert_model(str(onnx_file)), "CPU", config)
    request = compiled.create_infer_request()
    passes, whole = [], []
    for r in range(warmup + runs):
        t = time.perf_counter()
        request.infer({0: im})
        if r >= warmup:
            whole.append(time.perf_counter() - t)
            info = [p for p in request.get_profiling_info() if str(p.status).endswith("EXECUTED")]
            passes += _split_passes([(p.node_name, p.node_type, p.real_time.total_seconds()) for p in info], 1)
    return _mean_ops(passes, whole)


# ---------------------------------------------------------------- MNN: runSessionWithCallBackInfo, op by op
def mnn_profile(mnn_file: Path, im: np.ndarray, threads: int, runs: int, warmup: int) -> Profile:
    """Per-op times of MNN's session API: the clock read in the callbacks before and after every op."""
    import MNN

    interpreter = MNN.Interpreter(str(mnn_file))
    session = interpreter.createSession({"numThread": threads, "precision": "high"})
    x = MNN.Tensor(im.shape, MNN.Halide_Type_Float, np.ascontiguousarray(im), MNN.Tensor_DimensionType_Caffe)
    log: list[list] = []

    def begin(_, info) -> bool:
        log.append([info.getName(), info.getType(), time.perf_counter()])
        return True

    def end(_, info) -> bool:
        log[-1][2] = time.perf_counter() - log[-1][2]
        return True

    passes, whole = [], []
    for r in range(warmup + runs):
        log.clear()
        t = time.perf_counter()
        interpreter.getSessionInput(session).copyFrom(x)
        interpreter.runSessionWithCallBackInfo(session, begin, end)
        if r >= warmup:
            whole.append(time.perf_counter() - t)
            passes += _split_passes([tuple(e) for e in log], 1)
    return _mean_ops(passes, whole)


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


def ncnn_profile(param: Path, im: np.ndarray, threads: int, runs: int, warmup: int, owner: list[int | None],
                 convs: list[tuple[int, str, float]]) -> Profile:
    """Per-layer times of ncnn: in one extractor every layer's first output is extracted in file order, so each
    extract computes exactly that layer (its inputs are already there), in the packed layout ncnn keeps (type 1)."""
    import ncnn

    layers, net = ncnn_layers(param), _ncnn_net(param, threads)
    paths = _ncnn_paths(layers, owner, convs)
    mat = ncnn.Mat(np.ascontiguousarray(im[0])).clone()
    passes, whole = [], []
    for r in range(warmup + runs):
        ops = []
        t = time.perf_counter()
        with net.create_extractor() as ex:
            ex.input(net.input_names()[0], mat)
            for layer, i, path in zip(layers, owner, paths):
                if layer["type"] == "Input":
                    continue
                s = time.perf_counter()
                ex.extract(layer["tops"][0], 1)  # the result is dropped at once: a held blob would be copied by an
                ops.append((i, path, layer["type"], time.perf_counter() - s))  # in-place layer
        if r >= warmup:
            whole.append(time.perf_counter() - t)
            passes.append(ops)
    return _mean_ops(passes, whole)


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
