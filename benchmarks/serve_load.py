"""Load test of serve.py: requests/s, latency percentiles and errors with batching on and off, and server memory.

For each model config, a checkpoint with random weights (speed does not depend on their values) is served by two
`python serve.py` subprocesses at once, one with --max-batch 1 (no batching) and one with --max-batch N. Client
threads each hold one HTTP connection and send the image back to back; every concurrency level sends --requests
requests to each server, in rounds that alternate between the two, so that a changing machine load hits both alike.
Then the batching server's resident memory is read before and after --memory-requests more requests.

Usage:
    OMP_WAIT_POLICY=PASSIVE python benchmarks/serve_load.py          # yolov5n and yolov5n-csppc, 640 px, 1/4/16 clients
    python benchmarks/serve_load.py --cfg yolov5s.yaml --clients 1 8 --requests 400 --memory-requests 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `python benchmarks/serve_load.py` finds the project's packages

import httpx  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

from models.yolo import DetectionModel  # noqa: E402
from utils.general import LOGGER, set_logging  # noqa: E402


def make_weights(cfg: str, folder: Path) -> Path:
    """A checkpoint of cfg with random weights, in the format train.py saves."""
    torch.manual_seed(0)
    model = DetectionModel(cfg).eval()
    f = folder / f"{Path(cfg).stem}.pt"
    torch.save({"epoch": -1, "model": model.half(), "ema": None, "optimizer": None, "opt": {}}, f)
    return f


class Server:
    """serve.py in a subprocess on a free port of 127.0.0.1, with its flags; stopped on exit."""

    def __init__(self, weights: Path, port: int, threads: int, *flags: str):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, str(ROOT / "serve.py"), "--weights", str(weights), "--port", str(port), *flags]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url, self.name = f"http://127.0.0.1:{port}", weights.stem

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"serve.py did not start: {self.proc.stderr.read().decode()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    def rss_mb(self) -> float:
        """The server's resident memory in MiB."""
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20


def load(server: Server, image: bytes, clients: int, requests: int) -> dict:
    """Send requests in all from clients threads: the wall time, latencies (ms), batch sizes and errors."""
    counts = [requests // clients + (i < requests % clients) for i in range(clients)]
    out = {"wall": 0.0, "latency": [], "batch": [], "errors": []}
    url = f"{server.url}/v1/object-detection/{server.name}"

    def client(n: int) -> None:
        with httpx.Client(timeout=120) as c:
            for _ in range(n):
                t = time.perf_counter()
                try:
                    r = c.post(url, files={"image": ("image.jpg", image)})
                except httpx.HTTPError as e:
                    out["errors"].append(repr(e))
                    continue
                out["latency"].append((time.perf_counter() - t) * 1e3)  # list.append is atomic under the GIL
                if r.status_code == 200:
                    out["batch"].append(int(r.headers.get("x-batch-size", 1)))
                else:
                    out["errors"].append(r.status_code)

    threads = [threading.Thread(target=client, args=(n,)) for n in counts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["wall"] = time.perf_counter() - t0
    return out


def summarize(parts: list[dict]) -> dict:
    """requests/s, p50/p95/p99 latency, errors and mean batch size over the rounds of one (server, clients)."""
    lat = [x for p in parts for x in p["latency"]]
    ok = [x for p in parts for x in p["batch"]]
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
    return {"rps": len(ok) / sum(p["wall"] for p in parts), "p50": q[49], "p95": q[94], "p99": q[98],
            "errors": sum(len(p["errors"]) for p in parts), "batch": statistics.mean(ok) if ok else 0.0}


def compare(servers: dict[str, Server], image: bytes, clients: int, requests: int, rounds: int) -> dict[str, dict]:
    """Each server's summary at one concurrency, the servers taking turns for rounds rounds (drifting load hits all)."""
    parts: dict[str, list] = {k: [] for k in servers}
    for i in range(rounds):
        n = requests // rounds + (i < requests % rounds)
        for k, server in servers.items():
            parts[k].append(load(server, image, clients, n))
    return {k: summarize(v) for k, v in parts.items()}


def run(cfg: tuple[str, ...] = ("yolov5n.yaml", "yolov5n-csppc.yaml"), imgsz: int = 640,
        clients: tuple[int, ...] = (1, 4, 16), requests: int = 200, rounds: int = 4, memory_requests: int = 2000,
        max_batch: int = 8, max_wait_ms: float = 2.0, threads: int = 2,
        image: str | Path = ROOT / "data/images/shapes_0.jpg", port: int = 8765) -> list[dict]:
    """Measure every config with batching off and on, side by side; log one table row per (model, batching, clients)."""
    data = Path(image).read_bytes()
    rows = []
    LOGGER.info(f"serve.py load test: {imgsz} px, {Path(image).name}, {requests} requests per level in {rounds} "
                f"alternating rounds, server {threads} threads, batching on = --max-batch {max_batch} --max-wait-ms "
                f"{max_wait_ms}, off = --max-batch 1")
    LOGGER.info(f"{'model':<20}{'batching':<10}{'clients':>8}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
                f"{'errors':>8}{'batch':>7}{'load':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for c in cfg:
            weights = make_weights(c, Path(tmp))
            common = ["--imgsz", str(imgsz), "--max-queue", str(4 * max(clients)), "--max-wait-ms", str(max_wait_ms)]
            with Server(weights, port, threads, *common, "--max-batch", "1") as off, \
                    Server(weights, port + 1, threads, *common, "--max-batch", str(max_batch)) as on:
                servers = {"off": off, "on": on}
                compare(servers, data, 2, 20, 1)  # warm-up: first-call allocations are not what is measured
                for n in clients:
                    for mode, r in compare(servers, data, n, requests, rounds).items():
                        rows.append({"model": weights.stem, "batching": mode, "clients": n, **r,
                                     "load": os.getloadavg()[0]})
                        LOGGER.info(f"{weights.stem:<20}{mode:<10}{n:>8}{r['rps']:>8.1f}{r['p50']:>9.1f}"
                                    f"{r['p95']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}{r['batch']:>7.2f}"
                                    f"{os.getloadavg()[0]:>7.2f}")
                if memory_requests:
                    before = on.rss_mb()
                    r = summarize([load(on, data, 4, memory_requests)])
                    LOGGER.info(f"{weights.stem}: server memory (batching on) {before:.0f} MiB before and "
                                f"{on.rss_mb():.0f} MiB after {memory_requests} more requests ({r['errors']} errors)")
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--cfg", nargs="+", default=["yolov5n.yaml", "yolov5n-csppc.yaml"], help="model YAMLs")
    add("--imgsz", type=int, default=640, help="inference size")
    add("--clients", nargs="+", type=int, default=[1, 4, 16], help="concurrency levels")
    add("--requests", type=int, default=200, help="requests per concurrency level")
    add("--rounds", type=int, default=4, help="alternating rounds the requests are split into")
    add("--memory-requests", type=int, default=2000, help="requests between the two memory readings")
    add("--max-batch", type=int, default=8, help="serve.py --max-batch when batching is on")
    add("--max-wait-ms", type=float, default=2.0, help="serve.py --max-wait-ms")
    add("--threads", type=int, default=2, help="the server's torch threads (OMP_NUM_THREADS)")
    add("--image", default=str(ROOT / "data/images/shapes_0.jpg"), help="the image every request sends")
    add("--port", type=int, default=8765, help="127.0.0.1 ports (this and the next) for the servers")
    return parser.parse_args(argv)


def main(opt: argparse.Namespace) -> list[dict]:
    """Run the load test with the parsed flags."""
    return run(**{**vars(opt), "cfg": tuple(opt.cfg), "clients": tuple(opt.clients)})


if __name__ == "__main__":
    set_logging()
    main(parse_opt())
