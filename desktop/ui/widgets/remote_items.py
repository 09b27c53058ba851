"""The remote part of a model picker: each saved endpoint's name as a heading, its models under it.

An endpoint that can't be listed (offline mode refusing a non-loopback host, the server down, a refused
key) keeps its heading with the one-line reason, greyed out, so a person sees why its models are missing.
Each model's item data is its ref (``runtime.remote_models.remote_ref``), which the ModelManager opens.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QComboBox

from desktop.engine.backends import EndpointModels
from desktop.ui.runtime.remote_models import remote_ref, short_id

HEADING_ROLE = Qt.ItemDataRole.UserRole + 1  # True on an endpoint's heading row


def add_remote_items(combo: QComboBox, entries: list[EndpointModels]) -> None:
    """Append every endpoint's heading and models to ``combo`` (headings and faults are not selectable)."""
    for e in entries:
        engine = f" ({e.engine})" if e.engine else ""
        heading = f"{e.endpoint}{engine}" + (f" · {e.error}" if e.error else "")
        _add_disabled(combo, heading, e.error or f"Models served at {e.url}", heading=True)
        if not e.error and not e.models:
            _add_disabled(combo, "    serves no models right now", e.url)
        for model_id in e.models:
            combo.addItem(f"    {short_id(model_id)}  ·  remote", remote_ref(e.endpoint, model_id))
            combo.setItemData(combo.count() - 1, f"{model_id} on {e.endpoint} ({e.url})",
                              Qt.ItemDataRole.ToolTipRole)


def _add_disabled(combo: QComboBox, text: str, tip: str, heading: bool = False) -> None:
    combo.addItem(text, "")
    index = combo.count() - 1
    combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
    combo.setItemData(index, heading, HEADING_ROLE)
    item = combo.model().item(index)  # a QStandardItemModel for a plain QComboBox
    if item is not None:
        item.setEnabled(False)
        if heading:
            font = QFont(item.font())
            font.setBold(True)
            item.setFont(font)
