"""The Compare pane's widgets and how they sit together, built apart from the pane's behaviour.

``CompareWidgets`` builds the two output columns, the details tabs (each registered in
``desktop.ui.compare.tabs``, its view in ``views`` by key), the footer (seed, analysis status, Export) and the history sidebar; the pane connects them to
its run. ``CompareHistorySidebar`` exports compare runs as the pane's full Markdown.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.compare import record
from desktop.compare.pair import SIDES
from desktop.compare.pair_model import PairModel
from desktop.core import export
from desktop.core.errors import HistoryError
from desktop.ui.compare import tabs
from desktop.ui.compare.compare_controls import PromptControls
from desktop.ui.compare.compare_views import OutputColumn
from desktop.ui.runtime.context import AppContext
from desktop.ui.widgets.history_sidebar import HistorySidebar
from desktop.ui.widgets.notice import Notice


class CompareHistorySidebar(HistorySidebar):
    """The history sidebar, exporting compare runs as this pane's full Markdown (settings, stats, analysis)."""

    def export_item(self, item_id: int, fmt: str, path: str | Path | None = None) -> Path | None:
        if fmt != "md":
            return super().export_item(item_id, fmt, path)
        try:
            run = self.store.get_compare_run(item_id)
        except HistoryError as exc:
            self.message.emit(str(exc))
            return None
        if path is None:
            safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in run.title).strip() or "compare"
            chosen, _ = QFileDialog.getSaveFileName(self, "Export", str(Path.home() / f"{safe[:60]}.md"),
                                                    "Markdown (*.md)")
            if not chosen:
                return None
            path = chosen
        try:
            export.write_export(Path(path), record.run_to_markdown(run.data, run.title))
        except HistoryError as exc:
            self.message.emit(str(exc))
            return None
        self.message.emit(f"Exported to {path}")
        return Path(path)


class CompareWidgets:
    """Every widget of the Compare pane, laid out; ``center`` is the middle column."""

    def __init__(self, context: AppContext, pane: QWidget, model: PairModel):
        self.columns = {side: OutputColumn(context, side, model[side], pane) for side in SIDES}
        self.controls = PromptControls(tabs.TABS)
        self.notice = Notice("compareNotice")
        self._build_details()
        self._build_body()
        self._build_footer()
        self.center = QWidget()
        layout = QVBoxLayout(self.center)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.controls)
        layout.addWidget(self.notice)
        layout.addWidget(self.body, 1)
        layout.addLayout(self.footer)
        self.sidebar = CompareHistorySidebar(context.history, "compare")
        for key, button in self.controls.tab_buttons.items():
            button.toggled.connect(lambda on, key=key: self._tab_toggled(key, on))
        self.details.currentChanged.connect(self._sync_tab_buttons)
        self.close_details.clicked.connect(lambda: self.show_details(None))

    def _build_details(self) -> None:
        self.views: dict[str, QWidget] = {}
        self.details = QTabWidget()
        self.details.setObjectName("compareDetails")
        for tab in tabs.TABS:
            self.views[tab.key] = tab.view()
            self.details.addTab(self.views[tab.key], tab.title)
        self.details.setVisible(False)
        self.close_details = QToolButton()
        self.close_details.setText("✕")
        self.close_details.setAutoRaise(True)
        self.close_details.setToolTip("Hide")
        self.details.setCornerWidget(self.close_details)

    def _build_body(self) -> None:
        self.columns_box = QWidget()
        self.columns_box.setObjectName("compareColumns")
        grid = QGridLayout(self.columns_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(3)
        for i, col in enumerate(self.columns.values()):
            col.place(grid, i)
        width = max(grid.columnMinimumWidth(i) for i in range(len(SIDES)))
        for i in range(len(SIDES)):
            grid.setColumnMinimumWidth(i, width)
        grid.setRowStretch(OutputColumn.ROWS.index("output"), 1)
        self.body = QSplitter(Qt.Orientation.Vertical)
        self.body.setObjectName("compareBody")
        self.body.setChildrenCollapsible(False)
        self.body.addWidget(self.columns_box)
        self.body.addWidget(self.details)
        self.body.setStretchFactor(0, 3)
        self.body.setStretchFactor(1, 2)

    def _build_footer(self) -> None:
        self.seed_label = QLabel()
        self.seed_label.setObjectName("compareSeed")
        self.seed_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.analysis_label = QLabel()
        self.analysis_label.setObjectName("analysisStatus")
        self.analysis_label.setStyleSheet("color: palette(placeholder-text);")
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("exportButton")
        self.export_button.setToolTip("Save this run as Markdown: both columns, the settings and the stats")
        self.export_button.setEnabled(False)
        self.footer = QHBoxLayout()
        self.footer.addWidget(self.seed_label)
        self.footer.addWidget(self.analysis_label, 1)
        self.footer.addWidget(self.export_button)

    def show_details(self, which: str | None) -> None:
        """Open the details area on a registered tab (by key); None hides it."""
        self._show_details(which)
        self._sync_tab_buttons()

    def _tab_toggled(self, which: str, on: bool) -> None:
        if on:
            self.show_details(which)
        elif self.details.isVisible() and self.details.currentIndex() == tabs.index(which):
            self.show_details(None)

    def _sync_tab_buttons(self, *_args) -> None:
        """Each tab's toggle is checked while the details area shows that tab."""
        visible = self.details.isVisible()
        for key, button in self.controls.tab_buttons.items():
            button.blockSignals(True)
            button.setChecked(visible and self.details.currentIndex() == tabs.index(key))
            button.blockSignals(False)

    def _show_details(self, which: str | None) -> None:
        if which is None:
            self.details.setVisible(False)
            return
        self.details.setCurrentIndex(tabs.index(which))
        if not self.details.isVisible():
            self.details.setVisible(True)
            total = sum(self.body.sizes()) or 600
            self.body.setSizes([int(total * 0.6), int(total * 0.4)])
