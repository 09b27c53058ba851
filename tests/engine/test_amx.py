"""The AMX switch: llama.cpp's extra buffer types are off where its library has AMX kernels and the CPU
reports AMX tiles (they SIGILL on this project's test VMs on every multi-token batch), unless TANDEM_AMX says
otherwise."""

from __future__ import annotations

from pathlib import Path

from desktop.engine import hardware
from desktop.engine.hardware import amx_usable as _amx_usable


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
    expected = "amx_tile" not in flags.split() or not hardware._library_has_amx_kernels()
    assert _amx_usable() is expected


def test_a_library_without_amx_kernels_keeps_extra_buffers(monkeypatch, tmp_path):
    """A build without ggml's AMX kernels (ours) keeps weight repacking even on a CPU that reports AMX."""
    lib = tmp_path / "libggml-cpu.so"
    lib.write_bytes(b"\x7fELF ... plain kernels ...")
    assert not hardware._file_contains(str(lib), hardware._AMX_MARK)
    lib.write_bytes(b"\x7fELF ... amx repack tensor ...")
    assert hardware._file_contains(str(lib), hardware._AMX_MARK)
