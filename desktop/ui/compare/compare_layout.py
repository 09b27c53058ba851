"""The Compare pane's widgets and how they sit together, built apart from the pane's behaviour.

``CompareWidgets`` builds the two output columns, the details tabs (exact inputs, first step, few-shot
template), the footer (seed, analysis status, Export) and the history sidebar; the pane connects them to
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
from desktop.ui.compare.compare_alignment import AlignmentView
from desktop.ui.compare.compare_controls import FewShotTemplateView, PromptControls
from desktop.ui.compare.compare_details import FirstStepView, InputsView
from desktop.ui.compare.compare_views import OutputColumn
from desktop.ui.runtime.context import AppContext
from desktop.ui.widgets.history_sidebar import HistorySidebar
from desktop.ui.widgets.notice import Notice

DETAILS = ("inputs", "first_step", "template", "alignment")  # the details tabs, in order


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
        self.controls = PromptControls()
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

    def _build_details(self) -> None:
        self.inputs_view = InputsView()
        self.first_step_view = FirstStepView()
        self.template_view = FewShotTemplateView()
        self.details = QTabWidget()
        self.details.setObjectName("compareDetails")
        self.details.addTab(self.inputs_view, "Exact inputs")
        self.details.addTab(self.first_step_view, "First step")
        self.details.addTab(self.template_view, "Few-shot template")
        self.alignment_view = AlignmentView()
        self.details.addTab(self.alignment_view, "Alignment")
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
        """Open the details area on one of ``DETAILS``; None hides it."""
        if which is None:
            self.details.setVisible(False)
            return
        self.details.setCurrentIndex(DETAILS.index(which))
        if not self.details.isVisible():
            self.details.setVisible(True)
            total = sum(self.body.sizes()) or 600
            self.body.setSizes([int(total * 0.6), int(total * 0.4)])
