"""A tiny scripted HTTP server on loopback, for the server faults a real engine can't be made to produce
(401, 429 with Retry-After, a stream cut mid-token, a stall, malformed SSE, NaN logprobs).

Each route maps (METHOD, path) to a function ``handler(req) -> None`` that writes the reply with the helpers
on ``req`` (``json``, ``sse_start``, ``sse``, ``raw``). Requests are recorded (path, headers, body) so a test
can check what Tandem sent, e.g. that the API key went only into the Authorization header.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            self.body = json.loads(raw) if raw else None
        except ValueError:
            self.body = raw
        self.server.requests.append((method, self.path, dict(self.headers), self.body))
        route = self.server.routes.get((method, self.path))
        if route is None:
            self.json({"error": {"message": "Not Found"}}, 404)
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.server.client_gone.set()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- helpers for routes --
    def json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, obj) -> None:
        self.raw(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

    def raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def cut(self) -> None:
        """Drop the connection abruptly (RST), as a crashed server or a broken network does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.connection.close()
        self.close_connection = True


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], Callable] = {}
        self.requests: list = []
        self.client_gone = threading.Event()
        self.release = threading.Event()  # a stalled route waits on this
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def route(self, method: str, path: str):
        def deco(fn):
            self.routes[(method, path)] = fn
            return fn
        return deco

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


def completion_chunk(text: str, logprob, top: dict | None = None, finish: str | None = None) -> dict:
    """One /v1/completions SSE chunk in OpenAI's documented shape (a token with its logprob)."""
    return {"id": "cmpl-1", "object": "text_completion", "model": "m",
            "choices": [{"index": 0, "text": text, "finish_reason": finish,
                         "logprobs": {"tokens": [text] if text else [], "token_logprobs": [logprob] if text else [],
                                      "top_logprobs": [top or {text: logprob}] if text else [],
                                      "text_offset": [0] if text else []}}]}


def openai_server(model: str = "m") -> FaultServer:
    """A FaultServer that already lists one model on /v1/models (a generic OpenAI-compatible server)."""
    srv = FaultServer()
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"object": "list", "data": [{"id": model, "object": "model",
                                                                                      "owned_by": "someone"}]})
    return srv


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def drain(stream):
    """(token events, final event) of a stream run to its end."""
    from desktop.engine.types import FinalEvent

    tokens = []
    for ev in stream:
        if isinstance(ev, FinalEvent):
            return tokens, ev
        tokens.append(ev)
