"""The Compare pane's details tabs: the exact text each model received, and both models' first step.

The inputs view shows the base model's raw (or few-shot) input beside the instruct model's templated one,
special tokens highlighted; the first-step view puts the two models' top next tokens side by side with
how much the two distributions overlap.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.compare.analysis import overlap
from desktop.engine.types import TopToken
from desktop.ui.compare.compare_views import SIDE_COLOURS
from desktop.ui.compare.tab import Tab, Toggle
from desktop.ui.widgets.prompt_view import PromptView
from desktop.ui.widgets.token_view import percent, visible_token


class InputsView(QWidget):
    """Both exact inputs side by side: the raw prompt vs the templated one, special tokens highlighted."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("compareInputs")
        self.base_view = PromptView(object_name="baseInput")
        self.instruct_view = PromptView(object_name="instructInput")
        self.instruct_view.setPlaceholderText("The templated prompt appears here once a run starts.")
        self.base_view.setPlaceholderText("The base model's input appears here once a run starts.")
        self.base_note = QLabel("Base model: the prompt exactly as typed — plain text, nothing added.")
        self.instruct_note = QLabel("Instruct model: the same prompt wrapped in its chat template. The "
                                    "highlighted special tokens mark the turns; the model still just "
                                    "continues this text, from the assistant turn.")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        for note, view in ((self.base_note, self.base_view), (self.instruct_note, self.instruct_view)):
            note.setWordWrap(True)
            note.setStyleSheet("color: palette(placeholder-text);")
            box = QVBoxLayout()
            box.addWidget(note)
            box.addWidget(view, 1)
            layout.addLayout(box, 1)

    def set_inputs(self, base: str | None, instruct: str | None, few_shot: bool = False) -> None:
        if base is not None:
            self.base_view.set_prompt(base)
        if instruct is not None:
            self.instruct_view.set_prompt(instruct)
        self.base_note.setText("Base model: your prompt inside the few-shot template — still plain text."
                               if few_shot else "Base model: the prompt exactly as typed — plain text, nothing added.")

    def set_special_tokens(self, tokens: Sequence[str]) -> None:
        self.instruct_view.set_special_tokens(tokens)
        self.base_view.set_special_tokens(tokens)

    def clear(self) -> None:
        self.base_view.clear()
        self.instruct_view.clear()


class FirstStepView(QWidget):
    """The two models' top-k next-token distributions for the prompt, side by side, with their overlap."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("firstStepView")
        self.summary = QLabel("After a run: the first token each model would write, its top candidates, and "
                              "how much the two distributions overlap.")
        self.summary.setObjectName("firstStepSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.tables = {side: self._table(side) for side in ("base", "instruct")}
        row = QHBoxLayout()
        for side, table in self.tables.items():
            box = QVBoxLayout()
            title = QLabel(f"<b style='color:{SIDE_COLOURS[side]}'>{side.title()}</b> — "
                           + ("how the text goes on" if side == "base" else "how its answer starts"))
            box.addWidget(title)
            box.addWidget(table, 1)
            row.addLayout(box, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(row, 1)
        self.base: tuple[TopToken, ...] = ()
        self.instruct: tuple[TopToken, ...] = ()

    def _table(self, side: str) -> QTableWidget:
        table = QTableWidget(0, 2)
        table.setObjectName(f"{side}FirstStep")
        table.setHorizontalHeaderLabels(["token", "probability"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.setShowGrid(False)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
        return table

    def clear(self, text: str = "") -> None:
        self.base, self.instruct = (), ()
        for table in self.tables.values():
            table.setRowCount(0)
        if text:
            self.summary.setText(text)

    def set_tops(self, side: str, tops: Sequence[TopToken]) -> None:
        setattr(self, side, tuple(tops))
        self._refresh()

    def overlap(self):
        return overlap(self.base, self.instruct)

    def _refresh(self) -> None:
        ov = self.overlap()
        shared_bg = QColor(214, 150, 0, 70)
        p_max = max((math.exp(t.logprob) for t in (*self.base, *self.instruct) if math.isfinite(t.logprob)),
                    default=1.0)
        for side in ("base", "instruct"):
            tops: tuple[TopToken, ...] = getattr(self, side)
            table = self.tables[side]
            table.setRowCount(len(tops))
            for i, t in enumerate(tops):
                p = math.exp(t.logprob) if math.isfinite(t.logprob) else 0.0
                token = QTableWidgetItem(visible_token(t.text))
                token.setFont(QFont("monospace"))
                token.setToolTip(f"{t.text!r} (id {t.token_id})")
                bar = "█" * max(1, round(16 * p / p_max)) if p_max > 0 else ""
                prob = QTableWidgetItem(f"{percent(p):>6}  {bar}")
                prob.setForeground(QColor(SIDE_COLOURS[side]))
                for item in (token, prob):
                    if t.text in ov.shared:
                        item.setBackground(shared_bg)
                table.setItem(i, 0, token)
                table.setItem(i, 1, prob)
        if not (self.base and self.instruct):
            return
        top = (f"both start with <code>{html.escape(visible_token(self.base[0].text))}</code>" if ov.same_top else
               f"the base model's favourite is <code>{html.escape(visible_token(self.base[0].text))}</code>, the "
               f"instruct model's <code>{html.escape(visible_token(self.instruct[0].text))}</code>")
        self.summary.setText(
            f"<b>{len(ov.shared)} of the top {ov.k}</b> tokens are shared (highlighted) · shared probability "
            f"<b>{ov.mass * 100:.1f}%</b> · {top}. The base model predicts how the text goes on; the instruct "
            "model predicts the start of an answer.")


INPUTS_TAB = Tab("inputs", "Exact inputs", InputsView,
                 Toggle("Inputs", "showInputsButton", "Show the exact text each model receives"))
FIRST_STEP_TAB = Tab("first_step", "First step", FirstStepView,
                     Toggle("First step", "showFirstStepButton",
                            "Both models' top-10 next tokens for this prompt, and how much they overlap"))
