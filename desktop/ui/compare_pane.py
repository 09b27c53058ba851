"""Placeholder for the Compare pane (base vs instruct side by side); its owner replaces this module."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class ComparePane(QWidget):
    """The Compare pane. ``context`` is the app's AppContext (desktop/ui/context.py)."""

    def __init__(self, context, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("comparePane")
        self.context = context
        layout = QVBoxLayout(self)
        label = QLabel("Compare: the same prompt through a base model and its instruct sibling.")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(label)
