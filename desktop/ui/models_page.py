"""Placeholder for the Models page (catalog, downloads, library); its owner replaces this module."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class ModelsPage(QWidget):
    """The Models page. ``context`` is the app's AppContext (desktop/ui/context.py)."""

    def __init__(self, context, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelsPage")
        self.context = context
        layout = QVBoxLayout(self)
        label = QLabel("Models: catalog, downloads and library are coming.")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(label)
