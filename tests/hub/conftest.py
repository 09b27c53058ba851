"""Fixtures for the hub tests: a loopback fake hub with HF_ENDPOINT pointed at it, and the tiny models."""

from __future__ import annotations

import pytest
from fakehub import FAST_RETRY, FakeHub  # noqa: F401  (FAST_RETRY: re-exported for older imports)


@pytest.fixture
def fake_hub(monkeypatch, tiny_base, tiny_instruct):
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    hub.add_repo("tandem-test/Tiny-GGUF", {
        "tiny-base-Q8_0.gguf": tiny_base.read_bytes(),
        "tiny-instruct-Q8_0.gguf": tiny_instruct.read_bytes(),
        "README.md": b"# tiny\n",
    }, downloads=10)
    yield hub
    hub.stop()


@pytest.fixture
def dest(tmp_path):
    """An empty models folder for a download."""
    path = tmp_path / "models"
    path.mkdir()
    return path
