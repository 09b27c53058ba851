"""What the bench needs from the operating system: machine facts, process memory, and a noise meter.

Memory is read from ``/proc`` on Linux (RSS, and per-mapping RSS from ``smaps`` so the pages of the
memory-mapped model file can be told apart from the worker's own memory); elsewhere the figures that need
it say "not measured" rather than guess. The noise meter counts CPU time that processes other than the
bench (and its children) used during the run: on a shared 2-core machine that is what skews a median.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


def cpu_model() -> str:
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or platform.machine()


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict:
    ram = ram_bytes()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 1024**3, 1) if ram else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": loadavg(),
    }


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


# ----- process memory ---------------------------------------------------------------------------------
def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of a process (this one by default)."""
    pid = pid or os.getpid()
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if pid == os.getpid():
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024  # peak, not current: an upper bound
        except (ImportError, OSError):
            return None
    return None


@dataclass(frozen=True)
class MappedMemory:
    rss: int  # whole process
    file_rss: int  # resident pages mapped from the given file
    anon_rss: int  # anonymous resident pages (heap, KV cache, compute buffers)
    by_mapping: tuple[tuple[str, int], ...] = ()  # the largest RSS contributors: (path or [anon]/[heap], bytes)

    @property
    def beyond_file(self) -> int:
        return self.rss - self.file_rss


def mapped_memory(pid: int, file: str | os.PathLike) -> MappedMemory | None:
    """Split a process's RSS into the pages of ``file`` (the mmapped model) and everything else."""
    target = str(Path(file).resolve())
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return None
    rss = file_rss = anon = 0
    current_is_file = False
    current = "[anon]"
    per: dict[str, int] = {}
    for line in text.splitlines():
        first = line.split(None, 1)[0] if line else ""
        if "-" in first and not first.endswith(":"):  # a mapping header: "addr-addr perms off dev inode path"
            parts = line.split(None, 5)
            current = parts[5].strip() if len(parts) == 6 else "[anon]"
            current_is_file = current == target
        elif first == "Rss:":
            kb = int(line.split()[1])
            rss += kb
            per[current] = per.get(current, 0) + kb * 1024
            if current_is_file:
                file_rss += kb
        elif first == "Anonymous:":
            anon += int(line.split()[1])
    top = tuple(sorted(((k, v) for k, v in per.items() if k != target), key=lambda kv: -kv[1])[:12])
    return MappedMemory(rss * 1024, file_rss * 1024, anon * 1024, top)


# ----- noise ------------------------------------------------------------------------------------------
def _busy_ticks() -> int | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(x) for x in fields]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    return sum(values[:8]) - idle - steal


def _own_ticks() -> int:
    """CPU ticks of this process, its waited-for children, and its live descendants."""
    total = 0
    try:
        parts = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in parts[11:15])  # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return 0
    for pid in descendants(os.getpid()):
        try:
            parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(parts[11]) + int(parts[12])
        except (OSError, ValueError, IndexError):
            continue
    return total


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in entries:
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class NoiseMeter:
    """Measures how much CPU other processes took while the bench ran (Linux; None elsewhere).

    Descendants' ticks are sampled while they are alive: a child that exits between samples is
    counted through the parent's cutime/cstime when it is waited for, as subprocess and multiprocessing do.
    """

    def __init__(self) -> None:
        self._start = _busy_ticks()
        self._own_start = _own_ticks()

    def foreign_cpu_share(self, elapsed_s: float) -> float | None:
        """Average number of cores other processes kept busy (0.0 = a quiet machine)."""
        end = _busy_ticks()
        if self._start is None or end is None or elapsed_s <= 0:
            return None
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        foreign = (end - self._start) - (_own_ticks() - self._own_start)
        return max(0.0, foreign / hz / elapsed_s)
