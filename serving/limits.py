"""Request limits and authentication: the upload size cap (413) and the X-API-Key check (401)."""

from __future__ import annotations

import hmac
import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """ASGI middleware: a request body over max_bytes gets 413, from Content-Length before anything is read, else
    as soon as the bytes received pass the limit (chunked uploads), so no upload is held beyond it."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send, int(length) if length.isdigit() else -1)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # raised inside FastAPI's body reading, which answers an HTTPException
                raise HTTPException(413, self.detail(received))
            return message

        await self.app(scope, counted, send)

    def detail(self, size: int) -> str:
        """The 413 message."""
        got = f"{size} bytes" if size >= 0 else "an invalid Content-Length"
        return f"upload too large: {got}, this server takes at most {self.max_bytes} bytes (--max-upload-mb)"

    async def _refuse(self, send: Send, size: int) -> None:
        """Answer 413 without reading the body."""
        body = json.dumps({"detail": self.detail(size)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def check_key(expected: str | None, given: str | None) -> None:
    """401 unless the server has no key or given equals it; compared in constant time."""
    if not expected:
        return
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header",
                            headers={"WWW-Authenticate": "X-API-Key"})
