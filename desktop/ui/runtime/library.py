"""The installed models as the pickers list them: scanned off the GUI thread, one scan at a time.

``LibraryStore`` holds the last scan of the models folder and says when a new one is in (``changed``); the
folder itself comes from a callable, so the store follows a change of settings without knowing them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.ui.runtime.workers import CoalescingRefresh


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


class LibraryStore(QObject):
    """The library's entries. ``changed(list[LibraryModel])`` after every scan (on a failure, the entries of
    the scan before, with ``failed(str)`` first); both arrive on the GUI thread."""

    changed = Signal(list)
    failed = Signal(str)

    def __init__(self, models_dir: Callable[[], Path], parent: QObject | None = None):
        super().__init__(parent)
        self._models_dir = models_dir
        self._entries: list[LibraryModel] = []
        self.scanned = False
        self._scan = CoalescingRefresh(self._start, self._on_scanned, self._on_failed, name="tandem-library-scan")

    @property
    def entries(self) -> list[LibraryModel]:
        return list(self._entries)

    def refresh(self) -> None:
        """Rescan the models folder off the GUI thread; ``changed`` follows."""
        self._scan.refresh()

    def _start(self) -> Callable[[], list[LibraryModel]]:
        folder = self._models_dir()
        return lambda: scan_library(folder)

    def _on_scanned(self, entries: list[LibraryModel]) -> None:
        self._entries = entries
        self.scanned = True
        self.changed.emit(list(entries))

    def _on_failed(self, exc: BaseException) -> None:
        self.scanned = True
        self.failed.emit(f"Could not read the models folder: {exc}")
        self.changed.emit(list(self._entries))

    def has_files(self) -> bool:
        """Whether the models folder (or a discovered cache) holds any model file: a folder listing on the
        calling thread, for the first start's page; ``changed`` brings the real entries."""
        from desktop.core.library import Library

        try:
            return Library(self._models_dir()).has_files()
        except OSError as exc:
            logging.getLogger("tandem").warning("could not list the models folder: %s", exc)
            return True  # unknown: let the scan decide

    def entry(self, path: str) -> LibraryModel | None:
        return next((e for e in self._entries if e.path == path), None)

    def stop(self) -> None:
        self._scan.stop()
