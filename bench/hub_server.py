"""A loopback server speaking just enough of the Hugging Face hub's file protocol for one download.

The stall figure needs a download running in the GUI process through the app's real hub code, on a
machine that may have no internet (and a bench must not depend on the network's speed anyway). This
serves one file of ``size`` bytes at ``rate`` bytes/s (HEAD with the hub's size/commit/sha256 headers,
GET with Range), from the bench's own process, so the GUI process carries only the client side.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20


class HubFileServer:
    def __init__(self, size_mb: int, rate_mb_s: float, filename: str = "bench-download.gguf"):
        self.filename = filename
        self.repo = "tandem-bench/download"
        self.commit = "b" * 40
        self.chunk = os.urandom(CHUNK)
        self.size = size_mb * CHUNK
        self.rate = rate_mb_s * CHUNK
        digest = hashlib.sha256()
        for _ in range(size_mb):
            digest.update(self.chunk)
        self.sha256 = digest.hexdigest()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="bench-hub")

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubFileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _headers(self, status: int, start: int) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", server.commit)
                self.send_header("X-Linked-Etag", f'"{server.sha256}"')
                self.send_header("X-Linked-Size", str(server.size))
                self.send_header("ETag", f'"{server.sha256}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(server.size - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{server.size - 1}/{server.size}")
                self.end_headers()

            def _known(self) -> bool:
                if not self.path.split("?")[0].endswith("/" + server.filename):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return False
                return True

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                if self._known():
                    self._headers(200, 0)

            def do_GET(self) -> None:  # noqa: N802
                if not self._known():
                    return
                start = 0
                spec = self.headers.get("Range", "")
                if spec.startswith("bytes="):
                    start = int(spec[6:].split("-")[0] or 0)
                self._headers(206 if start else 200, start)
                sent, began = 0, time.perf_counter()
                offset = start
                try:
                    while offset < server.size:
                        piece = server.chunk[offset % CHUNK:][: min(CHUNK, server.size - offset)]
                        self.wfile.write(piece)
                        offset += len(piece)
                        sent += len(piece)
                        ahead = sent / server.rate - (time.perf_counter() - began)
                        if ahead > 0:
                            time.sleep(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
