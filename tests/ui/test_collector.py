"""Garbage collection happens on the GUI thread only (desktop/ui/collector.py).

A collection in a background thread can finalize a Qt object there and deadlock PySide6 against the GUI
thread (seen in this suite). With the collector installed, cycles made in any thread are left alone by
CPython and collected by the GUI thread's timer, at CPython's own thresholds.
"""

from __future__ import annotations

import gc
import threading
import weakref

from desktop.ui.runtime.collector import MainThreadCollector, install


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def make_cycles(n: int, where: list[str]) -> None:
    for _ in range(n):
        node = Node()
        weakref.finalize(node, lambda: where.append(threading.current_thread().name))


def test_cycles_made_in_a_worker_thread_are_freed_on_the_gui_thread(qtbot):
    was_enabled = gc.isenabled()
    gc.enable()  # as in the app before install(): CPython would collect in the worker thread
    collector = MainThreadCollector(interval_ms=20)
    try:
        assert not gc.isenabled()
        where: list[str] = []
        worker = threading.Thread(target=make_cycles, args=(5000, where), name="tandem-test-worker")
        worker.start()
        worker.join()
        assert where == []  # 5000 cycles (7 thresholds' worth of allocations) and no collection in the worker
        qtbot.waitUntil(lambda: len(where) == 5000, timeout=5000)
        assert set(where) == {threading.main_thread().name}
        assert collector.collections[0] >= 1
    finally:
        collector.stop()
        collector.deleteLater()
    assert gc.isenabled()  # handed back as found
    if not was_enabled:
        gc.disable()


def test_due_generation_follows_cpython_thresholds(qtbot, monkeypatch):
    collector = MainThreadCollector(interval_ms=10_000)
    try:
        collector.thresholds = (700, 10, 10)
        for counts, due in (((700, 0, 0), None), ((701, 0, 0), 0), ((701, 11, 0), 1), ((701, 11, 11), 2),
                            ((5, 11, 11), None)):
            monkeypatch.setattr(gc, "get_count", lambda counts=counts: counts)
            assert collector.due_generation() == due, counts
        collector.thresholds = (0, 10, 10)  # gc.set_threshold(0) means "never"
        monkeypatch.setattr(gc, "get_count", lambda: (10**6, 50, 50))
        assert collector.due_generation() is None
    finally:
        collector.stop()
        collector.deleteLater()


def test_install_is_once_per_application(qapp):
    first = install(qapp)
    try:
        assert install(qapp) is first
        assert qapp.findChildren(MainThreadCollector) == [first]
        assert gc.get_freeze_count() > 0  # the start-up objects were frozen out of later collections
    finally:
        first.stop()
        first.setParent(None)
        first.deleteLater()
        gc.unfreeze()
