"""The AMX switch: llama.cpp's AMX kernels are off on a CPU that reports AMX tiles (they SIGILL on this
project's test VMs on every multi-token batch), unless TANDEM_AMX says otherwise."""

from __future__ import annotations

from pathlib import Path

from desktop.engine.runner import _amx_usable


def test_forced_either_way(monkeypatch):
    monkeypatch.setenv("TANDEM_AMX", "1")
    assert _amx_usable() is True
    monkeypatch.setenv("TANDEM_AMX", "0")
    assert _amx_usable() is False


def test_follows_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("TANDEM_AMX", raising=False)
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    assert _amx_usable() is ("amx_tile" not in flags.split())
