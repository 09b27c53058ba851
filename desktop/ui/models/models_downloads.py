"""Downloads in the GUI: the hub's DownloadManager behind a Qt object (the list of rows with progress that
shows it is models_downloads_view.py).

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
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal

from desktop.ui.models.models_common import error_kind, error_text
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
