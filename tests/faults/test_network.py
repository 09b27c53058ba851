"""Network faults against the fake hub (tests/hub/fakehub.py, extended here, not forked): connections
dropped at many byte offsets, stalls, resets, 429/5xx with Retry-After, wrong Content-Length, redirects
to another host, hostile file names from an API listing, and a disk that fills up mid-download.

Every case ends resumed (the next request's Range starts at the bytes on disk, and the sha256 verifies)
or cleanly failed, and never with a corrupt or partial file where the library would list it.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakehub import FakeHub, _Handler
from faults_common import add, one_line

from desktop.core.errors import ChecksumMismatch, DiskFullError, DownloadError, HubError, TandemError
from desktop.core.library import Library
from desktop.hub import transfer
from desktop.hub.download import DownloadManager, download_blocking
from desktop.hub.transfer import RetryPolicy

REPO = "tandem-test/Faults-GGUF"
FILE = "tiny-base-Q8_0.gguf"
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05, read_timeout=0.5, connect_timeout=1.0)


@dataclass
class Fault:
    """One fault for the next GET of file bytes. ``at``: body bytes sent before it strikes."""

    kind: str  # "stall" | "reset" | "short" (close early) | "length" (lie in Content-Length) | "redirect"
    #            | "status" (answer ``status`` with ``headers`` instead of the bytes)
    at: int = 0
    seconds: float = 0.0
    delta: int = 0
    location: str = ""
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()


class _FaultyWriter:
    def __init__(self, inner, fault: Fault, conn: socket.socket):
        self.inner, self.fault, self.conn, self.sent = inner, fault, conn, 0

    def write(self, data: bytes) -> int:
        room = self.fault.at - self.sent
        if self.fault.kind == "length" or room >= len(data):
            self.sent += len(data)
            return self.inner.write(data)
        self.inner.write(data[:max(room, 0)])
        self.inner.flush()
        self.sent += max(room, 0)
        if self.fault.kind == "stall":
            time.sleep(self.fault.seconds)  # then the server gives up on this connection
        elif self.fault.kind == "reset":  # RST, not FIN
            self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.shutdown(socket.SHUT_RDWR) if self.fault.kind != "reset" else None
        self.conn.close()
        raise BrokenPipeError("fault injected")

    def flush(self) -> None:
        self.inner.flush()


class _FaultyHandler(_Handler):
    fault: Fault | None = None

    def do_GET(self) -> None:  # noqa: N802
        if "/resolve/" in self.path or "/cdn/" in self.path:
            with self.fake.lock:
                self.fault = self.fake.faults.pop(0) if self.fake.faults else None
        if self.fault is not None and self.fault.kind == "redirect":
            self._record()
            self.send_response(302)
            self.send_header("Location", self.fault.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.fault is not None and self.fault.kind == "status":
            self._record()
            self._send(self.fault.status, b'{"error": "injected"}', dict(self.fault.headers))
            return
        super().do_GET()

    def send_header(self, keyword: str, value: str) -> None:
        if self.fault is not None and self.fault.kind == "length" and keyword == "Content-Length" and value != "0":
            value = str(max(0, int(value) + self.fault.delta))
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        super().end_headers()
        if self.fault is not None and self.command == "GET" and self.fault.kind in ("stall", "reset", "short"):
            self.wfile = _FaultyWriter(self.wfile, self.fault, self.connection)


class FaultHub(FakeHub):
    """The hub tests' FakeHub, with a queue of byte-level faults for the next file GETs."""

    handler_base = _FaultyHandler
    quiet_errors = True  # injected faults are not test noise

    def __init__(self) -> None:
        super().__init__()
        self.faults: list[Fault] = []


@pytest.fixture
def hub(monkeypatch, tiny_base):
    h = FaultHub().start()
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    h.add_repo(REPO, {FILE: tiny_base.read_bytes()})
    yield h
    h.stop()


def _download(dest: Path, filename: str = FILE) -> Path:
    return download_blocking(REPO, filename, dest, policy=FAST)


def _assert_clean(dest: Path, expect_file: bytes | None) -> None:
    """The library sees the verified file, or nothing: never a partial or corrupt model."""
    entries = Library(dest, discover=False).scan()
    if expect_file is None:
        assert entries == [] and not (dest / FILE).exists()
    else:
        (entry,) = entries
        assert entry.ok and (dest / FILE).read_bytes() == expect_file


def _offsets(size: int) -> list[int]:
    """30+ cut points: the first bytes, around the server's 4 KiB writes and the header's end, and spread
    over the whole file up to its last byte."""
    points = {1, 7, 100, 4095, 4096, 4097, 8192, 16_384, 19_232, 65_535, 65_536, 65_537, 131_072,
              262_144, size // 2, size - 4097, size - 4096, size - 100, size - 2, size - 1}
    points |= {size * k // 17 for k in range(1, 17)}
    return sorted(p for p in points if 0 < p < size)


def test_dropped_at_many_offsets_resumes_from_each(hub, tiny_base, tmp_path):
    data = tiny_base.read_bytes()
    offsets = _offsets(len(data))
    assert len(offsets) >= 30
    for offset in offsets:
        dest = tmp_path / f"at-{offset}"
        hub.drop_after = offset
        before = len(hub.file_gets(FILE))
        assert _download(dest) == dest / FILE
        starts = [r.range_start for r in hub.file_gets(FILE)[before:]]
        assert starts == [0, offset], (offset, starts)  # the second request fetched only the rest
        _assert_clean(dest, data)
        assert not list(dest.glob("*.part*"))
        add("offsets")


@pytest.mark.parametrize("kind, at", [("stall", 5000), ("stall", 400_000), ("reset", 1), ("reset", 300_001),
                                      ("short", 123_456), ("reset", -96)])
def test_stalls_resets_and_early_closes_resume(hub, tiny_base, tmp_path, kind, at):
    at = at if at > 0 else tiny_base.stat().st_size + at  # negative: from the end
    hub.faults = [Fault(kind, at=at, seconds=2.0)]
    t0 = time.perf_counter()
    _download(tmp_path)
    assert time.perf_counter() - t0 < 10  # a stall costs the read timeout (0.5 s here), not the stall
    starts = [r.range_start for r in hub.file_gets(FILE)]
    assert len(starts) == 2 and starts[0] == 0, starts
    # a reset (RST) may discard bytes still in flight: resume from what really arrived, never beyond
    assert (starts[1] == at) if kind != "reset" else (0 <= starts[1] <= at), starts
    _assert_clean(tmp_path, tiny_base.read_bytes())
    add("net_faults")


@pytest.mark.parametrize("delta", [-1000, -300_000, 50_000])
def test_wrong_content_length(hub, tiny_base, tmp_path, delta):
    """The server lies about the body's length: shorter (the rest arrives as junk on a reused connection)
    or longer (the client must not wait for bytes that never come). The file still lands byte-exact."""
    hub.faults = [Fault("length", delta=delta)]
    t0 = time.perf_counter()
    _download(tmp_path)
    assert time.perf_counter() - t0 < 10
    _assert_clean(tmp_path, tiny_base.read_bytes())
    add("net_faults")


@pytest.mark.parametrize("status, headers", [
    (429, {"Retry-After": "0"}),
    (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),  # a date in the past: go now
    (503, {"Retry-After": "1"}),
    (500, {}), (502, {}), (504, {}), (408, {}),
])
def test_rate_limits_and_server_errors_are_retried(hub, tiny_base, tmp_path, status, headers):
    hub.statuses = [(status, headers), (status, headers)]
    t0 = time.perf_counter()
    _download(tmp_path)
    assert time.perf_counter() - t0 < 8
    _assert_clean(tmp_path, tiny_base.read_bytes())
    add("net_faults")


def test_a_retry_after_too_long_fails_cleanly_keeping_the_bytes(hub, tiny_base, tmp_path):
    """The connection drops at 200 KB and the hub then asks us to come back tomorrow: a clean error that
    keeps the bytes (never a model in the library), and tomorrow the download resumes from them."""
    hub.faults = [Fault("short", at=200_000), Fault("status", status=429, headers=(("Retry-After", "86400"),))]
    with pytest.raises(TandemError) as info:
        _download(tmp_path)
    assert one_line(str(info.value)) and "wait" in str(info.value)
    part = tmp_path / f"{FILE}.part"
    assert part.stat().st_size == 200_000
    _assert_clean(tmp_path, None)
    _download(tmp_path)
    assert hub.file_gets(FILE)[-1].range_start == 200_000
    _assert_clean(tmp_path, tiny_base.read_bytes())
    add("net_faults")


def test_server_errors_forever_fail_cleanly(hub, tmp_path):
    hub.statuses = [(503, {})] * 50
    with pytest.raises(HubError) as info:
        _download(tmp_path)
    assert one_line(str(info.value))
    _assert_clean(tmp_path, None)
    add("net_faults")


def test_redirect_to_another_host_with_other_bytes(hub, tmp_path, monkeypatch):
    """A redirect (as to a CDN) to a host serving different bytes: the checksum catches it, the bad bytes
    are deleted, and the token was not sent to that host."""
    evil = FakeHub().start()
    try:
        evil.add_repo(REPO, {FILE: b"GGUF" + b"\x00" * 5000})
        monkeypatch.setenv("HF_TOKEN", "hf_faults-secret-token")
        hub.faults = [Fault("redirect", location=f"http://localhost:{evil.port}/{REPO}/resolve/main/{FILE}")]
        with pytest.raises(ChecksumMismatch) as info:
            _download(tmp_path)
        assert one_line(str(info.value)) and "deleted" in str(info.value)
        got = evil.file_gets(FILE)
        assert got and all("authorization" not in r.headers for r in got)
        _assert_clean(tmp_path, None)
        assert not list(tmp_path.glob("*.part"))
    finally:
        evil.stop()
    add("net_faults")


HOSTILE_NAMES = ["../evil.gguf", "../../evil.gguf", "/tmp/evil.gguf", "a/../../evil.gguf", "..\\evil.gguf",
                 "C:evil.gguf", "./../evil.gguf", "sub/./../../evil.gguf", ".hidden.gguf", "evil\x00.gguf",
                 "a//evil.gguf"]


def test_hostile_names_from_the_listing_never_write_outside(hub, tiny_base, tmp_path):
    from desktop.hub.files import list_gguf_files

    data = tiny_base.read_bytes()
    hub.add_repo(REPO, {**{n: data for n in HOSTILE_NAMES}, "ok/nested-Q8_0.gguf": data})
    listed = {f.name for f in list_gguf_files(REPO)}
    assert listed and all(".." not in n and not n.startswith("/") and "\\" not in n for n in listed), listed
    dest = tmp_path / "models"
    dest.mkdir()
    manager = DownloadManager(dest, policy=FAST)
    for name in HOSTILE_NAMES:
        with pytest.raises(TandemError) as info:
            manager.download(REPO, name)
        assert one_line(str(info.value)), name
        add("net_faults")
    assert download_blocking(REPO, "ok/nested-Q8_0.gguf", dest, policy=FAST) == dest / "nested-Q8_0.gguf"
    outside = [p for p in tmp_path.rglob("*evil*")] + list(Path("/tmp").glob("evil*.gguf"))
    assert outside == []
    assert {p.name for p in dest.iterdir()} <= {"nested-Q8_0.gguf", "nested-Q8_0.gguf.tandem.json"}


def test_cli_refuses_a_hostile_name(hub, tmp_path, capsys):
    from desktop.cli import main

    code = main(["models", "download", REPO, "../../evil.gguf", "--dir", str(tmp_path / "m")])
    out, err = capsys.readouterr()
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("tandem: error: ")
    assert not list(tmp_path.rglob("*evil*"))


def test_disk_full_mid_download_keeps_the_bytes_and_resumes(hub, tiny_base, tmp_path, monkeypatch):
    """The disk fills up after 300 KB: a clean DiskFullError, the .part kept (never listed as a model);
    once there is space again, resume fetches only the rest and the file verifies."""
    real_open = open
    limit = 300_000

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            if self.fh.tell() + len(data) > limit:
                room = max(0, limit - self.fh.tell())
                self.fh.write(data[:room])
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def full_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FullDisk(fh) if str(path).endswith(".part") and "b" in mode else fh

    monkeypatch.setattr(transfer, "open", full_open, raising=False)
    dest = tmp_path / "models"
    events = []
    manager = DownloadManager(dest, policy=FAST, on_event=events.append)
    final = manager.wait(manager.download(REPO, FILE), timeout=30)
    assert final.kind == "error" and isinstance(final.error, DiskFullError) and one_line(final.message)
    part = dest / f"{FILE}.part"
    have = part.stat().st_size
    assert 0 < have <= limit
    _assert_clean(dest, None)

    monkeypatch.setattr(transfer, "open", real_open, raising=False)
    before = len(hub.file_gets(FILE))
    final = manager.wait(manager.resume(f"{REPO}:{FILE}"), timeout=30)
    assert final.kind == "done", final
    assert [r.range_start for r in hub.file_gets(FILE)[before:]] == [have]
    _assert_clean(dest, tiny_base.read_bytes())
    add("net_faults")


def test_download_error_messages_never_show_a_traceback(hub, tmp_path):
    for name in ("missing.gguf", "nope/../x.gguf"):
        with pytest.raises((DownloadError, HubError)) as info:
            _download(tmp_path, name)
        assert one_line(str(info.value))
