"""Runs inside the GUI process for the first-run stall figure: ``python bench/firstrun_child.py CONFIG REPO``.

The real app (``create_application``, ``create_main_window``) on an empty TANDEM_HOME, HF_ENDPOINT at the
bench's loopback hub; ``bench.first_run.FirstRun`` clicks through download → library → Compare → World Cup →
Run both → analysis while ``StallMeter`` times the GUI thread from the window's first paint. Prints one
JSON line: the meter's summary, the longest gap per step, each step's seconds, the outputs.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    from PySide6.QtCore import QEvent, QObject, QTimer

    from bench.first_run import FirstRun, StallMeter
    from desktop.app import create_application, create_main_window
    from desktop.ui.runtime.context import AppContext

    app = create_application(["tandem"])  # as the app starts: its GUI-thread garbage collector included
    if os.environ.get("TANDEM_BENCH_SWITCH_INTERVAL"):  # A/B of the app's GIL switch interval
        sys.setswitchinterval(float(os.environ["TANDEM_BENCH_SWITCH_INTERVAL"]))
    meter = StallMeter()
    context = AppContext()
    context.update_settings(threads=int(config["threads"]))
    window = create_main_window(context)
    from desktop.ui.runtime import collector

    collector.freeze_after_start()  # as desktop.app.main does before the window shows
    window.resize(1400, 900)

    class FirstPaint(QObject):
        """Starts the meter once the window's first paint has been handled, as ``gui_probe`` ends the cold
        start there: the window is on screen from then on, and a late tick is a stall a person can feel."""

        def __init__(self) -> None:
            super().__init__()
            self.shown_at = time.perf_counter()

        def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint and obj is window:
                app.removeEventFilter(self)
                QTimer.singleShot(0, self.begin)  # runs once this paint has been handled
            return False

        def begin(self, painted: bool = True) -> None:
            if meter.last is not None:  # started already
                return
            first_paint_ms[0] = 1000 * (time.perf_counter() - self.shown_at) if painted else None
            meter.start(watchdog=bool(os.environ.get("TANDEM_STALL_STACKS")))

    first_paint_ms = [None]
    first_paint = FirstPaint()
    app.installEventFilter(first_paint)
    window.show()
    QTimer.singleShot(5000, lambda: first_paint.begin(painted=False))  # no paint seen: time from here anyway

    def done(result: dict) -> None:
        meter.stop()
        result.update(meter.summary())
        result["first_paint_ms"] = first_paint_ms[0]  # show to the first paint handled: the cold start's end
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)

    def on_step(step: str) -> None:
        meter.step = step

    run = FirstRun(window, done, on_step, timeout_s=float(config["timeout_s"]))
    QTimer.singleShot(0, run.start)
    app.exec()


if __name__ == "__main__":
    main()
