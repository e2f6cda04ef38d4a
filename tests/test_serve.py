"""serve.py from the shell: it binds 127.0.0.1 by default, takes its key from the environment, and answers."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import serve
from tests.fixtures.inference import make_checkpoint, shapes_image
from tests.fixtures.serving import encode, free_port

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_bind_localhost_with_limits_on():
    opt = serve.parse_opt(["--weights", "a.pt", "b.onnx"])
    assert opt.host == "127.0.0.1" and opt.port == 8000 and opt.weights == ["a.pt", "b.onnx"]
    assert opt.api_key is None and opt.max_upload_mb == 10 and opt.max_batch is None


def test_cli_serves_a_model_with_the_key_from_the_environment(tmp_path):
    weights = make_checkpoint(tmp_path / "best.pt")
    port = free_port()
    env = {**os.environ, serve.API_KEY_ENV: "env-key", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "serve.py", "--weights", str(weights), "--port", str(port),
                             "--max-batch", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # bounded wait for the server to come up
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve.py did not start: {proc.stdout.read().decode() if proc.poll() is not None else ''}")
            time.sleep(0.2)
        image = {"image": ("a.jpg", encode(shapes_image(96, 128)))}
        denied = httpx.post(f"{url}/v1/object-detection/best", files=image, timeout=30)
        ok = httpx.post(f"{url}/v1/object-detection/best?size=128", files=image, headers={"X-API-Key": "env-key"},
                        timeout=30)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert denied.status_code == 401 and ok.status_code == 200 and ok.json()[0]["name"] in ("circle", "square",
                                                                                            "triangle")
    assert "as 'best': detect, 3 classes, 640 px" in out and "batches of up to 2" in out and "env-key" not in out
