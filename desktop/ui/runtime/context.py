"""The one object every page receives: settings, loaded models, history, the model library, app-wide signals.

Pages never reach for globals; they get an ``AppContext`` in their constructor (``Page(context, parent)``),
which keeps them testable on their own and lets two windows (or a test) hold separate state.

Signals (all on the GUI thread):
    settingsChanged(Settings)        the settings were saved (models folder, threads, theme …)
    libraryChanged(list)             the library was rescanned: list[LibraryModel]
    generationRate(str, float)       a pane's running generation speed, tok/s (0.0 when it ends)
    contextUsage(str, int, int)      a pane's context used / size, in tokens (size 0: unknown)
    statusMessage(str)               a short message for the status bar
and ``context.models`` (ModelManager) emits loading / loaded / loadFailed / unloaded / changed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.endpoints import EndpointStore
from desktop.core.history import HistoryStore
from desktop.core.settings import Settings, load_settings, save_settings
from desktop.engine.types import LoadOptions
from desktop.ui.runtime.model_manager import ModelManager
from desktop.ui.runtime.remote_models import RemoteCatalog
from desktop.ui.runtime.workers import run_in_thread


@dataclass(frozen=True)
class LibraryModel:
    """One model file the pickers offer. ``kind`` is "base", "instruct" or "unknown"."""

    path: str
    name: str
    kind: str = "unknown"
    broken: bool = False
    reason: str = ""
    size: int = 0
    pair: str = ""  # the path of its base/instruct sibling in the library, if any

    @property
    def file_name(self) -> str:
        return Path(self.path).name


def scan_library(models_dir: Path) -> list[LibraryModel]:
    """The installed models as ``desktop.core.library`` finds them; a broken file is listed with its reason."""
    from desktop.core.library import Library  # reads GGUF headers: imported on the scanning thread

    entries = [LibraryModel(path=str(e.path), name=e.name or e.path.stem, kind=e.kind or "unknown",
                            broken=bool(e.broken), reason=e.broken or "", size=int(e.file_size or 0),
                            pair=str(e.pair) if e.pair else "")
               for e in Library(models_dir).scan()]
    return sorted(entries, key=lambda e: e.file_name.lower())


class AppContext(QObject):
    settingsChanged = Signal(object)
    libraryChanged = Signal(list)
    generationRate = Signal(str, float)
    contextUsage = Signal(str, int, int)
    statusMessage = Signal(str)

    def __init__(self, settings: Settings | None = None, history: HistoryStore | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._settings = settings or load_settings()
        self.history = history or HistoryStore()
        self.models = ModelManager(self)
        self.remote = RemoteCatalog(self)  # the saved endpoints' models; refresh() asks them
        self._library: list[LibraryModel] = []
        self._library_scanned = False
        self._scan = None
        self._write_lock = threading.Lock()  # one settings write at a time, of the latest settings
        self._save_lock = threading.Lock()
        self._save_wanted = False
        self._saver: threading.Thread | None = None
        self._rescan_pending = False

    # --- settings --------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    def update_settings(self, **changes: Any) -> Settings:
        """Validate, save atomically and announce. Raises SettingsError (one line) for a bad value."""
        new = dataclasses.replace(self._settings, **changes).validated()
        with self._write_lock:  # the background page-state writer reads self._settings under this lock too
            save_settings(new)
            old, self._settings = self._settings, new
        if new.models_dir != old.models_dir:
            self.refresh_library()
        if new.offline != old.offline or new.endpoints != old.endpoints:
            self.remote.refresh()
        if {k for k in changes if k != "ui_state"}:
            self.settingsChanged.emit(new)
        return new

    def endpoint_store(self) -> EndpointStore:
        """The endpoints store for the ui: it writes through this context's settings, under the lock the
        background page-state writer takes, so neither write can undo the other (a store writing the file
        on its own lost a just-added endpoint when a page-state save of the older settings landed after it)."""
        return _ContextEndpointStore(self)

    def endpoints_changed(self) -> None:
        """Settings → Endpoints changed the endpoints: ask them for their models again."""
        self.remote.refresh()

    def ui_state(self, key: str) -> dict[str, Any]:
        value = self._settings.ui_state.get(key)
        return dict(value) if isinstance(value, dict) else {}

    def set_ui_state(self, key: str, value: dict[str, Any], save: bool = True) -> None:
        """Remember a page's state (JSON values only) in Settings.ui_state[key]."""
        state = dict(self._settings.ui_state)
        state[key] = value
        self._settings = dataclasses.replace(self._settings, ui_state=state)
        if save:
            self._save_later()

    def _save_later(self) -> None:
        """Page state is saved often (a picked model, a moved splitter). Its write ends in an fsync, which
        took tenths of a second on the GUI thread while a just-downloaded model was being flushed to disk:
        it goes to one background thread that writes the latest settings (shutdown() waits for it)."""
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

    def flush_settings(self) -> None:
        """Wait for a pending page-state write (at shutdown, and for tests that read the file)."""
        saver = self._saver
        if saver is not None:
            saver.join(10)

    def load_options(self) -> LoadOptions:
        """How models are loaded, from the settings (threads, GPU layers, context)."""
        s = self._settings
        return LoadOptions(n_ctx=s.default_ctx if s.default_ctx != Settings().default_ctx else None,
                           gpu_layers=s.gpu_layers_value(), threads=s.threads or None)

    # --- the model library -----------------------------------------------------------------------

    @property
    def library(self) -> list[LibraryModel]:
        return list(self._library)

    @property
    def library_scanned(self) -> bool:
        return self._library_scanned

    def models_dir(self) -> Path:
        return self._settings.resolved_models_dir()

    def refresh_library(self) -> None:
        """Rescan the models folder off the GUI thread; ``libraryChanged`` follows. Call after a
        download, import or removal."""
        if self._scan is not None:
            self._rescan_pending = True
            return
        folder = self.models_dir()
        self._scan = run_in_thread(lambda: scan_library(folder), self._on_scanned, self._on_scan_failed,
                                   name="tandem-library-scan")

    notify_library_changed = refresh_library

    def library_has_files(self) -> bool:
        """Whether the models folder (or a discovered cache) holds any model file: a folder listing on the
        calling thread, for the first start's page; ``libraryChanged`` brings the real entries."""
        from desktop.core.library import Library

        try:
            return Library(self.models_dir()).has_files()
        except OSError as exc:
            logging.getLogger("tandem").warning("could not list the models folder: %s", exc)
            return True  # unknown: let the scan decide

    def _on_scanned(self, entries: list[LibraryModel]) -> None:
        self._scan = None
        self._library = entries
        self._library_scanned = True
        self.libraryChanged.emit(list(entries))
        if self._rescan_pending:
            self._rescan_pending = False
            self.refresh_library()

    def _on_scan_failed(self, exc: BaseException) -> None:
        self._scan = None
        self._library_scanned = True
        self.statusMessage.emit(f"Could not read the models folder: {exc}")
        self.libraryChanged.emit(list(self._library))

    def library_entry(self, path: str) -> LibraryModel | None:
        for entry in self._library:
            if entry.path == path:
                return entry
        return None

    # --- shutdown --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.remote.stop()
        self.flush_settings()
        self.models.shutdown()
        self.history.close()


class _ContextEndpointStore(EndpointStore):
    """An EndpointStore whose endpoints live in the AppContext's settings (see ``endpoint_store``)."""

    def __init__(self, context: AppContext):
        super().__init__()
        self._context = context

    def _raw(self) -> dict:
        return dict(self._context.settings.endpoints)

    def _save(self, endpoints: dict) -> None:
        ctx = self._context
        with ctx._write_lock:
            new = dataclasses.replace(ctx._settings, endpoints=endpoints)
            save_settings(new)
            ctx._settings = new
