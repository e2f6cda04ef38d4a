"""The FastAPI application: v7.0's detection endpoint, /v1/models, /health, the web page, limits and the API key."""

from __future__ import annotations

import dataclasses
import functools
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Security, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles

from serving.batcher import Batcher, QueueFull
from serving.limits import BodyLimit, check_key
from serving.model import Job, Options, ServedModel, run_jobs
from serving.uploads import UploadError, decode_image

STATIC = Path(__file__).parent / "static"


@dataclasses.dataclass
class Settings:
    """The server's limits (serve.py's flags)."""

    api_key: str | None = None  # required in X-API-Key on every call but /health and the page
    max_upload_mb: float = 10.0  # larger request bodies get 413
    max_pixels: int = 50_000_000  # images whose header says more get 413 before decoding
    max_batch: int = 8  # requests run together in one forward pass at most
    max_wait_ms: float = 2.0  # how long a batch waits for more requests after its first
    max_queue: int = 64  # waiting requests per model beyond which new ones get 503
    retry_after_s: int = 1  # the Retry-After a 503 carries


def create_app(models: list[ServedModel], settings: Settings | None = None) -> FastAPI:
    """The application serving models (each under its name) with settings."""
    s = settings or Settings()
    served = {m.name: m for m in models}
    if len(served) != len(models):
        raise ValueError(f"two models share a name (file stem): {[m.name for m in models]}; rename one file")
    batchers = {m.name: Batcher(functools.partial(run_jobs, m), min(s.max_batch, m.batch or s.max_batch),
                                s.max_wait_ms, s.max_queue, m.name) for m in models}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for b in batchers.values():
            b.start()
        yield
        for b in batchers.values():
            await b.stop()

    app = FastAPI(title="YOLOv5 serving", version="1.0", lifespan=lifespan,
                  description="v7.0's REST API (POST /v1/object-detection/<model>, multipart field `image`) with "
                              "batching, limits and an optional API key (X-API-Key).")
    app.state.models, app.state.batchers, app.state.settings = served, batchers, s
    app.add_middleware(BodyLimit, max_bytes=int(s.max_upload_mb * 1024 * 1024))
    app.include_router(api_router(served, batchers, s))
    app.include_router(page_router(s))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def api_router(served: dict[str, ServedModel], batchers: dict[str, Batcher], s: Settings) -> APIRouter:
    """/v1/models and /v1/object-detection/<model>, behind the API key when the server has one."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's --api-key")

    def authorized(key: str | None = Security(header)) -> None:
        check_key(s.api_key, key)

    router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)])

    @router.get("/models")
    def list_models() -> list[dict]:
        """Each model's name, task, classes and image size."""
        return [m.describe() for m in served.values()]

    @router.post("/object-detection/{model}", responses={401: {}, 404: {}, 413: {}, 415: {}, 503: {}})
    async def predict(model: str, image: UploadFile = File(..., description="the image (JPEG, PNG, BMP, WebP, TIFF)"),
                      size: int | None = Query(None, ge=32, le=4096, description="inference size (default --imgsz)"),
                      conf: float = Query(0.25, ge=0, le=1), iou: float = Query(0.45, ge=0, le=1),
                      max_det: int = Query(1000, ge=1, le=10000),
                      classes: list[int] | None = Query(None, description="keep only these class indices")):
        """v7.0's records (xmin, ymin, xmax, ymax, confidence, class, name [, segments]) or a classifier's top-5."""
        m = served.get(model)
        if m is None:
            raise HTTPException(404, f"no model named {model!r}; served: {', '.join(served)}")
        try:
            im0 = await run_in_threadpool(decode_image, await image.read(), s.max_pixels, image.filename or "image")
        except UploadError as e:
            raise HTTPException(e.status, e.detail) from e
        x = await run_in_threadpool(m.preprocess, im0, size)
        opt = Options(size, conf, iou, max_det, tuple(classes) if classes else None)
        try:
            answer = await batchers[model].submit(tuple(x.shape), Job(x, im0.shape, opt))
        except QueueFull as e:
            raise HTTPException(503, f"{e}; retry later", headers={"Retry-After": str(s.retry_after_s)}) from e
        return JSONResponse(answer.records, headers={"Server-Timing": f"inference;dur={answer.ms:.1f}",
                                                     "X-Batch-Size": str(answer.batch)})

    return router


def page_router(s: Settings) -> APIRouter:
    """/health and the web page: open to all, so the page can load and ask for the key."""
    router = APIRouter()

    @router.get("/health")
    def health() -> dict:
        """Whether the server answers, and whether it wants an API key."""
        return {"status": "ok", "auth": bool(s.api_key)}

    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return router
