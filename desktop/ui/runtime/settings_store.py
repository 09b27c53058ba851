"""The app's settings in memory and on disk, with the one lock every write takes.

Two writers share the settings file: a change the user saves (Settings, the endpoints dialog) and the
page-state saver, which writes often (a picked model, a moved splitter) from a background thread. Both go
through this store and its lock, so neither can write an older copy over the other's change (a store that
wrote the file on its own lost a just-added endpoint when a page-state save of older settings landed after it).
Qt-free: the ``AppContext`` announces changes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from desktop.core.endpoints import EndpointStore
from desktop.core.settings import Settings, load_settings, save_settings


class SettingsStore:
    """The current ``Settings``: ``update()`` validates and saves at once; page state is saved later, off the
    calling thread (its write ends in an fsync that took tenths of a second on the GUI thread while a
    just-downloaded model was being flushed to disk). ``flush()`` waits for that write."""

    def __init__(self, settings: Settings | None = None):
        self._settings = settings or load_settings()
        self._write_lock = threading.Lock()  # one settings write at a time, of the latest settings
        self._save_lock = threading.Lock()
        self._save_wanted = False
        self._saver: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    def update(self, **changes: Any) -> tuple[Settings, Settings]:
        """Validate, save atomically, and return (old, new). Raises SettingsError (one line) for a bad value."""
        with self._write_lock:
            new = dataclasses.replace(self._settings, **changes).validated()
            save_settings(new)
            old, self._settings = self._settings, new
        return old, new

    def ui_state(self, key: str) -> dict[str, Any]:
        value = self._settings.ui_state.get(key)
        return dict(value) if isinstance(value, dict) else {}

    def set_ui_state(self, key: str, value: dict[str, Any], save: bool = True) -> None:
        """Remember a page's state (JSON values only) in Settings.ui_state[key]; written in the background."""
        # No lock: the saver only reads the reference, and taking the lock here would wait out its fsync.
        self._settings = dataclasses.replace(self._settings, ui_state={**self._settings.ui_state, key: value})
        if save:
            self._save_later()

    def _save_later(self) -> None:
        with self._save_lock:
            self._save_wanted = True
            if self._saver is not None:
                return
            self._saver = threading.Thread(target=self._save_loop, name="tandem-settings-save", daemon=True)
            self._saver.start()

    def _save_loop(self) -> None:
        while True:
            with self._save_lock:
                if not self._save_wanted:
                    self._saver = None
                    return
                self._save_wanted = False
            try:
                with self._write_lock:
                    save_settings(self._settings)
            except Exception:  # noqa: BLE001 - an unwritable settings file must not break the app; logged
                logging.getLogger("tandem").warning("could not save the page state", exc_info=True)

    def flush(self) -> None:
        """Wait for a pending page-state write (at shutdown, and for tests that read the file)."""
        saver = self._saver
        if saver is not None:
            saver.join(10)

    def endpoint_store(self) -> EndpointStore:
        """An ``EndpointStore`` that reads and writes the endpoints through this store (and its lock)."""
        return _StoreEndpoints(self)


class _StoreEndpoints(EndpointStore):
    """An EndpointStore whose endpoints live in a ``SettingsStore`` (EndpointStore's two storage hooks)."""

    def __init__(self, store: SettingsStore):
        super().__init__()
        self._store = store

    def _raw(self) -> dict:
        return dict(self._store.settings.endpoints)

    def _save(self, endpoints: dict) -> None:
        self._store.update(endpoints=endpoints)
