"""The Compare pane's output columns, one per model (the details tabs are in compare_details.py).

A column streams a model's tokens (coloured by the model's own probability through ``TokenTracker``, hover
for the alternatives) and can instead colour the same text by how probable the *other* model finds it
(cross-scoring), drawn as an overlay of extra selections so the two colourings never mix.
"""

from __future__ import annotations

import bisect
import html
import math
from typing import Literal

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QTextEdit,
    QToolTip,
)

from desktop.compare.analysis import ScoredSpan, Surprise, align_scored, describe_ratio
from desktop.compare.pane_model import PaneModel
from desktop.engine.types import FinalEvent, ScoreResult, TokenEvent
from desktop.ui.runtime.context import AppContext
from desktop.ui.widgets.model_bar import ModelBar
from desktop.ui.widgets.theme import is_dark
from desktop.ui.widgets.token_view import TokenTracker, percent, probability_color, visible_token

ColourMode = Literal["off", "own", "cross"]
SIDE_COLOURS = {"base": "#2e7d5b", "instruct": "#3d5fb8"}  # the model bar's badges
_HOW = {
    "base": "gets the prompt as raw text and <b>continues</b> it",
    "instruct": "gets it as a user message in its chat template, and <b>answers</b> it",
}


def describe_run(final: FinalEvent) -> str:
    """'finished · 188 tokens · 438.6 tok/s · first token 12 ms' (the seed is shown once, for both columns;
    the prompt's size is in the tooltip)."""
    s = final.stats
    parts = [final.finish_words]
    parts.append(f"{s.completion_tokens:,} token{'s' if s.completion_tokens != 1 else ''}")
    if s.decode_tps:
        parts.append(f"{s.decode_tps:,.1f} tok/s")
    if s.ttft_s:
        parts.append(f"first token {s.ttft_s * 1000:,.0f} ms" if s.ttft_s < 10 else f"first token {s.ttft_s:.1f} s")
    return " · ".join(parts)


def utf16_offsets(text: str) -> list[int]:
    """Document position of each Python character offset (Qt counts UTF-16 units), one extra at the end."""
    out, pos = [], 0
    for ch in text:
        out.append(pos)
        pos += 2 if ord(ch) > 0xFFFF else 1
    out.append(pos)
    return out


class OutputColumn(QObject):
    """One model's side: its picker, what it receives, its streamed output, stats and surprise.

    It owns the widgets but does not lay them out: the pane puts both columns' rows in one grid, so the
    two outputs line up even when one caption or stats line wraps and the other does not.
    """

    ROWS = ("bar", "status", "caption", "output", "stats", "surprise")

    def __init__(self, context: AppContext, side: str, model: PaneModel, parent: QObject | None = None):
        super().__init__(parent)
        self.side = side
        self.other = "instruct" if side == "base" else "base"
        self.setObjectName(f"{side}Column")
        self.bar = ModelBar(context, model, owner=f"compare.{side}", picker_name=f"{side}Picker", label=side.title())
        self.bar.combo.setMinimumContentsLength(20)

        self.caption = QLabel(f"{_HOW[side][0].upper()}{_HOW[side][1:]}.")
        self.caption.setObjectName(f"{side}Caption")
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: palette(placeholder-text);")

        self.output = QPlainTextEdit()
        self.output.setObjectName(f"{side}Output")
        self.output.setAccessibleName(f"{side.title()} model output")
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("Its output appears here.")
        font = QFont(self.output.font())
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.output.setFont(font)
        self.output.setStyleSheet(f"QPlainTextEdit#{side}Output {{ border: 1px solid palette(mid); "
                                  f"border-top: 3px solid {SIDE_COLOURS[side]}; border-radius: 3px; }}")
        self.tracker = TokenTracker(self.output, interactive=False)
        self.tracker.set_mode("probability")

        self.stats = QLabel()
        self.stats.setObjectName(f"{side}Stats")
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.surprise = QLabel()
        self.surprise.setObjectName(f"{side}Surprise")
        self.surprise.setWordWrap(True)
        self.surprise.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.surprise.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)

        # the bar's load state gets a line of its own: squeezed beside two pickers it would be cut off
        self.bar.layout().removeWidget(self.bar.status)
        self.bar.layout().addStretch(1)
        self.status = self.bar.status
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.events: list[TokenEvent] = []
        self.final: FinalEvent | None = None
        self.own: ScoreResult | None = None
        self.cross: ScoreResult | None = None
        self.own_chars: int | None = None
        self.cross_chars: int | None = None
        self.cross_spans: list[ScoredSpan] = []
        self._mode: ColourMode = "own"
        self._index: tuple[list[int], list[int]] | None = None  # document positions, span starts (hover)
        self._hover = _CrossHover(self)
        self.output.viewport().installEventFilter(self._hover)

    def place(self, grid: QGridLayout, column: int) -> None:
        """Put this side's rows in ``column`` of the pane's grid."""
        for row, name in enumerate(self.ROWS):
            widget = getattr(self, name)
            policy = widget.sizePolicy()
            policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)  # equal columns: the stretch decides
            widget.setSizePolicy(policy)
            grid.addWidget(widget, row, column)
        grid.setColumnMinimumWidth(column, max(grid.columnMinimumWidth(column), self.bar.minimumSizeHint().width()))
        grid.setColumnStretch(column, 1)

    # --- streaming -------------------------------------------------------------------------------

    def clear(self) -> None:
        self.tracker.clear()
        self.output.clear()
        self.output.setExtraSelections([])
        self.events, self.final, self.own, self.cross, self.cross_spans = [], None, None, None, []
        self.own_chars = self.cross_chars = None
        self._index = None
        self.stats.clear()
        self.surprise.clear()

    def append(self, events: list[TokenEvent]) -> None:
        bar = self.output.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self.events.extend(events)
        self._index = None
        self.tracker.append(events)
        if at_bottom:
            bar.setValue(bar.maximum())

    def show_progress(self, tokens: int, rate: float) -> None:
        text = f"generating · {tokens:,} token{'s' if tokens != 1 else ''}"
        self.stats.setText(text + (f" · {rate:.1f} tok/s" if rate else ""))
        self.stats.setStyleSheet("")

    def show_waiting(self, text: str) -> None:
        self.stats.setText(text)
        self.stats.setStyleSheet("")

    def set_final(self, final: FinalEvent, error: str = "") -> None:
        self.final = final
        self._index = None
        text = describe_run(final)
        if error:
            text += f" — {error}"
        self.stats.setText(text)
        self.stats.setStyleSheet("color: #c0392b;" if error else "")
        s = final.stats
        self.stats.setToolTip(f"Prompt: {s.prompt_tokens:,} tokens ({s.prefill_tps:,.0f} tok/s to read it)\n"
                              f"Generated: {s.completion_tokens:,} tokens in {s.decode_s:.2f} s\n"
                              f"Seed: {s.seed}" if s.prompt_tokens else "")
        if final.text and not self.events and not self.output.toPlainText():
            self.output.setPlainText(final.text)  # a reloaded run saved without its tokens

    def text(self) -> str:
        """What the model wrote, exactly. (The editor shows the same characters, except that Qt turns a
        carriage return or a Unicode line separator into a line break.)"""
        if self.events:
            return "".join(e.text for e in self.events)
        return self.final.text if self.final is not None else self.output.toPlainText()

    # --- surprise --------------------------------------------------------------------------------

    def set_scores(self, own: ScoreResult | None = None, cross: ScoreResult | None = None, *,
                   own_chars: int | None = None, cross_chars: int | None = None) -> None:
        """Show how the other model (``cross``) and this model itself (``own``) score this column's text.
        ``*_chars``: how much of the text the score covers, when only its beginning fit the context."""
        if own is not None:
            self.own, self.own_chars = own, own_chars
        if cross is not None:
            self.cross, self.cross_chars = cross, cross_chars
            text = self.text()
            self.cross_spans = align_scored(text[:cross_chars] if cross_chars is not None else text, cross.tokens)
            self._index = None
            if self._mode == "cross":
                self._apply_cross()
        self._show_surprise()

    def show_scoring(self, text: str, error: bool = False) -> None:
        self.surprise.setText(text)
        self.surprise.setStyleSheet("color: #c0392b;" if error else "color: palette(placeholder-text);")

    def _show_surprise(self) -> None:
        if self.cross is None or not self.cross.tokens:
            if self.final is not None and not self.text():
                self.show_scoring("Nothing to score: this model wrote nothing.")
            return
        c = Surprise.of(self.cross)
        text = f"Perplexity under the <b>{self.other}</b> model: <b>{c.perplexity:,.1f}</b>"
        if self.own is not None and self.own.tokens:
            o = Surprise.of(self.own)
            text += f" · under this model: {o.perplexity:,.1f}"
            ratio = describe_ratio(o, c)
            if ratio:
                text += f" — <b>{ratio}</b> to the {self.other} model"
        covered = min(c for c in (self.cross_chars, self.own_chars, len(self.text())) if c is not None)
        if covered < len(self.text()):
            text += (f" · <i>the first {covered * 100 // max(1, len(self.text()))}% of the text: the rest does not "
                     "fit the context</i>")
        self.surprise.setText(text)
        self.surprise.setToolTip(
            f"Cross-scoring: this text's exact tokens, scored by the {self.other} model given the same prompt "
            f"({'as a reply to the user message' if self.other == 'instruct' else 'as a continuation of the raw prompt'}"
            f"). Mean logprob per token: {c.mean_logprob:.3f} under the {self.other} model"
            + (f", {Surprise.of(self.own).mean_logprob:.3f} under this model" if self.own and self.own.tokens else "")
            + ". Perplexity is exp(−mean logprob): lower means less surprising. Pick “Colours: the other "
            "model's view” to see where the surprise sits.")
        self.surprise.setStyleSheet("")

    # --- colouring -------------------------------------------------------------------------------

    @property
    def mode(self) -> ColourMode:
        return self._mode

    def set_colour_mode(self, mode: ColourMode) -> None:
        self._mode = mode
        self.tracker.set_mode("probability" if mode == "own" else "plain")
        if mode == "cross":
            self._apply_cross()
        else:
            self.output.setExtraSelections([])

    def _apply_cross(self) -> None:
        """One overlay range per run of tokens in the same colour step: thousands of tokens stay cheap."""
        positions, _starts = self._cross_index()
        dark = is_dark(self.output)
        formats: dict[int, QTextCharFormat] = {}
        runs: list[list[int]] = []  # [start, end, step]
        for span in self.cross_spans:
            if span.end >= len(positions):
                break
            step = round(math.sqrt(span.probability) * 24)  # the colour scale is sqrt-spread too
            if runs and runs[-1][2] == step and runs[-1][1] >= span.start:
                runs[-1][1] = max(runs[-1][1], span.end)
            else:
                runs.append([span.start, span.end, step])
        selections = []
        document = self.output.document()
        for start, end, step in runs:
            fmt = formats.get(step)
            if fmt is None:
                fmt = formats[step] = QTextCharFormat()
                fmt.setBackground(probability_color((step / 24) ** 2, dark))
            sel = QTextEdit.ExtraSelection()
            cursor = QTextCursor(document)
            cursor.setPosition(positions[start])
            cursor.setPosition(positions[end], QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            sel.format = fmt
            selections.append(sel)
        self.output.setExtraSelections(selections)

    def _cross_index(self) -> tuple[list[int], list[int]]:
        if self._index is None:
            self._index = (utf16_offsets(self.text()), [span.start for span in self.cross_spans])
        return self._index

    def cross_span_at(self, doc_position: int) -> ScoredSpan | None:
        """The scored token under a document position (the last one, where byte tokens share a character)."""
        positions, starts = self._cross_index()
        char = bisect.bisect_right(positions, doc_position) - 1
        i = bisect.bisect_right(starts, char) - 1
        if 0 <= i < len(self.cross_spans) and self.cross_spans[i].start <= char < self.cross_spans[i].end:
            return self.cross_spans[i]
        return None

    def own_probability_at(self, doc_position: int) -> float | None:
        index = self.tracker.index_at(doc_position)
        return self.tracker.spans[index].probability if index is not None else None


class _CrossHover(QObject):
    """In "other model's view" mode, hovering a token says how likely each model found it."""

    def __init__(self, column: OutputColumn):
        super().__init__(column)
        self.column = column

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        col = self.column
        if col.mode != "cross" or not col.cross_spans:
            return False
        if event.type() == QEvent.Type.MouseMove:
            pos: QPoint = event.position().toPoint()
            cursor = col.output.cursorForPosition(pos)
            position = cursor.position()
            if col.output.cursorRect(cursor).center().x() > pos.x() and position > 0:
                position -= 1
            span = col.cross_span_at(position)
            if span is None:
                QToolTip.hideText()
                return False
            own = col.own_probability_at(position)
            rows = [f"<b>{html.escape(visible_token(span.text))}</b>",
                    f"under the {col.other} model: <b>{percent(span.probability)}</b> "
                    f"(logprob {span.logprob:.2f})"]
            if own is not None:
                rows.append(f"under the {col.side} model, as it wrote it: {percent(own)}")
            QToolTip.showText(col.output.viewport().mapToGlobal(pos), "<br>".join(rows), col.output.viewport())
        elif event.type() == QEvent.Type.Leave:
            QToolTip.hideText()
        return False
