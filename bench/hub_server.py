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
from pathlib import Path

CHUNK = 1 << 20


class _Served:
    """One file the server knows: its size, sha256 and a way to read a range of it."""

    def __init__(self, size: int, sha256: str, read):
        self.size, self.sha256, self.read = size, sha256, read


class HubFileServer:
    """``HubFileServer(size_mb, rate_mb_s)`` serves one file of random bytes at that rate;
    ``HubFileServer.real_files({(repo, filename): path})`` serves files from disk under hub names, as fast as
    loopback goes (or at ``rate_mb_s``)."""

    def __init__(self, size_mb: int = 0, rate_mb_s: float | None = None, filename: str = "bench-download.gguf",
                 *, files: dict[tuple[str, str], Path] | None = None):
        self.filename = filename
        self.repo = "tandem-bench/download"
        self.commit = "b" * 40
        self.rate = rate_mb_s * CHUNK if rate_mb_s else None
        self.files: dict[str, _Served] = {}  # "repo/filename" -> file
        self._handles: list = []  # files served from disk, closed on exit
        if files is None:
            chunk = os.urandom(CHUNK)
            digest = hashlib.sha256()
            for _ in range(size_mb):
                digest.update(chunk)
            self.size = size_mb * CHUNK
            self.sha256 = digest.hexdigest()
            self.files[f"{self.repo}/{filename}"] = _Served(
                self.size, self.sha256, lambda offset, n: chunk[offset % CHUNK:][:n])
        for (repo, name), path in (files or {}).items():
            self.files[f"{repo}/{name}"] = _Served(Path(path).stat().st_size, _sha256(Path(path)),
                                                   _file_reader(Path(path), self._handles))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="bench-hub")

    @classmethod
    def real_files(cls, files: dict[tuple[str, str], Path], rate_mb_s: float | None = None) -> HubFileServer:
        return cls(rate_mb_s=rate_mb_s, files=files)

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
        for handle in self._handles:
            handle.close()

    def _find(self, path: str) -> _Served | None:
        # /{owner}/{name}/resolve/{revision}/{filename}
        parts = path.split("?")[0].lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return None
        return self.files.get(f"{parts[0]}/{parts[1]}/{'/'.join(parts[4:])}")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _headers(self, served: _Served, status: int, start: int) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", server.commit)
                self.send_header("X-Linked-Etag", f'"{served.sha256}"')
                self.send_header("X-Linked-Size", str(served.size))
                self.send_header("ETag", f'"{served.sha256}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(served.size - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{served.size - 1}/{served.size}")
                self.end_headers()

            def _known(self) -> _Served | None:
                served = server._find(self.path)
                if served is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                return served

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                served = self._known()
                if served is not None:
                    self._headers(served, 200, 0)

            def do_GET(self) -> None:  # noqa: N802
                served = self._known()
                if served is None:
                    return
                start = 0
                spec = self.headers.get("Range", "")
                if spec.startswith("bytes="):
                    start = int(spec[6:].split("-")[0] or 0)
                self._headers(served, 206 if start else 200, start)
                sent, began = 0, time.perf_counter()
                offset = start
                try:
                    while offset < served.size:
                        piece = served.read(offset, min(CHUNK, served.size - offset))
                        self.wfile.write(piece)
                        offset += len(piece)
                        sent += len(piece)
                        if server.rate:
                            ahead = sent / server.rate - (time.perf_counter() - began)
                            if ahead > 0:
                                time.sleep(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK * 4), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_reader(path: Path, handles: list):
    lock = threading.Lock()
    handle = path.open("rb")
    handles.append(handle)

    def read(offset: int, n: int) -> bytes:
        with lock:
            handle.seek(offset)
            return handle.read(n)

    return read
