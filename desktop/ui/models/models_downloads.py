"""Downloads in the GUI: the hub's DownloadManager behind a Qt object, and a list of rows with progress.

The manager (desktop/hub/download.py) does all the work on its own threads and calls a listener there;
``DownloadCenter`` re-emits each event as a queued Qt signal, so rows only change on the GUI thread. The
manager is created off the GUI thread (importing huggingface_hub takes a moment), together with the list of
paused or interrupted downloads left on disk by an earlier run; requests made before it is ready wait in
a short list and go out as soon as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.fit import human_bytes
from desktop.ui.models.models_common import ERROR_COLOR, error_kind, error_text, format_eta
from desktop.ui.runtime.workers import run_in_thread

ACTIVE = ("queued", "started", "progress", "verifying")
_SPLIT = re.compile(r"^(?P<stem>.+)-00001-of-(?P<count>\d{5})\.gguf$", re.I)


def display_name(filename: str) -> str:
    """"x-00001-of-00003.gguf" -> "x.gguf (3 parts)"; other names: the file name."""
    name = Path(filename).name
    m = _SPLIT.match(name)
    return f"{m.group('stem')}.gguf ({int(m.group('count'))} parts)" if m else name


class _Relay(QObject):
    """Emitted from the manager's worker threads; Qt queues it to the GUI thread."""

    event = Signal(object)


@dataclass
class DownloadState:
    """What a row shows: the latest event of one download, flattened."""

    id: str
    repo: str
    filename: str
    kind: str = "queued"  # a DownloadEvent kind, or "interrupted" for one found on disk mid-transfer
    bytes: int = 0
    total: int | None = None
    speed: float = 0.0
    eta: float | None = None
    message: str = ""
    error_kind: str = ""
    path: str = ""

    @property
    def active(self) -> bool:
        return self.kind in ACTIVE


class DownloadCenter(QObject):
    """The page's one download manager. All methods return at once; results arrive as signals."""

    changed = Signal(object)  # DownloadState, on the GUI thread
    finished = Signal(object)  # DownloadState of a download that completed (the file is in place)
    ready = Signal()
    failed = Signal(str)  # the manager could not be started (one line)

    def __init__(self, models_dir: Callable[[], Path], parent: QObject | None = None):
        super().__init__(parent)
        self._models_dir = models_dir
        self._manager = None  # the manager for the current models folder
        self._managers: list = []  # every manager made (an older folder's may still be finishing a download)
        self._owner: dict[str, object] = {}  # download id -> the manager running it
        self._folder: Path | None = None
        self._waiting: list[tuple[str, tuple]] = []  # (method, args) asked before the manager existed
        self._states: dict[str, DownloadState] = {}
        self._starting = None
        self._relay = _Relay()
        self._relay.event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)

    # --- life ------------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        return self._manager is not None

    def start(self) -> None:
        """Create the manager for the current models folder (off the GUI thread) and list what is pending."""
        if self._starting is not None:
            return
        folder = self._models_dir()
        relay = self._relay

        def make():
            from desktop.hub.download import DownloadManager

            manager = DownloadManager(folder)
            manager.subscribe(lambda event: relay.event.emit((manager, event)))
            return manager, manager.pending()

        self._starting = run_in_thread(make, lambda result: self._on_started(folder, *result), self._on_start_failed,
                                       name="tandem-downloads-start")

    def folder_changed(self) -> None:
        """The models folder moved: new downloads go to the new one; running ones finish where they are."""
        if self._folder is not None and self._folder != self._models_dir():
            self._manager = None
            self._starting = None
            self.start()

    def _on_started(self, folder: Path, manager, pending: list) -> None:
        self._starting = None
        self._manager, self._folder = manager, folder
        self._managers.append(manager)
        for found in pending:
            self._owner[found.id] = manager
            if found.id in self._states and self._states[found.id].active:
                continue
            interrupted = found.status == "downloading"
            message = found.message or ("Interrupted when Tandem closed; resume to continue." if interrupted
                                        else "Paused; resume to continue.")
            state = DownloadState(found.id, found.repo, found.filename,
                                  "interrupted" if interrupted else ("error" if found.status == "error" else "paused"),
                                  found.bytes, found.total or None, message=message, path=str(found.target))
            self._states[found.id] = state
            self.changed.emit(state)
        waiting, self._waiting = self._waiting, []
        for method, args in waiting:
            getattr(self, method)(*args)
        self.ready.emit()

    def _on_start_failed(self, exc: BaseException) -> None:
        self._starting = None
        self.failed.emit(f"Downloads are not available: {error_text(exc)}")

    def shutdown(self) -> None:
        """Pause everything still running: the .part files stay and resume next time."""
        for manager in self._managers:
            manager.shutdown(timeout=3.0)

    # --- requests --------------------------------------------------------------------------------

    def states(self) -> list[DownloadState]:
        return list(self._states.values())

    def state(self, download_id: str) -> DownloadState | None:
        return self._states.get(download_id)

    def active_count(self) -> int:
        return sum(1 for s in self._states.values() if s.active)

    def is_busy(self, repo: str, filename: str) -> bool:
        state = self._states.get(f"{repo}:{filename}")
        return state is not None and state.active

    def download(self, repo: str, filename: str) -> str:
        """Queue ``filename`` of ``repo``; returns its id. A bad name becomes an error row, not an exception."""
        download_id = f"{repo}:{filename}"
        if self._manager is None:
            self._waiting.append(("download", (repo, filename)))
            self._show(DownloadState(download_id, repo, filename, "queued", message="Getting ready…"))
            self.start()
            return download_id
        try:
            download_id = self._manager.download(repo, filename, dest_dir=self._models_dir())
            self._owner[download_id] = self._manager
            state = self._states.get(download_id)
            if state is None or not state.active:  # shown at once; the manager's events follow
                self._show(DownloadState(download_id, repo, filename, "queued"))
            return download_id
        except Exception as exc:  # noqa: BLE001 - a full queue or a refused name: shown in its row
            self._show(DownloadState(download_id, repo, filename, "error", message=error_text(exc),
                                     error_kind=error_kind(exc)))
            return download_id

    def pause(self, download_id: str) -> None:
        self._call("pause", download_id)

    def resume(self, download_id: str) -> None:
        self._call("resume", download_id)

    def cancel(self, download_id: str) -> None:
        self._call("cancel", download_id)

    def dismiss(self, download_id: str) -> None:
        """Forget a finished, failed or cancelled row (a failed one keeps its .part for a later resume)."""
        state = self._states.pop(download_id, None)
        if state is not None:
            state.kind = "dismissed"
            self.changed.emit(state)

    def _call(self, method: str, download_id: str) -> None:
        if self._manager is None:
            self._waiting.append((method, (download_id,)))
            self.start()
            return
        try:
            getattr(self._owner.get(download_id, self._manager), method)(download_id)
        except Exception as exc:  # noqa: BLE001 - e.g. nothing left to resume: say so in the row
            state = self._states.get(download_id)
            if state is not None:
                state.kind, state.message, state.error_kind = "error", error_text(exc), error_kind(exc)
                self.changed.emit(state)

    def _show(self, state: DownloadState) -> None:
        self._states[state.id] = state
        self.changed.emit(state)

    # --- events from the manager -----------------------------------------------------------------

    def _on_event(self, item) -> None:
        manager, event = item
        self._owner[event.id] = manager
        state = self._states.get(event.id)
        if state is None:
            state = DownloadState(event.id, event.repo, event.filename)
            self._states[event.id] = state
        state.kind = event.kind
        if event.total:
            state.total = event.total
        if event.kind in ("progress", "verifying", "paused", "done") or event.bytes:
            state.bytes = event.bytes
        state.speed = event.speed if event.kind == "progress" else 0.0
        state.eta = event.eta if event.kind == "progress" else None
        if event.path:
            state.path = event.path
        if event.kind == "error":
            state.message = error_text(event.error) if event.error is not None else (event.message or "failed")
            state.error_kind = error_kind(event.error)
        else:
            state.message = event.message or ""
            state.error_kind = ""
        self.changed.emit(state)
        if event.kind == "done":
            self.finished.emit(state)


class DownloadRow(QFrame):
    """One download: name, repository, a progress bar, a status line and the buttons that apply now."""

    def __init__(self, center: DownloadCenter, state: DownloadState, on_token: Callable[[], None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("downloadRow")
        self.download_id = state.id
        self.center = center
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#downloadRow { border: 1px solid palette(mid); border-radius: 6px; }")
        self.title = QLabel(f"<b>{escape(display_name(state.filename))}</b>")
        self.title.setObjectName("downloadTitle")
        self.repo = QLabel(state.repo)
        self.repo.setObjectName("downloadRepo")
        self.repo.setStyleSheet("color: palette(placeholder-text);")
        self.bar = QProgressBar()
        self.bar.setObjectName("downloadProgress")
        self.bar.setTextVisible(True)
        self.bar.setFixedHeight(16)
        self.status = QLabel()
        self.status.setObjectName("downloadStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.pause_button = self._button("Pause", "pauseButton", lambda: center.pause(self.download_id))
        self.resume_button = self._button("Resume", "resumeButton", lambda: center.resume(self.download_id))
        self.cancel_button = self._button("Cancel", "cancelButton", lambda: center.cancel(self.download_id))
        self.token_button = self._button("Add a token…", "tokenButton", on_token)
        self.dismiss_button = self._button("Dismiss", "dismissButton", lambda: center.dismiss(self.download_id))

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.repo)
        top.addStretch(1)
        for b in (self.token_button, self.pause_button, self.resume_button, self.cancel_button, self.dismiss_button):
            top.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.update_state(state)

    def _button(self, text: str, name: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.clicked.connect(slot)
        return button

    def update_state(self, s: DownloadState) -> None:
        total = s.total or 0
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(s.bytes, total) / total))
            self.bar.setFormat(f"{100 * s.bytes / total:.0f}%")
        else:
            self.bar.setRange(0, 0 if s.kind in ("started", "progress") else 1000)
            self.bar.setValue(0)
            self.bar.setFormat("")
        amount = f"{human_bytes(s.bytes)} of {human_bytes(total)}" if total else ""
        color = ""
        if s.kind == "queued":
            text = s.message if s.message and s.message != "queued" else "Waiting for a free download slot…"
        elif s.kind == "started":
            text = f"Starting… {amount}".strip()
        elif s.kind == "progress":
            parts = [amount, f"{human_bytes(s.speed)}/s" if s.speed else "", format_eta(s.eta)]
            text = " · ".join(p for p in parts if p)
        elif s.kind == "verifying":
            text = f"Checking the sha256 checksum of {human_bytes(total)}…" if total else "Checking the checksum…"
        elif s.kind == "paused":
            text = f"Paused at {amount}; resume fetches only the rest." if total else "Paused."
        elif s.kind == "interrupted":
            text = (f"Interrupted when Tandem last closed, at {amount}; resume fetches only the rest."
                    if total else "Interrupted when Tandem last closed; resume to continue.")
        elif s.kind == "done":
            text = f"Done: verified and in your library ({human_bytes(total)})." if total else "Done."
            self.bar.setRange(0, 1000)
            self.bar.setValue(1000)
            self.bar.setFormat("100%")
        elif s.kind == "cancelled":
            text = "Cancelled; the partial download was deleted."
        else:  # error
            text = s.message or "The download failed."
            if s.bytes and s.error_kind not in ("checksum", "gated", "not-found") and "kept" not in text:
                text += f" The {human_bytes(s.bytes)} downloaded so far are kept; Retry resumes from there."
            color = ERROR_COLOR
        self.bar.setVisible(bool(total) or s.kind in ("started", "progress", "queued"))
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {color};" if color else "")
        self.status.setToolTip(text)
        running = s.kind in ACTIVE
        self.pause_button.setVisible(running and s.kind != "verifying")
        self.resume_button.setVisible(s.kind in ("paused", "interrupted", "error"))
        self.resume_button.setText("Retry" if s.kind == "error" else "Resume")
        leftover = s.kind in ("paused", "interrupted") or (s.kind == "error" and s.bytes > 0)
        self.cancel_button.setVisible(running or leftover)
        self.cancel_button.setText("Discard" if s.kind in ("paused", "interrupted", "error") else "Cancel")
        self.cancel_button.setToolTip("Stop and delete the partial download")
        self.token_button.setVisible(s.kind == "error" and s.error_kind == "gated")
        self.dismiss_button.setVisible(s.kind in ("done", "cancelled") or (s.kind == "error" and not s.bytes))


class DownloadsView(QWidget):
    """Every download this session knows about, newest first, plus the ones left from a previous run."""

    def __init__(self, center: DownloadCenter, on_token: Callable[[], None], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("downloadsView")
        self.center = center
        self.on_token = on_token
        self.rows: dict[str, DownloadRow] = {}
        self.empty = QLabel("No downloads. Pick a pair in the catalog, or a file from a Hugging Face search.")
        self.empty.setObjectName("downloadsEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: palette(placeholder-text); padding: 24px;")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setObjectName("clearFinishedButton")
        self.clear_button.clicked.connect(self.clear_finished)
        self.summary = QLabel()
        self.summary.setObjectName("downloadsSummary")

        self.list_widget = QWidget()
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.list_layout.setSpacing(6)
        self.list_layout.addWidget(self.empty)
        self.list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.list_widget)
        scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        bar = QHBoxLayout()
        bar.addWidget(self.summary, 1)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(scroll, 1)
        center.changed.connect(self.on_changed)
        self._update_summary()

    def on_changed(self, state: DownloadState) -> None:
        row = self.rows.get(state.id)
        if state.kind == "dismissed":
            if row is not None:
                self.rows.pop(state.id)
                row.setParent(None)
                row.deleteLater()
        elif row is None:
            row = DownloadRow(self.center, state, self.on_token)
            self.rows[state.id] = row
            self.list_layout.insertWidget(0, row)  # newest on top
        else:
            row.update_state(state)
        self.empty.setVisible(not self.rows)
        self._update_summary()

    def clear_finished(self) -> None:
        for state in list(self.center.states()):
            if state.kind in ("done", "cancelled"):
                self.center.dismiss(state.id)

    def _update_summary(self) -> None:
        states = self.center.states()
        active = [s for s in states if s.active]
        waiting = [s for s in states if s.kind in ("paused", "interrupted", "error")]
        parts = []
        if active:
            speed = sum(s.speed for s in active)
            parts.append(f"{len(active)} downloading" + (f" at {human_bytes(speed)}/s" if speed else ""))
        if waiting:
            parts.append(f"{len(waiting)} paused or failed")
        self.summary.setText(" · ".join(parts) if parts else "")
        self.clear_button.setVisible(any(s.kind in ("done", "cancelled") for s in states))

    def row(self, download_id: str) -> DownloadRow | None:
        return self.rows.get(download_id)
