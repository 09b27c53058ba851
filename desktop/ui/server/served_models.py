"""The Server page's list of loaded models: a check box says whether each is served, with its URL for
lm-eval and OpenAI clients and a button that copies it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHeaderView, QPushButton, QTreeWidget, QTreeWidgetItem, QWidget

from desktop.ui.runtime.server import ServerController

PATH_ROLE = Qt.ItemDataRole.UserRole
URL_TIP = ("lm-eval: --model local-completions --model_args base_url=<this URL>\n"
           "OpenAI clients: base_url=<this URL without /completions>, model=<the id>")


class ServedModels(QTreeWidget):
    """One row per loaded local model: [x] id · kind · URL · Copy. Rebuilt from the controller."""

    copied = Signal(str)  # the URL put on the clipboard

    def __init__(self, server: ServerController, parent: QWidget | None = None):
        super().__init__(parent)
        self.server = server
        self.setObjectName("servedModels")
        self.setAccessibleName("Served models")
        self.setRootIsDecorated(False)
        self.setColumnCount(4)
        self.setHeaderLabels(["Model (served id)", "Kind", "URL for lm-eval (base_url)", ""])
        self.headerItem().setToolTip(2, URL_TIP)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.setColumnWidth(0, 280)
        self.itemChanged.connect(self._on_item_changed)
        self._filling = False

    def refresh(self) -> None:
        self._filling = True
        try:
            self.clear()
            running = self.server.running
            served = set(self.server.served_ids())
            for model_id, path, model in self.server.candidates():
                item = QTreeWidgetItem(self, [model_id, _kind(model), "", ""])
                item.setData(0, PATH_ROLE, path)
                item.setToolTip(0, path)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if self.server.is_served(path) else Qt.CheckState.Unchecked)
                url = self.server.model_url(model_id) + "/completions" if running and model_id in served else ""
                item.setText(2, url or ("not served" if running else "—"))
                item.setToolTip(2, URL_TIP if url else "Start the server to get its URL")
                if url:
                    item.setForeground(2, self.palette().text())
                else:
                    item.setForeground(2, self.palette().placeholderText())
                button = QPushButton("Copy")
                button.setObjectName("copyModelUrl")
                button.setToolTip(f"Copy {url}" if url else "Start the server to get its URL")
                button.setEnabled(bool(url))
                button.clicked.connect(lambda _=False, u=url: self._copy(u))
                self.setItemWidget(item, 3, button)
        finally:
            self._filling = False
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as its rows (up to five), so the request log below gets the rest of the page."""
        rows = max(1, min(5, self.topLevelItemCount()))
        row = self.sizeHintForRow(0) if self.topLevelItemCount() else self.fontMetrics().height() + 8
        self.setFixedHeight(self.header().sizeHint().height() + rows * row + 2 * self.frameWidth() + 2)

    def _copy(self, url: str) -> None:
        QGuiApplication.clipboard().setText(url)
        self.copied.emit(url)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        self.server.set_served(item.data(0, PATH_ROLE), item.checkState(0) == Qt.CheckState.Checked)


def _kind(model) -> str:
    try:
        return model.info.kind
    except Exception:  # noqa: BLE001 - a model whose info can't say: leave the cell empty
        return ""
