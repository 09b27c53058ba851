"""A loopback stand-in for huggingface.co, speaking the parts of its protocol Tandem and huggingface_hub use.

    GET  /api/models?search=&filter=gguf&sort=downloads&limit=    model search (JSON list)
    GET  /api/models/{owner}/{name}/tree/{revision}?recursive=     file list with sizes and LFS oids
    HEAD /{owner}/{name}/resolve/{revision}/{path}                 X-Repo-Commit, ETag, X-Linked-Etag/-Size
    GET  /{owner}/{name}/resolve/{revision}/{path}                 the bytes, honouring Range (206)
    GET  /api/whoami-v2                                            the token's account (Bearer good-token)

Errors carry the hub's X-Error-Code header (RepoNotFound, EntryNotFound, GatedRepo) so huggingface_hub
maps them as it does for the real hub. Faults are injected per test through ``FakeHub`` attributes:
``drop_after`` (close the connection mid-file), ``corrupt`` (serve wrong bytes under the right ETag),
``statuses`` (a queue of error responses, e.g. 503 with Retry-After), ``delay`` (a slow server),
``cdn_host`` (redirect LFS files to another host, as the real hub does to its CDN). Every request is
recorded in ``requests`` (method, path, headers) so tests can assert what was asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlparse

from desktop.hub.transfer import RetryPolicy

# Short waits so fault tests take seconds, not minutes; the shape of the policy is the real one.
FAST_RETRY = RetryPolicy(attempts=4, base=0.05, cap=0.2, read_timeout=5.0, connect_timeout=2.0)

GOOD_TOKEN = "hf_good-token-for-tests"


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    downloads: int = 0
    likes: int = 0
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    tags: list[str] = field(default_factory=lambda: ["gguf"])


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range_start(self) -> int | None:
        m = re.match(r"bytes=(\d+)-", self.headers.get("range", ""))
        return int(m.group(1)) if m else None


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        # Faults (each applies to GETs of file bytes on /resolve/ unless said otherwise).
        self.drop_after: int | None = None  # once: send this many bytes of the body, then cut the connection
        self.drop_every: int | None = None  # every response: send at most this many bytes, then cut
        self.corrupt = False  # serve flipped bytes (the ETag still claims the true sha256)
        self.statuses: list[tuple[int, dict[str, str]]] = []  # served (and popped) before real answers
        self.delay = 0.0  # seconds to sleep per 4 KiB chunk
        self.ignore_range = False  # answer 200 with the whole file even when a Range was asked
        self.cdn_host: str | None = None  # e.g. "localhost": LFS GETs/HEADs redirect there
        self.server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- setup -----------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kwargs) -> Repo:
        repo = Repo(files=dict(files), **kwargs)
        with self.lock:
            self.repos[repo_id] = repo
        return repo

    handler_base: type | None = None  # None: _Handler; subclasses serve through a handler of their own
    quiet_errors = False  # True: a connection the handler broke on purpose is not printed as an error

    def start(self) -> FakeHub:
        hub = self

        class Handler(self.handler_base or _Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.quiet_errors:
            self.server.handle_error = lambda request, address: None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else 0

    def file_gets(self, name: str | None = None) -> list[Request]:
        """GET requests for file bytes (optionally of one file name), in order."""
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and ("/resolve/" in r.path or "/cdn/" in r.path)
                    and (name is None or r.path.endswith("/" + quote(name)))]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    # -- plumbing --------------------------------------------------------------------------------------

    def _record(self) -> None:
        with self.fake.lock:
            self.fake.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message})

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {GOOD_TOKEN}"

    def do_HEAD(self) -> None:  # noqa: N802
        self._record()
        self._route()

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        self._route()

    # -- routes ----------------------------------------------------------------------------------------

    def _route(self) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        if path == "/api/models":
            return self._search(query)
        if path == "/api/whoami-v2":
            if not self._authorized():
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return self._send(200, json.dumps({"name": "tester", "type": "user", "auth": {
                "type": "access_token", "accessToken": {"displayName": "tests", "role": "read"}}}).encode())
        m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)/?$", path)
        if m:
            return self._tree(m.group(1))
        m = re.match(r"^/cdn/([^/]+/[^/]+)/(.+)$", path)
        if m:
            return self._file(m.group(1), m.group(2), from_cdn=True)
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            return self._file(m.group(1), m.group(3))
        self._error(404, "NotFound", f"no route {path}")

    def _search(self, query: dict) -> None:
        text = (query.get("search") or [""])[0].lower()
        limit = int((query.get("limit") or ["50"])[0])
        wanted_filter = (query.get("filter") or [None])[0]
        items = []
        for repo_id, repo in self.fake.repos.items():
            if text in repo_id.lower() and (wanted_filter is None or wanted_filter in repo.tags):
                items.append({"id": repo_id, "modelId": repo_id, "downloads": repo.downloads, "likes": repo.likes,
                              "gated": "manual" if repo.gated else False, "private": False,
                              "lastModified": "2026-01-02T03:04:05.000Z", "tags": repo.tags})
        items.sort(key=lambda i: i["downloads"], reverse=True)
        self._send(200, json.dumps(items[:limit]).encode())

    def _tree(self, repo_id: str) -> None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
        items = []
        for name, data in sorted(repo.files.items()):
            items.append({"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest(),
                          "lfs": {"oid": sha256(data), "size": len(data), "pointerSize": 134}})
        self._send(200, json.dumps(items).encode())

    def _file(self, repo_id: str, name: str, from_cdn: bool = False) -> None:
        fake = self.fake
        repo = fake.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
        if repo.gated and not self._authorized() and not from_cdn:
            return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have "
                                                 "access to it and be authenticated to access it.")
        data = repo.files.get(name)
        if data is None:
            return self._error(404, "EntryNotFound", f"{name} does not exist")
        with fake.lock:
            injected = fake.statuses.pop(0) if fake.statuses and self.command == "GET" else None
        if injected:
            status, headers = injected
            return self._send(status, b'{"error": "injected"}', headers)
        digest = sha256(data)
        meta_headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{digest}"', "Accept-Ranges": "bytes",
                        "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))}
        if fake.cdn_host and not from_cdn:
            location = f"http://{fake.cdn_host}:{fake.port}/cdn/{repo_id}/{quote(name)}"
            self.send_response(302)
            for k, v in {**meta_headers, "Location": location, "Content-Length": "0"}.items():
                self.send_header(k, v)
            self.end_headers()
            return
        body = bytes(b ^ 0xFF for b in data[:64]) + data[64:] if fake.corrupt else data
        start = 0
        m = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        status = 200
        if m and not fake.ignore_range:
            start = int(m.group(1))
            if start >= len(body):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
            status = 206
        self.send_response(status)
        for k, v in meta_headers.items():
            if not from_cdn or k in ("ETag", "Accept-Ranges"):
                self.send_header(k, v)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = None
        with fake.lock:
            if fake.drop_after is not None:
                limit, fake.drop_after = fake.drop_after, None
            elif fake.drop_every is not None:
                limit = fake.drop_every
        sent = 0
        pos = start
        try:
            while pos < len(body):
                chunk = body[pos:pos + 4096]
                if limit is not None and sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                self.wfile.write(chunk)
                sent += len(chunk)
                pos += len(chunk)
                if limit is not None and sent >= limit:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the dropped connection
                    self.close_connection = True
                    return
                if fake.delay:
                    self.wfile.flush()
                    time.sleep(fake.delay)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
