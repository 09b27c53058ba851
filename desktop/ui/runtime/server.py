"""The app's own OpenAI-compatible server (``desktop.serve``), serving the models the panes have loaded.

As LM Studio's does, it runs while the window is open and serves what is loaded: when a pane loads or unloads a
model, the served set follows (``ServerHandle.set_models``). It holds no lease of its own, so it never keeps a
model in memory that no pane uses; a model a person unchecks on the Server page is left out.

FastAPI and uvicorn are imported on a background thread when the server is switched on, never at the window's
cold start. ``on_request`` arrives on a server thread: the records are queued under a lock and handed to the
GUI thread in batches by a queued signal (``requestsLogged``). Where it listens (on/off, host, port) is in the
settings; its API key is in the OS keyring (``desktop.core.endpoints.keyring_*``), or, on a machine with no
keyring, kept for this session only.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core.endpoints import keyring_delete, keyring_get, keyring_set, keyring_status
from desktop.core.errors import TandemError
from desktop.core.library_files import display_name
from desktop.engine.model import Model
from desktop.ui.runtime.workers import Call, run_in_thread

if TYPE_CHECKING:
    from desktop.ui.runtime.context import AppContext

log = logging.getLogger(__name__)

KEYRING_SERVICE = "tandem-server"
KEYRING_NAME = "api-key"
STATE_KEY = "server"  # ui_state: the models a person left out (their paths)
PENDING_LIMIT = 2000  # records waiting for the GUI thread; older ones are dropped if it falls behind


_NOT_IN_ID = re.compile(r"[\s/\\?#%]")
_CLI_HINT = re.compile(r"\s*\(--[a-z-]+(?: [A-Z]+)?\)")  # "(--port)", "(--api-key-env VAR)": the CLI's words


def one_line(exc: BaseException) -> str:
    """A refusal or failure as the one line the page shows (never a traceback). The server's refusals are
    worded for ``tandem serve``; the page has fields where the CLI has flags, so the flags are left out."""
    if not isinstance(exc, TandemError):
        return f"The server could not start: {type(exc).__name__}: {exc}".splitlines()[0]
    text = _CLI_HINT.sub("", str(exc).strip()).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text[:1].upper() + text[1:]


class ServerController(QObject):
    """On/off, the served models and the request feed, for the Server page and the status bar. GUI thread
    only, apart from ``_record`` (a server thread)."""

    stateChanged = Signal()  # running / starting / stopping / url / error changed
    servedChanged = Signal()  # the loaded models, or which of them are served, changed
    requestsLogged = Signal(list)  # list[RequestRecord], oldest first, on the GUI thread
    _arrived = Signal()  # records are waiting (emitted from a server thread)

    def __init__(self, context: AppContext, parent: QObject | None = None):
        super().__init__(parent)
        self.context = context
        self.error = ""  # the last refusal or failure, one line ("" when none)
        self.busy = ""  # "starting" / "stopping" / ""
        self._handle: Any = None  # the running desktop.serve.ServerHandle
        self._started_handle: Any = None  # set by the starting thread, for a shutdown that can't wait
        self._start_call: Call | None = None
        self._stop_call: Call | None = None
        self._stop_wanted = False
        self._served: dict[str, Model] = {}  # what the page shows as served
        self._given: dict[str, Model] = {}  # what the running server was last given
        saved = context.ui_state(STATE_KEY).get("excluded", [])
        self._excluded: set[str] = {p for p in saved if isinstance(p, str)} if isinstance(saved, list) else set()
        self._session_key: str | None = None  # the key, where no OS keyring can hold it
        self._lock = threading.Lock()
        self._pending: collections.deque = collections.deque(maxlen=PENDING_LIMIT)
        self._drain_queued = False
        self._arrived.connect(self._drain, Qt.ConnectionType.QueuedConnection)
        context.models.changed.connect(self._sync)
        context.models.unloaded.connect(lambda _key: self._sync())  # before the worker is closed

    # --- state -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._handle is not None

    @property
    def url(self) -> str:
        return self._handle.url if self._handle is not None else ""

    def model_url(self, model_id: str) -> str:
        """That model's OpenAI base URL (…/v1); lm-eval's base_url is this + "/completions"."""
        return self._handle.model_url(model_id) if self._handle is not None else ""

    def candidates(self) -> list[tuple[str, str, Model]]:
        """(served id, path, model) for every loaded local model, in load order. The id is the library name
        (the file name without .gguf); a second file with the same name gets "-2". Remote models are not
        served: their prompts would leave this computer through Tandem."""
        out: list[tuple[str, str, Model]] = []
        ids: set[str] = set()
        paths: set[str] = set()
        for key, model in self.context.models.loaded_models():
            if key.remote or key.path in paths:
                continue
            entry = self.context.library_entry(key.path)
            base = entry.name if entry is not None and entry.name else display_name(Path(key.path))
            base = _NOT_IN_ID.sub("-", base) or "model"  # it sits in URLs: /models/<id>/v1
            model_id, n = base, 1
            while model_id in ids:
                n += 1
                model_id = f"{base}-{n}"
            ids.add(model_id)
            paths.add(key.path)
            out.append((model_id, key.path, model))
        return out

    def is_served(self, path: str) -> bool:
        return path not in self._excluded

    def served_ids(self) -> list[str]:
        return list(self._served)

    def set_served(self, path: str, served: bool) -> None:
        """Serve (or leave out) a loaded model; remembered across restarts by its path."""
        if served:
            self._excluded.discard(path)
        else:
            self._excluded.add(path)
        self.context.set_ui_state(STATE_KEY, {"excluded": sorted(self._excluded)})
        self._sync()

    def _wanted(self) -> dict[str, Model]:
        return {mid: model for mid, path, model in self.candidates() if path not in self._excluded}

    def _sync(self) -> None:
        """Give the server the models it should serve now (those it was last given, if unchanged)."""
        wanted = self._wanted()
        self._served = wanted
        given = self._given
        if self._handle is not None and (wanted.keys() != given.keys() or
                                         any(wanted[k] is not given[k] for k in wanted)):
            self._given = wanted
            try:
                self._handle.set_models(dict(wanted))
            except Exception as exc:  # noqa: BLE001 - shown on the page, never raised into a model signal
                log.warning("the server could not take the new models: %s", exc)
                self._set_error(one_line(exc))
        self.servedChanged.emit()

    # --- on / off --------------------------------------------------------------------------------

    def set_enabled(self, on: bool, host: str | None = None, port: int | None = None) -> bool:
        """Switch the server on (with this host and port, saved) or off; the choice is saved, so the next
        window starts it again. False with ``error`` set when the settings refuse a value."""
        changes: dict[str, Any] = {"server_enabled": on}
        if host is not None:
            changes["server_host"] = host.strip()
        if port is not None:
            changes["server_port"] = port
        if any(getattr(self.context.settings, k) != v for k, v in changes.items()):
            try:
                self.context.update_settings(**changes)
            except (TandemError, OSError) as exc:
                self._set_error(one_line(exc) if isinstance(exc, TandemError)
                                else f"Could not save the settings: {exc.strerror or exc}.")
                return False
        if on:
            self.start()
        else:
            self.stop()
        return True

    def resume(self) -> None:
        """The window opened: start the server if it was on when Tandem last closed."""
        if self.context.settings.server_enabled and not self.running and not self.busy:
            self.start()

    def start(self) -> None:
        if self._handle is not None or self.busy:
            return
        s = self.context.settings
        host, port, models = s.server_host, s.server_port, self._wanted()
        self._served = self._given = models
        self.busy, self._stop_wanted, self._started_handle = "starting", False, None
        self._set_error("")
        on_request = self._record

        def work():
            from desktop.serve import ServerConfig, ServerHandle  # FastAPI and uvicorn: only now, off the GUI

            handle = ServerHandle(dict(models), ServerConfig(host=host, port=port, api_key=self.api_key()),
                                  on_request=on_request)
            handle.start()
            self._started_handle = handle
            return handle

        self._start_call = run_in_thread(work, self._on_started, self._on_start_failed, name="tandem-server-start")

    def _on_started(self, handle: Any) -> None:
        self._start_call = None
        self.busy = ""
        self._handle = handle
        if self._stop_wanted:
            self.stop()
            return
        self._sync()  # a model loaded or unloaded while it started
        self.stateChanged.emit()

    def _on_start_failed(self, exc: BaseException) -> None:
        self._start_call = None
        self.busy = ""
        if not isinstance(exc, TandemError):
            log.warning("the server could not start", exc_info=exc)
        self._set_error(one_line(exc))

    def stop(self) -> None:
        """Stop serving (in-flight streams end with an error chunk); the port is free once ``busy`` clears."""
        if self.busy == "starting":
            self._stop_wanted = True
            return
        handle, self._handle = self._handle, None
        if handle is None:
            return
        self.busy = "stopping"
        self.stateChanged.emit()

        def stopped(_value=None) -> None:
            self.busy = ""
            self.stateChanged.emit()

        def failed(exc: BaseException) -> None:
            self.busy = ""
            self._set_error(f"The server did not stop cleanly: {exc}")

        self._stop_call = run_in_thread(handle.stop, stopped, failed, name="tandem-server-stop")

    def shutdown(self, timeout: float = 5.0) -> None:
        """The window is closing: stop now, on this thread, before the models are closed."""
        call, handle = self._start_call, self._handle
        self._handle = None
        if self._stop_call is not None:  # switched off just before: let it finish before the models close
            self._stop_call.wait(timeout)
        if handle is None and call is not None:
            call.discard()
            call.wait(timeout)
            handle = self._started_handle
        if handle is not None:
            try:
                handle.stop(timeout)
            except Exception as exc:  # noqa: BLE001 - closing must go on
                log.warning("the server did not stop cleanly: %s", exc)

    def _set_error(self, text: str) -> None:
        self.error = text
        self.stateChanged.emit()

    # --- the API key -----------------------------------------------------------------------------

    def keyring_available(self) -> tuple[bool, str]:
        return keyring_status()

    def api_key(self) -> str | None:
        """The key clients must send, or None. Any thread (the start thread reads it)."""
        try:
            stored = keyring_get(KEYRING_SERVICE, KEYRING_NAME)
        except TandemError as exc:
            log.warning("%s", exc)
            stored = None
        return stored or self._session_key

    def set_api_key(self, key: str) -> str:
        """Keep the key (the keyring, or this session only); returns where it went, in words. A running
        server takes it when it starts again. Raises TandemError (one line) when the keyring refuses."""
        key = key.strip()
        if keyring_status()[0]:
            keyring_set(KEYRING_SERVICE, KEYRING_NAME, key)
            self._session_key = None
            return "in the OS keyring"
        self._session_key = key
        return "for this session only (no OS keyring here)"

    def forget_api_key(self) -> None:
        keyring_delete(KEYRING_SERVICE, KEYRING_NAME)
        self._session_key = None

    # --- the request log -------------------------------------------------------------------------

    def _record(self, record: Any) -> None:
        """ServerHandle's on_request: a server thread. Queue it; wake the GUI thread once per batch."""
        with self._lock:
            self._pending.append(record)
            if self._drain_queued:
                return
            self._drain_queued = True
        try:
            self._arrived.emit()
        except RuntimeError:  # the window (and this object) is gone: nobody to show it to
            pass

    def _drain(self) -> None:
        with self._lock:
            records = list(self._pending)
            self._pending.clear()
            self._drain_queued = False
        if records:
            self.requestsLogged.emit(records)
