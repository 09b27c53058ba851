"""Python's cyclic garbage collector, run on the GUI thread only.

CPython runs a collection in whichever thread happens to allocate past the threshold. In this app that is
often a background thread (library scan, catalog read, hub calls), and a collection there may finalize a
Qt object that was part of a cycle, e.g. a closed page whose lambdas refer back to it. PySide6 then
disconnects its signals from that thread: Qt takes its connection lock and PySide waits for the GIL inside
it, while the GUI thread holds the GIL inside a Qt call that waits for the same lock. Seen here as a hang
of the test suite: the collection ran in a "tandem-catalog" thread, stuck in QObject::disconnect, and the
GUI thread was inside QWidget.show() -> QTextDocument::contentsChange, waiting for Qt's mutex.

So automatic collection is switched off, and a timer on the GUI thread collects with CPython's own
thresholds: the same amount of collecting, at the same points in allocation, but always on this thread.
``install`` first freezes what the start-up imports made (``gc.freeze``: modules, classes, functions, which
live as long as the app): CPython's full collections skip most of them by a heuristic this timer can't see,
and without the freeze each full collection walked them all, a 40-50 ms pause of the GUI (measured by the
stall bench). Frozen, a full collection of the running app takes about 11 ms.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 250


class MainThreadCollector(QObject):
    """Owns the decision to collect while it lives; ``stop()`` hands it back to CPython."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.was_enabled = gc.isenabled()
        self.collections = [0, 0, 0]  # per generation, for tests and diagnostics
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect_if_due)
        self.timer.start()

    def due_generation(self) -> int | None:
        """The oldest generation CPython would collect now, or None."""
        t0, t1, t2 = self.thresholds
        c0, c1, c2 = gc.get_count()
        if t0 <= 0 or c0 <= t0:
            return None
        if c1 > t1:
            return 2 if c2 > t2 else 1
        return 0

    def collect_if_due(self) -> int | None:
        generation = self.due_generation()
        if generation is not None:
            gc.collect(generation)
            self.collections[generation] += 1
        return generation

    def stop(self) -> None:
        self.timer.stop()
        if self.was_enabled:
            gc.enable()


def freeze_after_start() -> None:
    """Once the main window is built: collect, then freeze what is left (the window's widgets, pages and
    their closures live as long as the app). Full collections later walk only what the app makes while it
    runs; unfrozen, the window's tens of thousands of objects made each full collection a visible pause
    while the first pages were used. Only for the app itself: tests build and drop many windows."""
    gc.collect()
    gc.freeze()


def install(app: QObject) -> MainThreadCollector:
    """Start collecting on the GUI thread for the life of ``app`` (idempotent)."""
    existing = app.findChild(MainThreadCollector)
    if existing is not None:
        return existing
    gc.collect()
    gc.freeze()
    collector = MainThreadCollector(app)
    collector.setObjectName("mainThreadCollector")
    return collector
