"""The Compare pane's "Alignment" view: what instruction tuning changed in the instruct answer, token by token.

It shows one ``desktop.lens.shift.ShiftResult`` (token shift, Lin et al., URIAL, ICLR 2024): the answer with
each token coloured by its class (rank 1 under the base model unshifted, 2-3 marginal, above 3 shifted; hover
for the base model's top choices, both logprobs and the rank), the three shares beside the paper's figures,
the most frequent shifted tokens, and a position profile. The base model's context (plain query, URIAL
wrapper, in-context alignment preset) is chosen here; the measuring is ``lens.LensController``'s.
Only widgets: a refusal (two model families, a backend without ranks) is one line in place of the rest.
"""

from __future__ import annotations

import bisect
import html

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from desktop.lens.analyze import CHAT_CONTEXT, CHAT_CONTEXT_NOTE
from desktop.lens.shift import CLASSES, CONTEXT_NOTES, PAPER_ROWS, Agreement, ShiftResult, TokenShift
from desktop.ui.compare.compare_alignment_plot import PositionProfile, class_colour, legend_html
from desktop.ui.compare.compare_views import utf16_offsets
from desktop.ui.widgets.theme import is_dark
from desktop.ui.widgets.token_view import visible_token

CONTEXT_CHOICES = (("plain", "the plain query (as the paper)"), ("urial", "the URIAL '# Query:' wrapper"),
                   ("icl", "the in-context alignment preset"), (CHAT_CONTEXT, "its own chat template"))
NOTES = {**CONTEXT_NOTES, CHAT_CONTEXT: CHAT_CONTEXT_NOTE}


def token_card(t: TokenShift) -> str:
    """The hover card of one answer token: its class and rank, both logprobs, the base model's top-3."""
    inst = "–" if t.instruct_logprob is None else f"{t.instruct_logprob:.2f}"
    rows = "".join(f"<tr><td><code>{html.escape(visible_token(a.text))}</code></td><td align=right>"
                   f"{a.logprob:.2f}</td></tr>" for a in t.base_top)
    return (f"<b><code>{html.escape(visible_token(t.text))}</code></b> · token {t.position + 1} · "
            f"<b>{t.cls}</b> (rank {t.rank:,} under the base model)<br>"
            f"logprob: base {t.base_logprob:.2f} · instruct {inst}<br>"
            f"The base model's top choices here:<table>{rows}</table>")


class ShiftText(QTextEdit):
    """The answer, one coloured run per token; hovering a token shows its card."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("alignmentText")
        self.setReadOnly(True)
        self.setAccessibleName("Instruct answer coloured by token shift")
        self.tokens: tuple[TokenShift, ...] = ()
        self._starts: list[int] = []  # document position where each token starts

    def set_tokens(self, tokens: tuple[TokenShift, ...]) -> None:
        self.clear()
        self.tokens = tokens
        text = "".join(t.text for t in tokens)
        positions = utf16_offsets(text)
        dark = is_dark(self)
        formats = {cls: QTextCharFormat() for cls in CLASSES}
        for cls, fmt in formats.items():
            fmt.setBackground(class_colour(cls, dark))
        cursor = QTextCursor(self.document())
        self._starts, offset = [], 0
        for t in tokens:
            self._starts.append(positions[offset])
            cursor.insertText(t.text, formats[t.cls])
            offset += len(t.text)
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def token_at(self, doc_position: int) -> TokenShift | None:
        i = bisect.bisect_right(self._starts, doc_position) - 1
        return self.tokens[i] if 0 <= i < len(self.tokens) else None

    def class_at(self, doc_position: int) -> QTextCharFormat:
        """The character format the document shows just after ``doc_position`` (tests read the colour)."""
        cursor = QTextCursor(self.document())
        cursor.setPosition(doc_position + 1)
        return cursor.charFormat()

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            cursor = self.cursorForPosition(event.pos())
            t = self.token_at(max(0, cursor.position() - 1)) if self.tokens else None
            if t is not None:
                QToolTip.showText(event.globalPos(), token_card(t), self)
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)


def _table(name: str, headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for i in range(1, len(headers)):
        table.horizontalHeader().setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
    return table


class AlignmentView(QWidget):
    """What the pane shows of a token-shift measurement; it asks the pane to measure through signals."""

    measureRequested = Signal()
    stopRequested = Signal()
    contextChanged = Signal(str)
    measured = Signal()  # a result or a refusal is shown

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("alignmentView")
        self.result: ShiftResult | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(self._header())
        self.status = QLabel("Token shift of the instruct answer: measured once a run has ended.")
        self.status.setObjectName("alignmentStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self.body = QSplitter(Qt.Orientation.Horizontal)
        self.body.setObjectName("alignmentBody")
        self.body.setChildrenCollapsible(False)
        self.body.addWidget(self._answer_side())
        self.body.addWidget(self._numbers_side())
        self.body.setSizes([520, 380])
        layout.addWidget(self.body, 1)
        self._filler = QWidget()  # keeps the header and a one-line refusal at the top while the body is hidden
        layout.addWidget(self._filler, 1)
        self.clear()

    def _header(self) -> QHBoxLayout:
        self.context_choice = QComboBox()
        self.context_choice.setObjectName("alignmentContext")
        for key, text in CONTEXT_CHOICES:
            self.context_choice.addItem(text, key)
            self.context_choice.setItemData(self.context_choice.count() - 1, NOTES[key],
                                            Qt.ItemDataRole.ToolTipRole)
        self.context_choice.setToolTip("What the base model reads before the answer. Changing it measures again.")
        self.context_choice.currentIndexChanged.connect(lambda _i: self.contextChanged.emit(self.context()))
        self.measure_button = QPushButton("Measure")
        self.measure_button.setObjectName("alignmentMeasure")
        self.measure_button.setToolTip("Rank every token of the instruct answer among the base model's choices "
                                       "(no new generation)")
        self.measure_button.clicked.connect(self.measureRequested)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("alignmentStop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stopRequested)
        row = QHBoxLayout()
        row.addWidget(QLabel("Base model reads:"))
        row.addWidget(self.context_choice)
        row.addWidget(self.measure_button)
        row.addWidget(self.stop_button)
        self.legend = QLabel(legend_html(is_dark(self)))
        self.legend.setObjectName("alignmentLegend")
        row.addWidget(self.legend)
        row.addStretch(1)
        return row

    def _answer_side(self) -> QWidget:
        self.text_view = ShiftText()
        self.profile = PositionProfile()
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.text_view, 1)
        v.addWidget(self.profile)
        return box

    def _numbers_side(self) -> QWidget:
        self.shares_table = _table("alignmentShares", ["", "unshifted", "marginal", "shifted"])
        self.shares_table.setToolTip("Percent of the answer's tokens per class; the paper's figures for two "
                                     "7B pairs below, for reference")
        self.agreement = QLabel()
        self.agreement.setObjectName("alignmentAgreement")
        self.agreement.setWordWrap(True)
        self.shifted_table = _table("alignmentShifted", ["most frequent shifted tokens", "count"])
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.shares_table)
        v.addWidget(self.agreement)
        v.addWidget(self.shifted_table, 1)
        return box

    # --- what the pane sets ----------------------------------------------------------------------

    def context(self) -> str:
        return self.context_choice.currentData()

    def set_context(self, context: str) -> None:
        """Choose the base context without asking for a new measurement."""
        self.context_choice.blockSignals(True)
        self.context_choice.setCurrentIndex(max(0, self.context_choice.findData(context)))
        self.context_choice.blockSignals(False)

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.measure_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        if text:
            self.show_status(text)

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #c0392b;" if error else "")

    def clear(self, text: str = "") -> None:
        self.result = None
        self.text_view.set_tokens(())
        self.profile.set_result(None)
        self.shares_table.setRowCount(0)
        self.shifted_table.setRowCount(0)
        self.agreement.clear()
        self._show_body(False)
        if text:
            self.show_status(text)

    def _show_body(self, on: bool) -> None:
        self.body.setVisible(on)
        self._filler.setVisible(not on)

    def show_refusal(self, text: str) -> None:
        """One line instead of the measurement: the pair can't be measured (two vocabularies, no ranks)."""
        self.clear()
        self.set_busy(False)
        self.show_status(text, error=True)
        self.measured.emit()

    def show_result(self, result: ShiftResult, agreement: Agreement | None = None) -> None:
        self.result = result
        self.set_busy(False)
        sh = result.shares
        self.show_status(
            f"{sh.n:,} answer tokens, ranked under the base model given {NOTES.get(result.context, result.context)}; "
            f"the instruct model read them through its {result.instruct_context}. Hover a token for the base "
            "model's choices." if sh.n else "The instruct answer has no tokens: nothing to measure.")
        self._show_body(bool(sh.n))
        self.text_view.set_tokens(result.tokens)
        self.profile.set_result(result)
        rows = [("this run", sh.unshifted, sh.marginal, sh.shifted)] if sh.n else []
        rows += [(f"{p.pair} (paper)", p.unshifted, p.marginal, p.shifted) for p in PAPER_ROWS]
        self.shares_table.setRowCount(len(rows))
        for r, (name, *values) in enumerate(rows):
            self.shares_table.setItem(r, 0, QTableWidgetItem(name))
            for c, (cls, value) in enumerate(zip(CLASSES, values), 1):
                item = QTableWidgetItem(f"{value:.1f} %")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if r == 0 and sh.n:
                    item.setBackground(class_colour(cls, is_dark(self)))
                self.shares_table.setItem(r, c, item)
        self.shares_table.setFixedHeight(self.shares_table.horizontalHeader().height()
                                         + sum(self.shares_table.rowHeight(i) for i in range(len(rows))) + 4)
        top = result.top_shifted(10)
        self.shifted_table.setRowCount(max(1, len(top)))
        if not top:
            self.shifted_table.setItem(0, 0, QTableWidgetItem("no shifted tokens"))
        for r, (text, count) in enumerate(top):
            self.shifted_table.setItem(r, 0, QTableWidgetItem(visible_token(text)))
            self.shifted_table.setItem(r, 1, QTableWidgetItem(str(count)))
        self._show_agreement(agreement)
        self.measured.emit()

    def _show_agreement(self, a: Agreement | None) -> None:
        if a is None or a.share is None:
            self.agreement.clear()
            return
        self.agreement.setText(
            f"<b>Base + preamble answer vs the instruct answer:</b> the same first {a.common_prefix:,} "
            f"token{'s' if a.common_prefix != 1 else ''}; {a.share:.0f} % of both answers' tokens sit in "
            "stretches they share.")

    def shares_shown(self) -> dict[str, float]:
        """The first row of the shares table, as numbers (for tests and the screenshot check)."""
        return {cls: float(self.shares_table.item(0, c).text().rstrip(" %")) for c, cls in enumerate(CLASSES, 1)}
