"""Runs inside a fresh Python process to time the app's start-up: ``python bench/gui_probe.py T0``.

It starts the GUI exactly as the ``tandem`` command does (``desktop.cli.main([])``), with one change
that costs nothing: ``QApplication`` is swapped for a subclass that watches for the first paint of a
top-level window. When that paint has been handled it records the wall-clock time (the parent passes its
own start time ``T0``, taken just before it spawned this process, so Python's own start-up counts), the
process's RSS and whether ``llama_cpp`` / ``huggingface_hub`` were imported on the way. It waits
``SETTLE_S`` more with the window idle (no model loaded) to read the RSS again, prints one JSON line and
exits at once.

Only the standard library and PySide6 are imported before the app's own code, and PySide6 would be
imported by the app anyway, so the probe adds nothing to what it measures.
"""

from __future__ import annotations

import json
import os
import sys
import time

SETTLE_S = 1.5


def _rss() -> int | None:
    try:
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


def main() -> None:
    t0 = float(sys.argv[1])
    repo = sys.argv[2] if len(sys.argv) > 2 else None
    if repo:
        sys.path.insert(0, repo)
    sys.argv = ["tandem"]
    from PySide6 import QtCore, QtWidgets

    result: dict = {"t0": t0}

    def finish() -> None:
        result["rss_settled"] = _rss()
        result["modules_settled"] = {m: m in sys.modules for m in ("llama_cpp", "huggingface_hub")}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)

    class ProbeApp(QtWidgets.QApplication):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            result["t_qapp"] = time.time() - t0
            self._painted = False
            self.installEventFilter(self)
            QtCore.QTimer.singleShot(60_000, finish)  # never hang the bench if no window ever paints

        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if (not self._painted and event.type() == QtCore.QEvent.Type.Paint
                    and isinstance(obj, QtWidgets.QWidget) and obj.isWindow() and obj.isVisible()):
                self._painted = True
                QtCore.QTimer.singleShot(0, self._shown)  # runs once this paint has been handled
            return False

        def _shown(self) -> None:
            result["t_shown"] = time.time() - t0
            result["rss_shown"] = _rss()
            result["modules_shown"] = {m: m in sys.modules for m in ("llama_cpp", "huggingface_hub")}
            top = [w for w in QtWidgets.QApplication.topLevelWidgets() if w.isVisible()]
            result["window"] = type(top[0]).__name__ if top else None
            QtCore.QTimer.singleShot(int(SETTLE_S * 1000), finish)

    QtWidgets.QApplication = ProbeApp

    from desktop.cli import main as tandem_main

    tandem_main([])
    result.setdefault("error", "the app returned without showing a window")
    finish()


if __name__ == "__main__":
    main()
