"""A one-line (wrapping) notice under a pane's header: info, warning or error, with a close button."""

from __future__ import annotations

from typing import Literal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

Level = Literal["info", "warning", "error"]

_STYLES = {
    "info": "background: rgba(61, 95, 184, 0.14); border: 1px solid rgba(61, 95, 184, 0.45);",
    "warning": "background: rgba(214, 150, 0, 0.16); border: 1px solid rgba(214, 150, 0, 0.55);",
    "error": "background: rgba(192, 57, 43, 0.14); border: 1px solid rgba(192, 57, 43, 0.6);",
}


class Notice(QFrame):
    def __init__(self, object_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.level: Level | None = None
        self.label = QLabel()
        self.label.setObjectName(f"{object_name}Text")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.setVisible(False)

    def text(self) -> str:
        return self.label.text() if self.level else ""

    def show_message(self, text: str, level: Level = "info") -> None:
        self.level = level
        self.label.setText(text)
        self.setStyleSheet(f"#{self.objectName()} {{ {_STYLES[level]} border-radius: 4px; }}")
        self.setVisible(True)

    def clear(self) -> None:
        self.level = None
        self.label.clear()
        self.setVisible(False)
