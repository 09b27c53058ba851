"""Downloads against the fake hub: verified landing, resume with Range, faults, pause/resume/cancel."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from fakehub import FAST_RETRY

from desktop.core.errors import ChecksumMismatch, DiskFullError, DownloadError, RepoNotFound
from desktop.hub.download import DownloadManager, download_blocking
from desktop.hub.transfer import read_state

REPO = "tandem-test/Tiny-GGUF"
FILE = "tiny-base-Q8_0.gguf"


class Events:
    """Collects a manager's events (they arrive on worker threads)."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.items.append(event)

    def kinds(self, download_id=None):
        with self.lock:
            return [e.kind for e in self.items if download_id in (None, e.id)]

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(predicate(e) for e in self.items):
                    return
            time.sleep(0.01)
        raise AssertionError(f"no matching event; got {self.kinds()}")


def _collapse(kinds):
    out = []
    for k in kinds:
        if not out or out[-1] != k:
            out.append(k)
    return out


def test_download_lands_verified_with_event_stream(fake_hub, tiny_base, dest):
    events = Events()
    manager = DownloadManager(dest, policy=FAST_RETRY, on_event=events)
    download_id = manager.download(REPO, FILE)
    final = manager.wait(download_id, timeout=30)
    assert final.kind == "done", final
    target = dest / FILE
    assert final.path == str(target)
    assert target.read_bytes() == tiny_base.read_bytes()
    assert _collapse(events.kinds()) == ["queued", "started", "progress", "verifying", "done"]
    progress = [e for e in events.items if e.kind == "progress"]
    assert progress[-1].bytes == progress[-1].total == tiny_base.stat().st_size
    assert not (dest / f"{FILE}.part").exists() and not (dest / f"{FILE}.part.json").exists()
    sidecar = (dest / f"{FILE}.tandem.json").read_text()
    assert hashlib.sha256(tiny_base.read_bytes()).hexdigest() in sidecar and REPO in sidecar


def test_dropped_connection_resumes_from_the_bytes_on_disk(fake_hub, tiny_base, dest):
    fake_hub.drop_after = 200_000
    path = download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert path.read_bytes() == tiny_base.read_bytes()
    gets = fake_hub.file_gets(FILE)
    assert len(gets) == 2
    assert gets[0].range_start == 0
    assert gets[1].range_start == 200_000  # exactly what was on disk: nothing fetched twice


def test_repeated_drops_still_complete(fake_hub, tiny_base, dest):
    fake_hub.drop_every = 150_000
    path = download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert path.read_bytes() == tiny_base.read_bytes()
    starts = [r.range_start for r in fake_hub.file_gets(FILE)]
    assert starts == list(range(0, tiny_base.stat().st_size, 150_000))


def test_checksum_mismatch_deletes_the_bad_bytes(fake_hub, dest):
    fake_hub.corrupt = True
    with pytest.raises(ChecksumMismatch, match="deleted"):
        download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert sorted(p.name for p in dest.iterdir()) == []


def test_missing_file_is_repo_not_found(fake_hub, dest):
    with pytest.raises(RepoNotFound, match="nope.gguf"):
        download_blocking(REPO, "nope.gguf", dest, policy=FAST_RETRY)
    with pytest.raises(RepoNotFound):
        download_blocking("ghost/Missing-GGUF", FILE, dest, policy=FAST_RETRY)


def test_429_and_503_are_retried_honouring_retry_after(fake_hub, tiny_base, dest):
    fake_hub.statuses = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    started = time.monotonic()
    path = download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    elapsed = time.monotonic() - started
    assert path.read_bytes() == tiny_base.read_bytes()
    assert elapsed >= 1.9  # two Retry-After: 1 waits, not the policy's 0.05 s backoff
    assert len(fake_hub.file_gets(FILE)) == 3


def test_server_errors_without_end_give_up_and_keep_bytes(fake_hub, dest):
    fake_hub.drop_after = 100_000
    fake_hub.statuses = [(500, {})] * 10
    # The first GET is answered 500 (statuses come first): nothing arrives, the policy gives up.
    with pytest.raises(DownloadError, match="kept failing"):
        download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert read_state(dest / FILE)["status"] == "error"


def test_server_ignoring_range_restarts_cleanly(fake_hub, tiny_base, dest):
    fake_hub.drop_after = 100_000
    fake_hub.ignore_range = True
    path = download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert path.read_bytes() == tiny_base.read_bytes()


def test_redirect_to_cdn_host_downloads_without_leaking_the_token(fake_hub, tiny_base, dest, monkeypatch):
    from fakehub import GOOD_TOKEN

    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    fake_hub.cdn_host = "localhost"  # another origin than 127.0.0.1, like the hub's CDN
    path = download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert path.read_bytes() == tiny_base.read_bytes()
    cdn = [r for r in fake_hub.requests if r.path.startswith("/cdn/")]
    hub = [r for r in fake_hub.requests if "/resolve/" in r.path]
    assert cdn and hub
    assert all(r.headers.get("authorization") == f"Bearer {GOOD_TOKEN}" for r in hub)
    assert all("authorization" not in r.headers for r in cdn)


def test_not_enough_disk_refuses_before_transfer(fake_hub, dest, monkeypatch):
    import shutil

    from desktop.hub import transfer

    usage = shutil.disk_usage(dest)
    monkeypatch.setattr(transfer.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(DiskFullError, match="Not enough disk space"):
        download_blocking(REPO, FILE, dest, policy=FAST_RETRY)
    assert fake_hub.file_gets() == []


def test_slow_server_cancel_is_quick_and_deletes_partial(fake_hub, dest):
    fake_hub.delay = 0.05
    events = Events()
    manager = DownloadManager(dest, policy=FAST_RETRY, on_event=events)
    download_id = manager.download(REPO, FILE)
    events.wait_for(lambda e: e.kind == "progress" and e.bytes > 0)
    started = time.monotonic()
    manager.cancel(download_id)
    final = manager.wait(download_id, timeout=5)
    assert time.monotonic() - started < 1.0
    assert final.kind == "cancelled"
    assert list(dest.iterdir()) == []


def test_cancel_on_a_stalled_server_does_not_wait_for_the_timeout(fake_hub, dest):
    fake_hub.delay = 30  # one 4 KiB chunk, then silence
    events = Events()
    manager = DownloadManager(dest, policy=FAST_RETRY, on_event=events)
    download_id = manager.download(REPO, FILE)
    events.wait_for(lambda e: e.kind == "progress" and e.bytes > 0)
    started = time.monotonic()
    manager.cancel(download_id)
    assert manager.wait(download_id, timeout=5).kind == "cancelled"
    assert time.monotonic() - started < 1.0


def test_pause_keeps_the_part_and_resume_fetches_only_the_rest(fake_hub, tiny_base, dest):
    fake_hub.delay = 0.02
    events = Events()
    manager = DownloadManager(dest, policy=FAST_RETRY, on_event=events)
    download_id = manager.download(REPO, FILE)
    events.wait_for(lambda e: e.kind == "progress" and e.bytes >= 100_000)
    manager.pause(download_id)
    assert manager.wait(download_id, timeout=5).kind == "paused"
    part = dest / f"{FILE}.part"
    have = part.stat().st_size
    assert 0 < have < tiny_base.stat().st_size
    assert read_state(dest / FILE)["status"] == "paused"
    # A new manager (as after a restart) lists it and resumes it.
    fake_hub.delay = 0
    again = DownloadManager(dest, policy=FAST_RETRY)
    pending = again.pending()
    assert [(p.id, p.bytes) for p in pending] == [(download_id, have)]
    again.resume(download_id)
    assert again.wait(download_id, timeout=30).kind == "done"
    assert (dest / FILE).read_bytes() == tiny_base.read_bytes()
    assert fake_hub.file_gets(FILE)[-1].range_start == have
    assert again.pending() == []


def test_queue_is_bounded_and_runs_at_most_n_at_once(fake_hub, dest):
    fake_hub.delay = 0.003
    manager = DownloadManager(dest, policy=FAST_RETRY, max_concurrent=1, max_queue=2)
    first = manager.download(REPO, FILE)
    second = manager.download(REPO, "tiny-instruct-Q8_0.gguf")
    assert manager.download(REPO, FILE) == first  # the same download is not queued twice
    with pytest.raises(DownloadError, match="queue is full"):
        manager.download(REPO, "README.md")
    deadline = time.monotonic() + 30
    while manager.status(first).kind in ("queued", "started") and time.monotonic() < deadline:  # the slot is taken
        time.sleep(0.01)
    assert manager.status(second).kind == "queued"  # waits for the one slot
    assert manager.wait(first, timeout=60).kind == "done"
    assert manager.wait(second, timeout=60).kind == "done"


def test_hostile_file_name_is_refused_before_any_request(fake_hub, dest):
    manager = DownloadManager(dest, policy=FAST_RETRY)
    for name in ("../outside.gguf", "/tmp/outside.gguf", "..\\outside.gguf"):
        with pytest.raises(DownloadError, match="refusing"):
            manager.download(REPO, name)
    assert fake_hub.requests == []
    assert not (dest.parent / "outside.gguf").exists()
