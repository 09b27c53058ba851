"""The one object every page receives: it wires the settings, the loaded models, history, the model library
and the endpoints' models together, and carries the app-wide signals.

Pages never reach for globals; they get an ``AppContext`` in their constructor (``Page(context, parent)``),
which keeps them testable on their own and lets two windows (or a test) hold separate state. The state
itself lives in the stores it holds: ``SettingsStore`` (settings_store.py), ``LibraryStore`` (library.py),
``ModelManager`` (model_manager.py), ``RemoteCatalog`` (remote_models.py) and ``HistoryStore``; the methods
here are the panes' short names for them and the reactions one store's change needs from another.

Signals (all on the GUI thread):
    settingsChanged(Settings)        the settings were saved (models folder, threads, theme …)
    libraryChanged(list)             the library was rescanned: list[LibraryModel]
    generationRate(str, float)       a pane's running generation speed, tok/s (0.0 when it ends)
    contextUsage(str, int, int)      a pane's context used / size, in tokens (size 0: unknown)
    statusMessage(str)               a short message for the status bar
and ``context.models`` (ModelManager) emits loading / loaded / loadFailed / unloaded / changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.endpoints import EndpointStore
from desktop.core.history import HistoryStore
from desktop.core.settings import Settings
from desktop.engine.types import LoadOptions
from desktop.ui.runtime.library import LibraryModel, LibraryStore, scan_library
from desktop.ui.runtime.model_manager import ModelManager
from desktop.ui.runtime.remote_models import RemoteCatalog
from desktop.ui.runtime.settings_store import SettingsStore

__all__ = ["AppContext", "LibraryModel", "scan_library"]


class AppContext(QObject):
    settingsChanged = Signal(object)
    libraryChanged = Signal(list)
    generationRate = Signal(str, float)
    contextUsage = Signal(str, int, int)
    statusMessage = Signal(str)

    def __init__(self, settings: Settings | None = None, history: HistoryStore | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.store = SettingsStore(settings)
        self.history = history or HistoryStore()
        self.models = ModelManager(self)
        self.remote = RemoteCatalog(self)  # the saved endpoints' models; refresh() asks them
        self.library_store = LibraryStore(self.models_dir, self)
        self.library_store.changed.connect(self.libraryChanged)
        self.library_store.failed.connect(self.statusMessage)

    # --- settings --------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.store.settings

    def update_settings(self, **changes: Any) -> Settings:
        """Validate, save atomically and announce; a new models folder is rescanned and a change of offline
        mode or endpoints asks the endpoints again. Raises SettingsError (one line) for a bad value."""
        old, new = self.store.update(**changes)
        if new.models_dir != old.models_dir:
            self.refresh_library()
        if new.offline != old.offline or new.endpoints != old.endpoints:
            self.remote.refresh()
        if {k for k in changes if k != "ui_state"}:
            self.settingsChanged.emit(new)
        return new

    def endpoint_store(self) -> EndpointStore:
        """The endpoints store for the ui: it writes through the settings store, under its lock."""
        return self.store.endpoint_store()

    def endpoints_changed(self) -> None:
        """Settings → Endpoints changed the endpoints: ask them for their models again."""
        self.remote.refresh()

    def ui_state(self, key: str) -> dict[str, Any]:
        return self.store.ui_state(key)

    def set_ui_state(self, key: str, value: dict[str, Any], save: bool = True) -> None:
        """Remember a page's state (JSON values only) in Settings.ui_state[key]."""
        self.store.set_ui_state(key, value, save)

    def flush_settings(self) -> None:
        """Wait for a pending page-state write (at shutdown, and for tests that read the file)."""
        self.store.flush()

    def load_options(self) -> LoadOptions:
        """How models are loaded, from the settings (threads, GPU layers, context)."""
        s = self.settings
        return LoadOptions(n_ctx=s.default_ctx if s.default_ctx != Settings().default_ctx else None,
                           gpu_layers=s.gpu_layers_value(), threads=s.threads or None)

    # --- the model library -----------------------------------------------------------------------

    @property
    def library(self) -> list[LibraryModel]:
        return self.library_store.entries

    @property
    def library_scanned(self) -> bool:
        return self.library_store.scanned

    def models_dir(self) -> Path:
        return self.settings.resolved_models_dir()

    def refresh_library(self) -> None:
        """Rescan the models folder off the GUI thread; ``libraryChanged`` follows. Call after a
        download, import or removal."""
        self.library_store.refresh()

    notify_library_changed = refresh_library

    def library_has_files(self) -> bool:
        """Whether the models folder holds any model file (a quick listing, for the first start's page)."""
        return self.library_store.has_files()

    def library_entry(self, path: str) -> LibraryModel | None:
        return self.library_store.entry(path)

    # --- shutdown --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.remote.stop()
        self.library_store.stop()
        self.flush_settings()
        self.models.shutdown()
        self.history.close()
