"""The API: v7.0's request and records (equal to detect.py's boxes), segmentation and classification answers, every
error code with the server still answering afterwards, batched results equal to single ones, and exports served."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import detect
import export
from classify import predict as classify_predict
from serving.app import Settings, create_app
from serving.model import ServedModel
from tests.fixtures.inference import NAMES, assert_same_detections, make_checkpoint, read_labels, shapes_image
from tests.fixtures.serving import encode, live_server, make_classifier
from tests.test_serving_uploads import png_header_only

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("serving")
    cv2.imwrite(str(d / "wide.png"), shapes_image(120, 200, seed=4))
    cv2.imwrite(str(d / "square.jpg"), shapes_image(160, 160, seed=3))
    return {"det": make_checkpoint(d / "shapes.pt"), "seg": make_checkpoint(d / "shapes-seg.pt", "yolov5n-seg.yaml"),
            "cls": make_classifier(d / "shapes-cls.pt"), "dir": d}


@pytest.fixture(scope="module")
def models(files):
    return {k: ServedModel(files[k], CPU) for k in ("det", "seg", "cls")}


def client(models, **settings) -> TestClient:
    """A test client of an app serving models (lifespan run, so the batchers work)."""
    return TestClient(create_app(list(models), Settings(**settings)))


def post(c, model: str, data: bytes, name: str = "image.jpg", headers=None, **params):
    return c.post(f"/v1/object-detection/{model}", params=params, files={"image": (name, data)}, headers=headers)


def as_rows(records) -> np.ndarray:
    """Records as rows [class, xmin, ymin, xmax, ymax, confidence]."""
    return np.array([[r["class"], r["xmin"], r["ymin"], r["xmax"], r["ymax"], r["confidence"]] for r in records])


def test_v70_client_request_gets_detect_py_boxes(models, files, tmp_path):
    """v7.0's example_request.py: a multipart `image` field of raw bytes, the records parsed as JSON."""
    image = files["dir"] / "wide.png"
    with live_server(create_app([models["det"]])) as url:
        records = httpx.post(f"{url}/v1/object-detection/shapes?size=160", files={"image": image.read_bytes()},
                             timeout=30).json()
    assert list(records[0]) == ["xmin", "ymin", "xmax", "ymax", "confidence", "class", "name"]
    assert all(r["name"] == NAMES[r["class"]] for r in records)
    save_dir = detect.run(weights=files["det"], source=image, imgsz=(160, 160), device="cpu", save_txt=True,
                          save_conf=True, nosave=True, project=tmp_path, exist_ok=True)
    want = read_labels(save_dir / "labels" / "wide.txt", 200, 120)
    got = as_rows(records)
    assert len(got) > 1
    assert_same_detections(got, want, px=0.01, what="served vs detect.py")  # labels keep 6 significant digits
    assert np.allclose(np.sort(got[:, 5]), np.sort(want[:, 5]), atol=1e-5)


def test_query_parameters_filter_like_detect_py(models, files):
    data = (files["dir"] / "square.jpg").read_bytes()
    with client([models["det"]]) as c:
        every = post(c, "shapes", data, size=160, conf=0.25).json()
        strict = post(c, "shapes", data, size=160, conf=0.6).json()
        one = post(c, "shapes", data, size=160, max_det=1).json()
        low = post(c, "shapes", data, size=160, conf=0.02).json()  # this random model's other classes score low
        keep = sorted({r["class"] for r in low})[1:]  # every class seen but the first
        only = post(c, "shapes", data, size=160, conf=0.02, classes=keep).json()
        bad = post(c, "shapes", data, conf=1.5)
    assert len(every) > len(strict) and all(r["confidence"] > 0.6 for r in strict)
    assert one == every[:1]
    ordered = lambda rs: sorted(rs, key=lambda r: tuple(r.values()))  # equal confidences may come in either order
    assert keep and ordered(only) == ordered([r for r in low if r["class"] in keep]) and 0 < len(only) < len(low)
    assert bad.status_code == 422


def test_segmentation_adds_polygons_inside_their_boxes(models, files):
    data = (files["dir"] / "wide.png").read_bytes()
    with client([models["seg"]]) as c:
        records = post(c, "shapes-seg", data, name="wide.png", size=160).json()
    assert records and all(set(r) == {"xmin", "ymin", "xmax", "ymax", "confidence", "class", "name", "segments"}
                           for r in records)
    outlined = [r for r in records if r["segments"]]
    assert outlined
    for r in outlined:
        xy = np.array(r["segments"])
        assert xy.shape[1] == 2 and len(xy) >= 3
        assert (xy[:, 0] >= r["xmin"] - 1.5).all() and (xy[:, 0] <= r["xmax"] + 1.5).all()  # masks are cut to boxes
        assert (xy[:, 1] >= r["ymin"] - 1.5).all() and (xy[:, 1] <= r["ymax"] + 1.5).all()


def test_classification_answers_classify_predict_top5(models, files, tmp_path):
    image = files["dir"] / "square.jpg"
    with client([models["cls"]]) as c:
        records = post(c, "shapes-cls", image.read_bytes(), size=64).json()
    save_dir = classify_predict.run(weights=files["cls"], source=image, imgsz=(64, 64), device="cpu",
                                    save_txt=True, nosave=True, project=tmp_path, exist_ok=True)
    lines = (save_dir / "labels" / "square.txt").read_text().split("\n")[:-1]  # '0.41 circle' per class
    assert [f"{r['confidence']:.2f} {r['name']}" for r in records] == lines
    assert len(records) == 3 and abs(sum(r["confidence"] for r in records) - 1) < 1e-5


def test_models_health_page_and_docs(models):
    with client(models.values(), api_key="k") as c:
        listed = c.get("/v1/models", headers={"X-API-Key": "k"}).json()
        health, page, docs = c.get("/health"), c.get("/"), c.get("/docs")
        script = c.get("/static/app.js")
        schema = c.get("/openapi.json").json()
    assert [(m["name"], m["task"], m["imgsz"]) for m in listed] == [
        ("shapes", "detect", 640), ("shapes-seg", "segment", 640), ("shapes-cls", "classify", 224)]
    assert listed[0]["classes"] == {"0": "circle", "1": "square", "2": "triangle"}
    assert health.json() == {"status": "ok", "auth": True}
    assert page.status_code == 200 and '<canvas id="canvas"' in page.text and "http" not in page.text.split("<body>")[1]
    assert script.status_code == 200 and "/v1/object-detection/" in script.text
    assert docs.status_code == 200 and "/v1/object-detection/{model}" in schema["paths"]


def test_every_refusal_and_the_server_answers_afterwards(models, files):
    good = (files["dir"] / "square.jpg").read_bytes()
    with client([models["det"]], api_key="secret", max_upload_mb=0.05, max_pixels=200 * 200) as c:
        key = {"X-API-Key": "secret"}
        assert post(c, "shapes", good).status_code == 401  # no key
        assert post(c, "shapes", good, headers={"X-API-Key": "secreT"}).status_code == 401
        assert c.get("/v1/models").status_code == 401
        assert c.get("/health").status_code == 200  # open without a key
        big = post(c, "shapes", np.random.default_rng(0).bytes(60_000), headers=key)
        assert big.status_code == 413 and "at most 52428 bytes" in big.json()["detail"]
        text = post(c, "shapes", b"just some text", name="notes.txt", headers=key)
        assert text.status_code == 415 and "notes.txt" in text.json()["detail"]
        bomb = post(c, "shapes", png_header_only(5000, 4000), name="bomb.png", headers=key)
        assert bomb.status_code == 413 and "5000x4000" in bomb.json()["detail"]
        too_wide = post(c, "shapes", encode(shapes_image(100, 401)), headers=key)  # 40100 px > 40000
        assert too_wide.status_code == 413
        for name in ("nope", "..%2Fshapes", "shapes.pt"):
            r = c.post(f"/v1/object-detection/{name}", files={"image": ("a.jpg", good)}, headers=key)
            assert r.status_code == 404
        ok = post(c, "shapes", good, headers=key, size=160)
    assert ok.status_code == 200 and ok.json() and "inference;dur=" in ok.headers["server-timing"]


def test_chunked_uploads_over_the_limit_get_413(models, files):
    def chunks():
        # a valid multipart head, then a file part that keeps coming: only the size can stop it (garbage from the
        # first byte would let the multipart parser answer 400 first, depending on how the chunks arrive)
        yield (b'--abc\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n")
        for _ in range(10):
            yield b"x" * 10_000  # no Content-Length: counted as it arrives

    with live_server(create_app([models["det"]], Settings(max_upload_mb=0.05))) as url, httpx.Client() as c:
        r = c.post(f"{url}/v1/object-detection/shapes", content=chunks(),
                   headers={"Content-Type": "multipart/form-data; boundary=abc"}, timeout=30)
        assert r.status_code == 413
        assert c.get(f"{url}/health", timeout=30).status_code == 200


def test_no_request_makes_the_server_read_a_path_or_fetch_a_url(models, files):
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write((files["dir"] / "square.jpg").read_bytes())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/square.jpg"
        local = str(files["dir"] / "square.jpg")
        with client([models["det"]]) as c:
            as_field = [c.post("/v1/object-detection/shapes", data={"image": s}) for s in (url, local)]
            as_name = post(c, "shapes", b"not an image", name=local)  # a path as the file name: only bytes count
            as_query = c.post("/v1/object-detection/shapes", params={"source": url})
    finally:
        server.shutdown()
    assert [r.status_code for r in as_field] == [422, 422] and as_name.status_code == 415
    assert as_query.status_code == 422 and hits == []


def test_full_queue_gets_503_with_retry_after(models, files):
    data = encode(shapes_image(640, 640, seed=5))
    app = create_app([models["det"]], Settings(max_batch=1, max_wait_ms=0, max_queue=1))
    with live_server(app) as url, httpx.Client(timeout=60) as c:
        def send(_):
            return c.post(f"{url}/v1/object-detection/shapes?size=640", files={"image": ("a.jpg", data)})

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, range(12)))
        codes = [r.status_code for r in answers]
        assert 503 in codes and 200 in codes and set(codes) == {200, 503}
        assert all(r.headers["retry-after"] == "1" for r in answers if r.status_code == 503)
        assert send(0).status_code == 200  # answering again once the queue drained


def test_batched_results_equal_single_results(models, files):
    images = [encode(shapes_image(160, 160, seed=s)) for s in range(4)]
    with client([models["det"], models["seg"]], max_batch=1) as c:
        single = [post(c, m, im, size=160).json() for m in ("shapes", "shapes-seg") for im in images]
    app = create_app([models["det"], models["seg"]], Settings(max_batch=4, max_wait_ms=1000))
    with live_server(app) as url, httpx.Client(timeout=60) as c:
        def send(job):
            m, im = job
            return c.post(f"{url}/v1/object-detection/{m}?size=160", files={"image": ("a.jpg", im)})

        jobs = [(m, im) for m in ("shapes", "shapes-seg") for im in images]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, jobs))
        batch_sizes = [int(r.headers["x-batch-size"]) for r in answers]
    assert max(batch_sizes) > 1, batch_sizes  # each model waits up to 1 s to fill a batch of 4
    for got, want in zip((r.json() for r in answers), single):
        assert len(got) == len(want) and len(want) > 0
        for g, w in zip(got, want):
            # oneDNN picks batch-size-dependent kernels: confidences agree to float32 rounding, all else exactly
            assert abs(g.pop("confidence") - w.pop("confidence")) < 1e-5
            assert g == w


def test_exports_are_served_like_the_pt_model(models, files, tmp_path):
    pt = shutil.copy(files["det"], tmp_path / "exported.pt")
    exports = export.run(weights=pt, imgsz=(160, 160), include=["torchscript", "onnx", "openvino"])
    data = (files["dir"] / "square.jpg").read_bytes()  # square: the .pt and the exports see the same input
    with client([models["det"]]) as c:
        want = as_rows(post(c, "shapes", data, size=160).json())
    assert len(want) > 0
    for f in exports:
        served = ServedModel(f, CPU)
        assert (served.task, served.fixed, served.batch, served.imgsz) == ("detect", (160, 160), 1, 160)
        with client([served], max_batch=4) as c:
            got = as_rows(post(c, served.name, data, size=320).json())  # the export's own size wins
        assert_same_detections(got, want, px=1.0, what=f"{f} vs pt")


def test_an_export_with_a_fixed_batch_is_padded_to_it(models, files, tmp_path):
    pt = shutil.copy(files["det"], tmp_path / "batch2.pt")
    served = ServedModel(export.run(weights=pt, imgsz=(160, 160), batch_size=2, include=["onnx"])[0], CPU)
    assert served.batch == 2
    data = (files["dir"] / "square.jpg").read_bytes()
    with client([models["det"]]) as c:
        want = as_rows(post(c, "shapes", data, size=160).json())
    with client([served], max_batch=8) as c:  # one request alone still fills the export's batch of 2
        got = as_rows(post(c, "batch2", data).json())
    assert_same_detections(got, want, px=1.0, what="batch-2 onnx vs pt")
