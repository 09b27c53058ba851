"""The fault-injection suite's shared pieces: its tallies, the fake hub (reused from tests/hub), and the
tiny models written once per session. Every llama.cpp run uses one thread (2-core CI machines)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for folder in (_HERE, _HERE.parent / "hub"):  # faults_* helpers; the hub tests' FakeHub (not forked)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import faults_common  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    counts = dict(faults_common.COUNTS)
    if not counts:
        return
    terminalreporter.write_sep("-", "fault-injection tallies")
    for key, label in faults_common.LABELS.items():
        if key in counts:
            terminalreporter.write_line(f"{counts[key]:6d}  {label}")
    target = os.environ.get("TANDEM_FAULT_COUNTS")
    if target:
        Path(target).write_text(json.dumps(counts, indent=1, sort_keys=True), encoding="utf-8")


@pytest.fixture
def fake_hub(monkeypatch):
    """A loopback hub (tests/hub/fakehub.py) with HF_ENDPOINT pointed at it; repos are added per test."""
    from fakehub import FakeHub

    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    yield hub
    hub.stop()

