"""What the fault tests share: one-line checks, one thread for llama.cpp, and the tallies the suite keeps as it runs, for the README's Reliability section (never typed by hand).

Each test adds what it really did (a broken file tried, a byte offset a download was dropped at, a
process killed and survived); the faults conftest prints the totals after the run and, when
``TANDEM_FAULT_COUNTS`` names a file, writes them there as JSON.
"""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()

LABELS = {
    "files": "broken model files tried",
    "truncations": "of them truncations at distinct offsets",
    "templates": "hostile chat templates rendered",
    "offsets": "download byte offsets dropped (and resumed)",
    "net_faults": "other network faults (stalls, resets, 429/5xx, bad lengths, redirects, bad names, disk full)",
    "kills": "SIGKILLs survived (workers and whole app)",
    "inputs": "hostile inputs fed to the engine, CLI and panes",
    "privacy": "privacy checks (sockets guarded, files grepped for the token)",
}


def add(kind: str, n: int = 1) -> None:
    COUNTS[kind] += n


THREADS = 1  # llama.cpp with OpenMP on an oversubscribed 2-core machine stalls; one thread in tests


def one_line(message: str) -> bool:
    """A message a person can read at a glance: one line, no traceback, not empty, not a novel."""
    return bool(message.strip()) and "\n" not in message and "Traceback" not in message and len(message) < 400
