"""The history sidebar of a pane: its saved items (chats, documents or compare runs), newest first.

Search filters titles and contents as you type; the context menu renames, deletes and exports (Markdown or
JSON); Import reads a JSON export back. Each method that would open a dialog also takes its answer as an
argument, so tests and scripts can drive it without one.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import export
from desktop.core.errors import HistoryError
from desktop.core.history import HistoryItem, HistoryStore, Kind

_NOUN = {"chat": "chat", "document": "document", "compare": "run"}


def when(ts: float) -> str:
    """'14:03', 'Yesterday', 'Mon', '3 Mar 2025': how old an item is, at a glance."""
    now = time.localtime()
    t = time.localtime(ts)
    if t.tm_year == now.tm_year and t.tm_yday == now.tm_yday:
        return time.strftime("%H:%M", t)
    days = (time.time() - ts) / 86400
    if days < 2 and t.tm_yday == (now.tm_yday - 1):
        return "Yesterday"
    if days < 7:
        return time.strftime("%a", t)
    return f"{t.tm_mday} {time.strftime('%b %Y', t)}"


class HistorySidebar(QWidget):
    opened = Signal(int)  # item id
    newRequested = Signal()
    deleted = Signal(int)
    renamed = Signal(int, str)
    imported = Signal(object)  # HistoryItem
    message = Signal(str)  # feedback for the pane (an error, "exported to …")

    def __init__(self, store: HistoryStore, kind: Kind, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("historySidebar")
        self.store = store
        self.kind = kind
        self.current_id: int | None = None

        noun = _NOUN[kind]
        self.new_button = QPushButton(f"New {noun}")
        self.new_button.setObjectName("newButton")
        self.new_button.setToolTip(f"Start a new {noun} (Ctrl+N)")
        self.new_button.clicked.connect(self.newRequested)
        self.import_button = QPushButton("Import…")
        self.import_button.setObjectName("importButton")
        self.import_button.setToolTip("Import a chat or document exported from Tandem as JSON")
        self.import_button.clicked.connect(lambda: self.import_file())
        self.search = QLineEdit()
        self.search.setObjectName("historySearch")
        self.search.setPlaceholderText("Search history")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(self._search_timer.start)
        self.list = QListWidget()
        self.list.setObjectName("historyList")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setWordWrap(False)
        self.list.setSpacing(1)
        self.empty = QLabel()
        self.empty.setObjectName("historyEmpty")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.empty.setStyleSheet("color: palette(placeholder-text); padding: 12px;")

        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button, 1)
        buttons.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        # at least as wide as its two buttons need: a fixed 160 px cut "New document" to "New documen"
        self.setMinimumWidth(max(160, buttons.minimumSize().width() + 12))
        self.refresh()

    # --- listing ---------------------------------------------------------------------------------

    def items(self) -> list[HistoryItem]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def refresh(self) -> None:
        query = self.search.text()
        try:
            rows = self.store.list_items(self.kind, query)
        except HistoryError as exc:
            self.message.emit(str(exc))
            rows = []
        self.list.blockSignals(True)
        self.list.clear()
        for row in rows:
            item = QListWidgetItem(f"{row.title}\n{when(row.updated_at)}")
            item.setData(Qt.ItemDataRole.UserRole, row)
            item.setToolTip(row.preview or row.title)
            self.list.addItem(item)
            if row.id == self.current_id:
                item.setSelected(True)
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        noun = _NOUN[self.kind]
        self.empty.setText(f"No {noun}s match “{query}”." if query else f"Your {noun}s will appear here.")
        self.empty.setVisible(not rows)

    def set_current(self, item_id: int | None) -> None:
        self.current_id = item_id
        self.refresh()

    def _activated(self, item: QListWidgetItem) -> None:
        row: HistoryItem = item.data(Qt.ItemDataRole.UserRole)
        if row.id != self.current_id:
            self.opened.emit(row.id)

    def _row_at(self, pos: QPoint) -> HistoryItem | None:
        item = self.list.itemAt(pos)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _context_menu(self, pos: QPoint) -> None:
        row = self._row_at(pos)
        if row is None:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.opened.emit(row.id))
        menu.addAction("Rename…", lambda: self.rename_item(row.id))
        menu.addSeparator()
        menu.addAction("Export as Markdown…", lambda: self.export_item(row.id, "md"))
        menu.addAction("Export as JSON…", lambda: self.export_item(row.id, "json"))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.delete_item(row.id))
        menu.popup(self.list.viewport().mapToGlobal(pos))

    # --- actions ---------------------------------------------------------------------------------

    def _title_of(self, item_id: int) -> str:
        for row in self.items():
            if row.id == item_id:
                return row.title
        return ""

    def rename_item(self, item_id: int, title: str | None = None) -> bool:
        if title is None:
            title, ok = QInputDialog.getText(self, "Rename", "New name:", QLineEdit.EchoMode.Normal,
                                             self._title_of(item_id))
            if not ok:
                return False
        try:
            self.store.rename(self.kind, item_id, title)
        except HistoryError as exc:
            self.message.emit(str(exc))
            return False
        self.refresh()
        self.renamed.emit(item_id, " ".join(title.split()))
        return True

    def delete_item(self, item_id: int, confirm: bool = True) -> bool:
        if confirm:
            answer = QMessageBox.question(self, "Delete", f"Delete “{self._title_of(item_id)}”? "
                                          "This can't be undone.")
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            self.store.delete(self.kind, item_id)
        except HistoryError as exc:
            self.message.emit(str(exc))
            return False
        if self.current_id == item_id:
            self.current_id = None
        self.refresh()
        self.deleted.emit(item_id)
        return True

    def export_item(self, item_id: int, fmt: str, path: str | Path | None = None) -> Path | None:
        """Write an item as Markdown (``fmt="md"``) or JSON; asks for the file unless ``path`` is given."""
        if path is None:
            suggested = "".join(c if c.isalnum() or c in " -_" else "_" for c in self._title_of(item_id))
            suggested = (suggested.strip() or self.kind)[:60] + (".md" if fmt == "md" else ".json")
            filters = "Markdown (*.md)" if fmt == "md" else "JSON (*.json)"
            chosen, _ = QFileDialog.getSaveFileName(self, "Export", str(Path.home() / suggested), filters)
            if not chosen:
                return None
            path = chosen
        try:
            text = (export.export_markdown if fmt == "md" else export.export_json)(self.store, self.kind, item_id)
            export.write_export(Path(path), text)
        except HistoryError as exc:
            self.message.emit(str(exc))
            return None
        self.message.emit(f"Exported to {path}")
        return Path(path)

    def import_file(self, path: str | Path | None = None) -> HistoryItem | None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Import", str(Path.home()), "Tandem export (*.json)")
            if not chosen:
                return None
            path = chosen
        try:
            item = export.import_json(self.store, Path(path))
        except HistoryError as exc:
            self.message.emit(str(exc))
            return None
        if item.kind != self.kind:
            self.message.emit(f"Imported “{item.title}” as a {item.kind}; find it in its own pane.")
        else:
            self.message.emit(f"Imported “{item.title}”.")
        self.refresh()
        self.imported.emit(item)
        return item
