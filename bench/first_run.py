"""The first-run path in the real window, step by step, for the stall figure and the end-to-end test.

Empty library → Models page → "Download SmolLM2 135M (base + instruct)" (the welcome card, or the pair's
catalog row) → both files land in the library → Compare → the World Cup preset → Run both → both outputs
scored under the other model (the analysis). The files come from a loopback hub (``hub_server.HubFileServer``
with HF_ENDPOINT pointing at it) that serves two real GGUF files under the catalog's names: Gemma 3 270M
base as the pair's base file, SmolLM2-135M-Instruct as its instruct file.

``FirstRun`` drives an already-built main window with a polling timer (the app's own code does the work; this
only clicks and waits), and ``StallMeter`` times the GUI thread: a precise 5 ms timer whose late ticks are
the stalls a person feels, each charged to the step that was running. Both run inside the GUI process.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

FAMILY = "smollm2-135m"
TICK_MS = 5
STEPS = ("window", "models page", "download", "compare opens", "run", "analysis")


def pair_names(family_id: str = FAMILY) -> tuple[tuple[str, str], tuple[str, str]]:
    """(repo, file) of the catalog pair's base and instruct files at its default quant."""
    from desktop.core.catalog import load_catalog
    from desktop.ui.models.models_catalog import pair_files

    base, instruct = pair_files(load_catalog().get(family_id), None)
    return (base.repo, base.file), (instruct.repo, instruct.file)


def served_files(base: Path, instruct: Path, family_id: str = FAMILY) -> dict[tuple[str, str], Path]:
    """The hub names the two real files are served under."""
    base_name, instruct_name = pair_names(family_id)
    return {base_name: Path(base), instruct_name: Path(instruct)}


class StallMeter:
    """Gaps between ticks of a precise 5 ms timer on the GUI thread, the longest per step."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.step = "window"
        self.last: float | None = None
        self.gaps: list[float] = []
        self.worst: dict[str, float] = {}
        self.worst_cpu: dict[str, float] = {}
        self.last_cpu = 0.0
        self.over_33 = 0
        self.long_gaps: list[tuple[float, float, str]] = []  # (start, end, step) of each gap over 20 ms
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

        self.others: dict[str, dict[str, int]] = {}  # step -> other threads' innermost app frame -> samples
        self.stacks: dict[str, dict[str, int]] = {}  # step -> "frame <- frame ..." -> samples (watchdog)
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, watchdog: bool = False) -> None:
        """``watchdog``: a thread samples the GUI thread's Python stack whenever a tick is 25 ms late, to
        find what a stall is made of (frames in Qt's C++ show as the event loop itself)."""
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()
        if watchdog:
            self._watch = threading.Thread(target=self._watchdog, args=(threading.get_ident(),), daemon=True)
            self._watch.start()

    def stop(self) -> None:
        self.timer.stop()
        self._stop.set()

    def _watchdog(self, gui_thread: int) -> None:
        import traceback

        while not self._stop.wait(0.005):
            last = self.last
            if last is None or time.perf_counter() - last < 0.025:
                continue
            frames = sys._current_frames()
            frame = frames.get(gui_thread)
            if frame is None:
                continue
            for ident, other in frames.items():  # what our other threads run meanwhile (GIL holders?)
                if ident in (gui_thread, threading.get_ident()):
                    continue
                mine = [f"{Path(fs.filename).stem}.{fs.name}:{fs.lineno}" for fs in traceback.extract_stack(other)
                        if "/desktop/" in fs.filename]
                if mine:
                    bucket = self.others.setdefault(self.step, {})
                    bucket[mine[-1]] = bucket.get(mine[-1], 0) + 1
            own = [f"{Path(fs.filename).stem}.{fs.name}:{fs.lineno}" for fs in traceback.extract_stack(frame)
                   if "/desktop/" in fs.filename or "/bench/" in fs.filename or "PySide6" in fs.filename]
            key = " <- ".join(reversed(own[-4:]))
            bucket = self.stacks.setdefault(self.step, {})
            bucket[key] = bucket.get(key, 0) + 1

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if self.last is not None:
            gap = now - self.last
            self.gaps.append(gap)
            if gap > self.worst.get(self.step, 0.0):
                self.worst[self.step] = gap
            if gap > 0.033:
                self.over_33 += 1
            if gap > 0.020:
                self.long_gaps.append((self.last, now, self.step))
            busy = cpu - self.last_cpu  # the GUI thread's own CPU time in the gap: the app's work, not the
            if busy > self.worst_cpu.get(self.step, 0.0):  # time other processes kept it off the cores
                self.worst_cpu[self.step] = busy
        self.last, self.last_cpu = now, cpu

    def summary(self) -> dict:
        gaps = sorted(self.gaps)
        return {"max_gap_ms": 1000 * max(gaps, default=0.0),
                "p99_gap_ms": 1000 * gaps[int(0.99 * (len(gaps) - 1))] if gaps else None,
                "gaps_over_33ms": self.over_33, "ticks": len(gaps),
                "steps_max_gap_ms": {k: round(1000 * v, 1) for k, v in self.worst.items()},
                "max_gap_cpu_ms": 1000 * max(self.worst_cpu.values(), default=0.0),
                "steps_max_gap_cpu_ms": {k: round(1000 * v, 1) for k, v in self.worst_cpu.items()},
                "long_gaps": [(round(a, 4), round(b, 4), step) for a, b, step in self.long_gaps],
                "stall_stacks": {step: sorted(b.items(), key=lambda kv: -kv[1])[:8] for step, b in self.stacks.items()},
                "stall_other_threads": {step: sorted(b.items(), key=lambda kv: -kv[1])[:8]
                                        for step, b in self.others.items()}}


class FirstRun:
    """Walks ``window`` through the first-run path; ``done(result)`` is called once, at the end or on failure.

    ``on_step(name)`` is told when each step starts (the meter charges gaps to it). The result holds the
    seconds each step took, the two outputs and the analysis line, or ``error``.
    """

    def __init__(self, window, done: Callable[[dict], None], on_step: Callable[[str], None] = lambda s: None,
                 family_id: str = FAMILY, timeout_s: float = 600.0, use_card: bool = True):
        from PySide6.QtCore import QTimer

        from desktop.ui.compare.compare_pane import ComparePane
        from desktop.ui.models.models_page import ModelsPage

        self.window = window
        self.page = window.findChild(ModelsPage)
        self.compare = window.findChild(ComparePane)
        self.done, self.on_step = done, on_step
        self.family_id, self.use_card = family_id, use_card
        self.deadline = time.perf_counter() + timeout_s
        self.result: dict = {"steps_s": {}}
        self.step = ""
        self.began = 0.0
        self.finished = False
        self.t0 = time.perf_counter()
        self.verbose = bool(os.environ.get("TANDEM_FIRST_RUN_VERBOSE"))
        self.poll = QTimer()
        self.poll.setInterval(50)
        self.poll.timeout.connect(self._advance)

    def start(self) -> None:
        self._enter("models page")
        self.poll.start()

    def _enter(self, step: str) -> None:
        now = time.perf_counter()
        if self.step:
            self.result["steps_s"][self.step] = round(now - self.began, 2)
        self.step, self.began = step, now
        self.on_step(step)
        if self.verbose:
            print(f"first run: {step} at {now - self.t0:.1f} s", file=sys.stderr, flush=True)

    def _finish(self, error: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self.poll.stop()
        if error:
            self.result["error"] = f"{self.step}: {error}"
        elif self.step:
            self.result["steps_s"][self.step] = round(time.perf_counter() - self.began, 2)
        self.done(self.result)

    def _library_has_pair(self) -> bool:
        names = {n for _repo, n in pair_names(self.family_id)}
        return names <= {e.file_name for e in self.window.context.library if not e.broken}

    def _advance(self) -> None:  # noqa: C901 - one branch per step, in order
        if time.perf_counter() > self.deadline:
            library = [(e.file_name, e.kind, e.broken) for e in self.window.context.library]
            self._finish(f"timed out after {self.result['steps_s']}; library {library}")
            return
        page, compare = self.page, self.compare
        if self.step == "models page":
            # The card is read before it is clicked: its verdict is final once the hardware probe (a worker
            # process, ~1 s of CPU) has answered; a person doesn't click within the first half second.
            if page.catalog is None or page.memory is None or page.library_empty is None \
                    or not page.center.is_ready or not page.hardware_known:
                return
            card = page.welcome
            if self.use_card and card.isVisible() and page.smallest is not None and page.smallest.id == self.family_id:
                if not card.button.isEnabled():
                    return
                card.button.click()
            else:
                button = page.catalog_view.action_button(self.family_id)
                if not button.isEnabled():
                    return
                button.click()
            self._enter("download")
        elif self.step == "download":
            errors = [s.message for s in page.center.states() if s.kind == "error"]
            if errors:
                self._finish(f"download failed: {errors[0]}")
            elif self._library_has_pair():
                self.window.show_page("compare")
                self._enter("compare opens")
        elif self.step == "compare opens":
            models = [compare.model[s] for s in ("base", "instruct")]
            failed = [m.error for m in models if m.error]
            if failed:
                self._finish(f"a model did not load: {failed[0]}")
            elif all(m.handle is not None for m in models):
                self._enter("run")
                compare.apply_preset("worldcup")
                compare.run()
        elif self.step == "run":
            if compare.session.ended and not compare.is_running():
                self.result["outputs"] = {s: compare.columns[s].text() for s in ("base", "instruct")}
                self._enter("analysis")
        elif self.step == "analysis":
            if compare.session.analysis_done:
                self.result["analysis"] = compare.widgets.analysis_label.text()
                self._finish()
