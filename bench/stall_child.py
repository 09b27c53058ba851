"""Runs inside the GUI process for the stall figure: ``python bench/stall_child.py CONFIG_JSON REPO``.

It builds the real main window (``create_main_window``), picks the base model in the Completion pane and
the instruct model in the Chat pane through their model bars (the panes' own code path: model manager,
worker processes, ``StreamJob`` batching, token view), then starts both generating and a download through
the hub's ``DownloadManager`` (served by the bench's loopback server), restarting a pane whenever it
finishes, for ``seconds``. A precise 5 ms timer on the GUI thread measures the event loop: a tick that
comes late means the loop was busy; the longest gap is the stall a person would feel. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

TICK_MS = 5


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    from PySide6.QtCore import QObject, Qt, QTimer, Signal
    from PySide6.QtWidgets import QLabel

    from desktop.app import create_application, create_main_window
    from desktop.ui.chat.chat_pane import ChatPane
    from desktop.ui.completion.completion_pane import CompletionPane
    from desktop.ui.runtime.context import AppContext

    app = create_application(["tandem"])  # as the app starts: its GUI-thread garbage collector included
    context = AppContext()
    context.update_settings(threads=int(config["threads"]))
    window = create_main_window(context)
    window.resize(1400, 900)
    window.show()
    completion = window.findChild(CompletionPane)
    chat = window.findChild(ChatPane)
    result: dict = {"gaps_over_33ms": 0, "ticks": 0}
    out = {"done": False}

    def finish(error: str | None = None) -> None:
        if out["done"]:
            return
        out["done"] = True
        if error:
            result["error"] = error
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)

    QTimer.singleShot(int(config["timeout_s"] * 1000), lambda: finish("timed out"))

    # --- the event-loop meter ----------------------------------------------------------------------
    meter = {"last": None, "max": 0.0, "gaps": []}

    def tick() -> None:
        now = time.perf_counter()
        if meter["last"] is not None:
            gap = now - meter["last"]
            meter["gaps"].append(gap)
            meter["max"] = max(meter["max"], gap)
            if gap > 0.033:
                result["gaps_over_33ms"] += 1
        meter["last"] = now

    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(TICK_MS)
    ticker.timeout.connect(tick)

    # --- the download, reported to the GUI the way a Qt front end does (a queued signal) --------------
    class Relay(QObject):
        event = Signal(object)

    relay = Relay()
    progress_label = QLabel()
    window.statusBar().addWidget(progress_label)
    downloaded = {"bytes": 0, "kind": None}

    def on_download(event) -> None:
        downloaded["kind"] = event.kind
        done = getattr(event, "bytes", None) or getattr(event, "downloaded", None)
        if isinstance(done, int):
            downloaded["bytes"] = done
            progress_label.setText(f"Downloading… {done / 1e6:.0f} MB")

    relay.event.connect(on_download)
    manager = None

    def start_download() -> None:
        nonlocal manager
        if not config.get("download"):
            return
        from desktop.hub.download import DownloadManager

        manager = DownloadManager(config["download"]["dest"], on_event=relay.event.emit)
        manager.download(config["download"]["repo"], config["download"]["filename"])

    # --- the two streams -------------------------------------------------------------------------------
    ready = {"completion": False, "chat": False}
    phase = {"measuring": False, "started": 0.0, "runs": 0}

    tokens = {"completion": 0, "chat": 0}

    def count(pane, which: str) -> None:
        job = pane.job
        if job is not None:
            job.tokens.connect(lambda events: tokens.__setitem__(which, tokens[which] + len(events)))

    def generate_completion() -> None:
        completion.editor.setPlainText("Once upon a time " + "there was a story " * 20)
        completion.generate()
        count(completion, "completion")
        phase["runs"] += 1

    def send_chat() -> None:
        chat.send("Tell me a long story about a king and a queen.")
        count(chat, "chat")
        phase["runs"] += 1

    def keep_streaming() -> None:
        if not phase["measuring"]:
            return
        elapsed = time.perf_counter() - phase["started"]
        if elapsed >= config["seconds"]:
            ticker.stop()
            gaps = sorted(meter["gaps"])
            result.update(max_gap_ms=1000 * meter["max"], ticks=len(gaps), measured_s=elapsed,
                          p99_gap_ms=1000 * gaps[int(0.99 * (len(gaps) - 1))] if gaps else None,
                          streams_started=phase["runs"], download_bytes=downloaded["bytes"],
                          download_state=downloaded["kind"],
                          tokens=dict(tokens))
            completion.stop()
            chat.stop()
            if manager is not None:
                manager.shutdown(timeout=2)
            finish()
            return
        if not completion.is_generating():
            generate_completion()
        if not chat.is_generating():
            send_chat()

    def begin() -> None:
        phase["measuring"] = True
        phase["started"] = time.perf_counter()
        ticker.start()
        start_download()
        generate_completion()
        send_chat()
        poll = QTimer(window)
        poll.setInterval(100)
        poll.timeout.connect(keep_streaming)
        poll.start()

    def on_ready(which: str) -> None:
        ready[which] = True
        if all(ready.values()) and not phase["measuring"]:
            QTimer.singleShot(500, begin)  # let the load settle (first paint of the model bars)

    def on_failed(message: str) -> None:
        finish(f"a model did not load: {message}")

    completion.model.events.loaded.connect(lambda _e: on_ready("completion"))
    chat.model.events.loaded.connect(lambda _e: on_ready("chat"))
    completion.model.events.failed.connect(lambda e: on_failed(e.value))
    chat.model.events.failed.connect(lambda e: on_failed(e.value))
    completion.model_bar.select_path(config["base"])
    chat.model_bar.select_path(config["instruct"])
    app.exec()


if __name__ == "__main__":
    main()
