"""Offline means offline: with Tandem's setting or HF_HUB_OFFLINE on, no hub call opens a socket."""

from __future__ import annotations

import socket

import pytest

from desktop.core.errors import OfflineError
from desktop.core.settings import Settings, save_settings
from desktop.hub.download import DownloadManager, download_blocking
from desktop.hub.files import list_gguf_files
from desktop.hub.search import search_models


@pytest.fixture
def no_sockets(monkeypatch):
    """Fails the test if anything connects or resolves a name."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"a socket was opened while offline: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []


def _every_hub_call(dest):
    calls = {
        "search": lambda: search_models("qwen"),
        "files": lambda: list_gguf_files("tandem-test/Tiny-GGUF"),
        "download": lambda: download_blocking("tandem-test/Tiny-GGUF", "tiny-base-Q8_0.gguf", dest),
    }
    for name, call in calls.items():
        with pytest.raises(OfflineError, match="offline") as info:
            call()
        assert "\n" not in str(info.value), name


def test_offline_setting_sends_nothing(fake_hub, dest, no_sockets):
    save_settings(Settings(offline=True))
    _every_hub_call(dest)
    assert fake_hub.requests == []


def test_hf_hub_offline_is_honoured_the_same_way(fake_hub, dest, no_sockets, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _every_hub_call(dest)
    assert fake_hub.requests == []


def test_offline_resume_of_a_pending_download_fails_cleanly(fake_hub, dest, monkeypatch):
    fake_hub.delay = 0.02
    manager = DownloadManager(dest)
    download_id = manager.download("tandem-test/Tiny-GGUF", "tiny-base-Q8_0.gguf")
    import time

    deadline = time.monotonic() + 10
    while not (dest / "tiny-base-Q8_0.gguf.part").exists() or (dest / "tiny-base-Q8_0.gguf.part").stat().st_size == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    manager.pause(download_id)
    assert manager.wait(download_id, timeout=5).kind == "paused"
    save_settings(Settings(offline=True))
    before = len(fake_hub.requests)
    again = DownloadManager(dest)
    again.resume(download_id)
    final = again.wait(download_id, timeout=5)
    assert final.kind == "error" and isinstance(final.error, OfflineError)
    assert len(fake_hub.requests) == before
    assert (dest / "tiny-base-Q8_0.gguf.part").exists()  # kept for when the user is back online
