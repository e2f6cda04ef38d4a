"""The web page in a real browser: headless Chromium (Debian's package, driven by Playwright) asks for the API key,
uploads an image, and shows the boxes (and masks) drawn over it with one table row per detection.

The screenshots are kept as test artifacts in runs/test-artifacts/ (or $TEST_ARTIFACTS).
"""

import base64
import os
import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import torch

from serving.app import Settings, create_app
from serving.model import ServedModel
from tests.fixtures.inference import make_checkpoint, shapes_image
from tests.fixtures.serving import live_server

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `apt-get install chromium` (.ci/run does)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    image = d / "shapes.png"  # PNG: the browser and OpenCV decode the same pixels
    cv2.imwrite(str(image), shapes_image(240, 320, seed=4))
    cpu = torch.device("cpu")
    models = [ServedModel(make_checkpoint(d / "shapes.pt"), cpu),
              ServedModel(make_checkpoint(d / "shapes-seg.pt", "yolov5n-seg.yaml"), cpu)]
    with live_server(create_app(models, Settings(api_key="page-key"))) as url:
        yield url, image


def canvas_pixels(page) -> np.ndarray:
    """The page's canvas as a BGR array."""
    data = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    return cv2.imdecode(np.frombuffer(base64.b64decode(data.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def upload_and_check(page, url: str, image: Path, model: str) -> None:
    """Upload image to model on the page; the canvas shows it with every box drawn and the table a row per record."""
    want = httpx.post(f"{url}/v1/object-detection/{model}?size=160", files={"image": image.read_bytes()},
                      headers={"X-API-Key": "page-key"}, timeout=60).json()
    assert want
    page.select_option("#model", model)
    page.fill("#size", "160")  # this random-weights model finds a readable dozen boxes at 160, hundreds at 640
    page.evaluate("document.getElementById('canvas').dataset.state = 'idle'")  # not the last upload's 'done'
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#canvas[data-state=done]", timeout=60_000)
    rows = page.locator("#results tbody tr")
    assert rows.count() == len(want)
    assert rows.nth(0).locator("td").nth(2).inner_text() == want[0]["name"]
    assert "server inference:" in page.inner_text("#timing") and "ms" in page.inner_text("#timing")
    drawn, original = canvas_pixels(page), cv2.imread(str(image))
    assert drawn.shape == original.shape
    for r in want:  # the middle of each box's left edge is painted over
        x, y = int(r["xmin"]), int((r["ymin"] + r["ymax"]) / 2)
        assert np.abs(drawn[y, x].astype(int) - original[y, x]).max() > 30, f"box {r} not drawn"


def test_page_asks_for_the_key_then_draws_boxes_masks_and_tables(server):
    from playwright.sync_api import sync_playwright

    url, image = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])  # root in CI containers
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1100})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_selector("#key-form:not([hidden])", timeout=30_000)
            page.fill("#key", "page-key")
            page.click("#key-form button")
            page.wait_for_function("document.getElementById('model').options.length === 2", timeout=30_000)
            upload_and_check(page, url, image, "shapes")
            page.screenshot(path=str(ARTIFACTS / "serve_page_detect.png"), full_page=True)
            upload_and_check(page, url, image, "shapes-seg")
            assert page.locator("#results thead th").last.inner_text() == "points"
            page.screenshot(path=str(ARTIFACTS / "serve_page_segment.png"), full_page=True)
        finally:
            browser.close()
    assert requests and all(r.startswith(url) for r in requests)  # nothing fetched from anywhere else
