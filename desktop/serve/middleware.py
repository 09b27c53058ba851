"""One pure ASGI layer in front of every route: the API key, the body size limit (413) and the request log.

Pure ASGI, not Starlette's BaseHTTPMiddleware, so a streaming response passes through untouched and the
client's disconnect still reaches the route (it cancels the model's stream)."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable

from desktop.serve.config import RequestRecord
from desktop.serve.errors import error_body

log = logging.getLogger("tandem.serve")
MODEL_ROOT = re.compile(r"^/models/([^/]+)(/.*)$")
OPEN_PATHS = ("/health",)


async def send_error(send, status: int, message: str, code: str | None = None) -> None:
    body = json.dumps(error_body(status, message, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ServeMiddleware:
    def __init__(self, app, *, api_key: str | None, max_body_bytes: int,
                 on_request: Callable[[RequestRecord], None] | None):
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.on_request = on_request

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.time()
        t0 = time.perf_counter()
        status = {"code": 0}
        scope.setdefault("state", {})

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            receive = await self._checked(scope, receive, sending)
            if receive is not None:
                await self.app(scope, receive, sending)
        except Exception as exc:  # a bug of ours: a 500 in the API's shape, the traceback in the log only
            log.error("unexpected error serving %s", scope.get("path"), exc_info=exc)
            if status["code"] == 0:
                await send_error(sending, 500, f"internal error ({type(exc).__name__}: {exc})", "server_error")
        finally:
            self._record(scope, started, status["code"], time.perf_counter() - t0)

    async def _checked(self, scope, receive, send):
        """The key and the body size; None once an error has been sent. The body is read here in full (up
        to the limit) and replayed; after it the client's own ``receive`` carries its disconnect."""
        path = scope.get("path", "")
        if self.api_key and scope["method"] != "OPTIONS" and path not in OPEN_PATHS:
            given = dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                await send_error(send, 401, "A valid API key is needed: send it as \"Authorization: Bearer "
                                             "<key>\".", "invalid_api_key")
                return None
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return receive
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await send_error(send, 413, f"The request body is over the server's limit of "
                                        f"{self.max_body_bytes} bytes.", "body_too_large")
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await send_error(send, 413, f"The request body is over the server's limit of "
                                            f"{self.max_body_bytes} bytes.", "body_too_large")
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _record(self, scope, started: float, status: int, duration: float) -> None:
        if self.on_request is None:
            return
        path = scope.get("path", "")
        m = MODEL_ROOT.match(path)
        route, model = (m.group(2), m.group(1)) if m else (path, "")
        rec = (scope.get("state") or {}).get("tandem_record") or {}
        try:
            self.on_request(RequestRecord(started, route, rec.get("model", model), status,
                                          int(rec.get("prompt_tokens", 0)), int(rec.get("completion_tokens", 0)),
                                          duration))
        except Exception:  # a listener's bug must not fail the request
            log.exception("the request log's listener failed")
