"""The Server page's live request log: one row per request the server answered, newest at the bottom.

A table model over a bounded deque (``LOG_LIMIT`` rows): a client that sends thousands of requests (lm-eval
does) costs the window a few hundred rows, and each batch is one insert (and at most one removal) for the view.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

LOG_LIMIT = 500
COLUMNS = ("Time", "Route", "Model", "Status", "Tokens", "Duration")
TIPS = ("When the request arrived", "The route it asked for", "The served model it used",
        "The HTTP status sent back", "Prompt tokens → completion tokens", "From arrival to the last byte")
ERROR_COLOR = QColor(192, 57, 43)
Index = QModelIndex | QPersistentModelIndex


def duration_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def cells(record: Any) -> tuple[str, ...]:
    """A RequestRecord as the row's texts."""
    tokens = (f"{record.prompt_tokens} → {record.completion_tokens}"
              if record.prompt_tokens or record.completion_tokens else "")
    return (time.strftime("%H:%M:%S", time.localtime(record.at)), record.route, record.model or "—",
            str(record.status), tokens, duration_text(record.duration_s))


class RequestLogModel(QAbstractTableModel):
    def __init__(self, limit: int = LOG_LIMIT, parent=None):
        super().__init__(parent)
        self.limit = limit
        self._rows: collections.deque[tuple[tuple[str, ...], int]] = collections.deque()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt override
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        texts, status = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return texts[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and status >= 400 and index.column() == 3:
            return ERROR_COLOR
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt override
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return TIPS[section]
        return None

    def append(self, records: list) -> None:
        """Add a batch (oldest first), dropping the oldest rows beyond the limit."""
        records = records[-self.limit:]
        drop = max(0, len(self._rows) + len(records) - self.limit)
        if drop:
            self.beginRemoveRows(QModelIndex(), 0, drop - 1)
            for _ in range(drop):
                self._rows.popleft()
            self.endRemoveRows()
        if records:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(records) - 1)
            self._rows.extend((cells(r), int(r.status)) for r in records)
            self.endInsertRows()

    def row_texts(self, row: int) -> tuple[str, ...]:
        return self._rows[row][0]

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self.endResetModel()


class RequestLogView(QTableView):
    """The table, following the newest row while the person hasn't scrolled up."""

    def __init__(self, model: RequestLogModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("serverRequestLog")
        self.setAccessibleName("Request log")
        self.setModel(model)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((80, 260, 220, 60, 110, 90)):
            self.setColumnWidth(column, width)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # routes with a model root are long
        model.rowsAboutToBeInserted.connect(self._note_position)
        model.rowsInserted.connect(self._follow)
        self._at_bottom = True

    def _note_position(self, *_args) -> None:
        bar = self.verticalScrollBar()
        self._at_bottom = bar.value() >= bar.maximum() - 2

    def _follow(self, *_args) -> None:
        if self._at_bottom:
            self.scrollToBottom()
