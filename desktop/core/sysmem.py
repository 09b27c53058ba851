"""How much memory this machine has free, in pure Python, for the fit estimate.

Linux: MemAvailable from /proc/meminfo (what the kernel itself says can be allocated without swapping).
macOS: free + inactive + purgeable + speculative pages from ``vm_stat`` (inactive pages are reclaimed
on demand, so counting only "free" would call every model too big). Windows: GlobalMemoryStatusEx.
Any failure returns None: the caller then says "unknown" instead of guessing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryInfo:
    total: int | None
    available: int | None


def _linux(meminfo: str = "/proc/meminfo") -> MemoryInfo:
    values: dict[str, int] = {}
    with open(meminfo, encoding="ascii", errors="replace") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024  # kB
    available = values.get("MemAvailable")
    if available is None and "MemFree" in values:  # kernels before 3.14
        available = values["MemFree"] + values.get("Cached", 0) + values.get("Buffers", 0)
    return MemoryInfo(values.get("MemTotal"), available)


def _macos() -> MemoryInfo:
    total = None
    out = subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, timeout=5)
    if out.returncode == 0 and out.stdout.strip().isdigit():
        total = int(out.stdout.strip())
    out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5)
    page = re.search(r"page size of (\d+) bytes", out.stdout)
    size = int(page.group(1)) if page else 4096
    pages = {m.group(1): int(m.group(2)) for m in re.finditer(r"^Pages ([\w ]+):\s+(\d+)\.", out.stdout, re.M)}
    free = sum(pages.get(k, 0) for k in ("free", "inactive", "purgeable", "speculative"))
    return MemoryInfo(total, free * size if pages else None)


def _windows() -> MemoryInfo:
    import ctypes

    class MEMORYSTATUSEX(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = MEMORYSTATUSEX()
    status.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
        return MemoryInfo(None, None)
    return MemoryInfo(int(status.ullTotalPhys), int(status.ullAvailPhys))


def memory_info() -> MemoryInfo:
    """Total and available RAM in bytes (None where the platform would not say)."""
    try:
        if sys.platform.startswith("linux"):
            return _linux()
        if sys.platform == "darwin":
            return _macos()
        if os.name == "nt":
            return _windows()
    except (OSError, ValueError, subprocess.SubprocessError, AttributeError):
        pass
    return MemoryInfo(None, None)


def free_ram() -> int | None:
    return memory_info().available


def total_ram() -> int | None:
    return memory_info().total
