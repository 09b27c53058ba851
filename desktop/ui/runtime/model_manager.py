"""Loads models off the GUI thread and shares one loaded handle per (file, load options) between panes.

Each pane (or Compare column) holds a *lease* on the model it uses, under an owner name such as
``"completion"`` or ``"compare.base"``. Two owners that pick the same file with the same options share one
worker process. When the last lease on a model is released the model is unloaded, so memory comes back as
soon as no pane uses it; ``unload()`` ends a model at once and tells its owners.

The engine module is imported lazily, on the loading thread: the GUI's cold start never pays for it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.engine.backends import open_model, open_remote
from desktop.engine.model import Model
from desktop.engine.types import LoadOptions
from desktop.ui.runtime.remote_models import parse_ref, ref_label
from desktop.ui.runtime.workers import run_in_thread

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ModelKey:
    path: str
    options: LoadOptions

    @property
    def name(self) -> str:
        return ref_label(self.path) if self.remote else Path(self.path).name

    @property
    def remote(self) -> bool:
        """A model on a saved endpoint (``path`` is its ref, see runtime/remote_models.py)."""
        return parse_ref(self.path) is not None

    def __str__(self) -> str:
        return self.path


class ModelManager(QObject):
    """The app's loaded models. All methods are for the GUI thread; signals arrive on it."""

    loading = Signal(object)  # ModelKey
    loaded = Signal(object, object)  # ModelKey, Model
    loadFailed = Signal(object, object)  # ModelKey, exception
    unloaded = Signal(object)  # ModelKey
    changed = Signal()  # the set of loaded/loading models changed (status bar)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._handles: dict[ModelKey, Model] = {}
        self._loading: set[ModelKey] = set()
        self._leases: dict[str, ModelKey] = {}
        self._closing: list[threading.Thread] = []

    # --- leases ----------------------------------------------------------------------------------

    def acquire(self, owner: str, path: str | Path, options: LoadOptions) -> ModelKey:
        """Make ``owner`` use this model; starts loading it unless it is loaded or loading already.

        The caller listens to ``loaded``/``loadFailed`` for this key; if the model is already loaded,
        ``handle(key)`` returns it at once.
        """
        path = str(path)
        remote = parse_ref(path) is not None  # a remote model: one connection whatever the load options
        key = ModelKey(path, LoadOptions()) if remote else ModelKey(str(Path(path)), options)
        previous = self._leases.get(owner)
        self._leases[owner] = key
        if previous is not None and previous != key:
            self._maybe_unload(previous)
        if key not in self._handles and key not in self._loading:
            self._start_loading(key)
        return key

    def release(self, owner: str) -> None:
        key = self._leases.pop(owner, None)
        if key is not None:
            self._maybe_unload(key)

    def owners(self, key: ModelKey) -> list[str]:
        return [owner for owner, k in self._leases.items() if k == key]

    # --- state -----------------------------------------------------------------------------------

    def handle(self, key: ModelKey | None) -> Model | None:
        return self._handles.get(key) if key is not None else None

    def is_loading(self, key: ModelKey | None) -> bool:
        return key in self._loading

    def loaded_models(self) -> list[tuple[ModelKey, Model]]:
        return list(self._handles.items())

    def loading_models(self) -> list[ModelKey]:
        return list(self._loading)

    # --- loading / unloading ---------------------------------------------------------------------

    def _start_loading(self, key: ModelKey) -> None:
        self._loading.add(key)
        self.loading.emit(key)
        self.changed.emit()

        ref = parse_ref(key.path)

        def load():
            if ref is not None:  # a model on a saved endpoint: detection and its checks run here
                return open_remote(*ref)
            return open_model(key.path, key.options)  # the local backend is imported here, on first use

        run_in_thread(load, lambda handle: self._on_loaded(key, handle),
                      lambda exc: self._on_failed(key, exc), name=f"tandem-load-{key.name}")

    def _on_loaded(self, key: ModelKey, handle: Model) -> None:
        self._loading.discard(key)
        if not self.owners(key):  # everyone moved on while it loaded
            self._close_in_background(handle)
            self.changed.emit()
            return
        self._handles[key] = handle
        self.loaded.emit(key, handle)
        self.changed.emit()

    def _on_failed(self, key: ModelKey, exc: BaseException) -> None:
        self._loading.discard(key)
        self.loadFailed.emit(key, exc)
        self.changed.emit()

    def reload(self, key: ModelKey) -> None:
        """Load a model again after a failure (its owners keep their leases)."""
        if key not in self._handles and key not in self._loading and self.owners(key):
            self._start_loading(key)

    def _maybe_unload(self, key: ModelKey) -> None:
        if not self.owners(key):
            self.unload(key)

    def unload(self, key: ModelKey) -> None:
        """End the model's worker process now; owners get ``unloaded`` and keep no handle."""
        handle = self._handles.pop(key, None)
        if handle is None:
            return
        self.unloaded.emit(key)
        self._close_in_background(handle)
        self.changed.emit()

    def unload_all(self) -> None:
        for key in list(self._handles):
            self.unload(key)

    def _close_in_background(self, handle: Any) -> None:
        thread = threading.Thread(target=_close_quietly, args=(handle,), name="tandem-unload", daemon=True)
        self._closing = [t for t in self._closing if t.is_alive()] + [thread]
        thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """At exit: close every model, waiting a bounded time (workers also die with the app)."""
        self._leases.clear()
        self.unload_all()
        deadline = time.monotonic() + timeout
        for thread in self._closing:
            thread.join(max(0.0, deadline - time.monotonic()))


def _close_quietly(handle: Model) -> None:
    try:
        handle.close()
    except Exception as exc:  # a worker that is already gone is fine to "close"; anything else is logged
        log.warning("unloading %s: %s", handle.info.name, exc)
