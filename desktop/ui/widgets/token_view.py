"""Generated tokens inside a text editor: marking, colouring by probability, and the alternatives.

A ``TokenTracker`` attaches to any QPlainTextEdit or QTextEdit (the Completion editor, a Compare column)
and appends streamed ``TokenEvent``s at the end of its document, remembering where each token lies. It then:

- marks generated text with a soft tint (mode ``"marked"``) until the person edits it;
- colours each token by the probability the model gave it (mode ``"probability"``): green = sure,
  yellow = hesitant, red = surprising;
- on hover (probability mode) shows the top-k alternatives the model considered, with probabilities;
- on click (probability mode) offers those alternatives in a menu and emits ``alternativeChosen`` so the
  owner can replace the text from that token on and continue;
- styles a token the model wrote that is a special token (``<start_of_image>``, ``<|im_end|>``) as the
  exact-inputs view does, in every mode: a marker, not text (``desktop.core.special_tokens``).

Positions are document positions; a person's edit shifts the tokens after it and drops the tokens it
touches (their mark goes away: the text is theirs now). Insertions happen in one edit block per batch, so a
long stream costs one layout pass per frame.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QTimer, Signal
from PySide6.QtGui import QCursor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QTextEdit, QToolTip

from desktop.core.special_tokens import DEFAULT_PATTERN, is_special, special_token_pattern
from desktop.engine.types import TokenEvent, TopToken
from desktop.ui.widgets.theme import is_dark
from desktop.ui.widgets.token_format import (  # noqa: F401 (percent, visible_token: this module's API too)
    alternatives_html,
    apply_special,
    marked_color,
    percent,
    probability_color,
    visible_token,
)

Mode = Literal["plain", "marked", "probability"]
_GENERATED_PROPERTY = 0x100100  # QTextFormat.UserProperty + n: tags our formats


@dataclass(frozen=True, slots=True)
class TokenSpan:
    """A generated token's place in the document, with what the model thought of it."""

    start: int
    end: int
    text: str
    logprob: float | None = None
    top: tuple[TopToken, ...] = ()
    special: bool = False  # the token is a special token as a whole (styled as a marker)

    @property
    def probability(self) -> float | None:
        return math.exp(self.logprob) if self.logprob is not None and math.isfinite(self.logprob) else None

    def moved(self, delta: int) -> TokenSpan:
        return TokenSpan(self.start + delta, self.end + delta, self.text, self.logprob, self.top, self.special)


class TokenTracker(QObject):
    """Streams tokens into an editor and keeps their spans; see the module docstring."""

    alternativeChosen = Signal(int, str)  # token index, the alternative's text
    tokensDropped = Signal(int)  # how many tokens a person's edit removed from tracking

    def __init__(self, editor: QPlainTextEdit | QTextEdit, interactive: bool = True):
        super().__init__(editor)
        self.editor = editor
        self.interactive = interactive
        self._spans: list[TokenSpan] = []
        self._starts: list[int] = []
        self._mode: Mode = "marked"
        self._special: re.Pattern[str] = DEFAULT_PATTERN
        self._internal = 0
        self.document().contentsChange.connect(self._on_contents_change)
        editor.cursorPositionChanged.connect(self._plain_typing)
        editor.viewport().setMouseTracking(True)
        editor.viewport().installEventFilter(self)

    def document(self):
        return self.editor.document()

    # --- reading ---------------------------------------------------------------------------------

    @property
    def spans(self) -> list[TokenSpan]:
        return list(self._spans)

    @property
    def mode(self) -> Mode:
        return self._mode

    def __len__(self) -> int:
        return len(self._spans)

    def index_at(self, position: int) -> int | None:
        """The token covering the character at ``position``, if it is a generated one."""
        i = bisect.bisect_right(self._starts, position) - 1
        if 0 <= i < len(self._spans) and self._spans[i].start <= position < self._spans[i].end:
            return i
        return None

    def marked_ranges(self) -> list[tuple[int, int]]:
        """Generated text as merged (start, end) ranges (saved with a document)."""
        ranges: list[tuple[int, int]] = []
        for s in self._spans:
            if ranges and ranges[-1][1] == s.start:
                ranges[-1] = (ranges[-1][0], s.end)
            else:
                ranges.append((s.start, s.end))
        return ranges

    # --- writing ---------------------------------------------------------------------------------

    def append(self, events: Iterable[TokenEvent]) -> None:
        """Insert tokens at the end of the document, in one edit block."""
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        dark = is_dark(self.editor)
        shared = None if self._mode == "probability" else self._format_for(None, dark)  # one for all
        self._internal += 1
        try:
            cursor.beginEditBlock()
            for event in events:
                start = cursor.position()
                special = is_special(event.text, self._special)
                span = TokenSpan(start, start, event.text, event.logprob, event.top, special)
                if event.text:
                    cursor.insertText(event.text, shared if shared and not special else self._format_for(span, dark))
                span = TokenSpan(start, cursor.position(), event.text, event.logprob, event.top, special)
                if span.end > span.start:
                    self._spans.append(span)
                    self._starts.append(span.start)
            cursor.endEditBlock()
        finally:
            self._internal -= 1

    def restore_marks(self, ranges: Sequence[Sequence[int]]) -> None:
        """Mark ranges of an existing document as generated (no probabilities: they were not saved)."""
        length = self.document().characterCount() - 1
        self.clear()
        text = self.document().toPlainText()
        for start, end in ranges:
            start, end = max(0, int(start)), min(length, int(end))
            if end > start and (not self._spans or start >= self._spans[-1].end):
                for piece in self._split_special(text, start, end):
                    self._spans.append(piece)
                    self._starts.append(piece.start)
        self._apply_formats()

    def _split_special(self, text: str, start: int, end: int) -> list[TokenSpan]:
        """A restored range as spans, its special tokens (found by their text) spans of their own."""
        units = text.encode("utf-16-le")  # document positions count UTF-16 units, Python strings code points
        part = units[2 * start:2 * end].decode("utf-16-le", "replace")
        out, at = [], start
        for m in self._special.finditer(part):
            lo = start + len(part[:m.start()].encode("utf-16-le")) // 2
            hi = lo + len(m.group().encode("utf-16-le")) // 2
            if lo > at:
                out.append(TokenSpan(at, lo, ""))
            out.append(TokenSpan(lo, hi, m.group(), special=True))
            at = hi
        if end > at:
            out.append(TokenSpan(at, end, ""))
        return out

    def clear(self) -> None:
        """Forget every token (the text stays); its marking goes with it."""
        if self._spans:
            self._clear_format(self._spans[0].start, self._spans[-1].end)
        self._spans.clear()
        self._starts.clear()

    def truncate_from(self, index: int) -> int:
        """Delete the document from token ``index`` to the end; returns the position it started at."""
        start = self._spans[index].start
        self._spans = self._spans[:index]
        self._starts = self._starts[:index]
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        self._internal += 1
        try:
            cursor.removeSelectedText()
        finally:
            self._internal -= 1
        return start

    def set_special_tokens(self, texts: Iterable[str]) -> None:
        """Add a model's own special-token texts (its BOS/EOS) to the generic marker shapes."""
        self._special = special_token_pattern(texts)

    def set_mode(self, mode: Mode) -> None:
        if mode != self._mode:
            self._mode = mode
            self._apply_formats()
            if mode != "probability":
                QToolTip.hideText()

    # --- formats ---------------------------------------------------------------------------------

    def _format_for(self, span: TokenSpan | None, dark: bool) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setProperty(_GENERATED_PROPERTY, True)
        if self._mode == "probability" and span is not None:
            fmt.setBackground(probability_color(span.probability, dark))
        elif self._mode == "marked":
            fmt.setBackground(marked_color(self.editor))
        if span is not None and span.special:
            apply_special(fmt, dark)
        return fmt

    def _apply_formats(self) -> None:
        if not self._spans:
            return
        dark = is_dark(self.editor)
        cursor = QTextCursor(self.document())
        self._internal += 1
        try:
            cursor.beginEditBlock()
            if self._mode == "marked":  # one format for runs of adjacent tokens: fewer, larger ranges
                fmt = self._format_for(None, dark)
                for start, end in self.marked_ranges():
                    cursor.setPosition(start)
                    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                    cursor.setCharFormat(fmt)
                for span in self._spans:
                    if span.special:
                        cursor.setPosition(span.start)
                        cursor.setPosition(span.end, QTextCursor.MoveMode.KeepAnchor)
                        cursor.setCharFormat(self._format_for(span, dark))
            else:
                for span in self._spans:
                    cursor.setPosition(span.start)
                    cursor.setPosition(span.end, QTextCursor.MoveMode.KeepAnchor)
                    cursor.setCharFormat(self._format_for(span, dark))
            cursor.endEditBlock()
        finally:
            self._internal -= 1

    def _clear_format(self, start: int, end: int) -> None:
        end = min(end, self.document().characterCount() - 1)
        if end <= start:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        self._internal += 1
        try:
            cursor.setCharFormat(QTextCharFormat())
        finally:
            self._internal -= 1

    def _plain_typing(self) -> None:
        """Text a person types after generated text must not inherit its tint."""
        if not self._internal and self.editor.currentCharFormat().hasProperty(_GENERATED_PROPERTY):
            self.editor.setCurrentCharFormat(QTextCharFormat())

    # --- a person's edits ------------------------------------------------------------------------

    def _on_contents_change(self, position: int, removed: int, added: int) -> None:
        if self._internal or not self._spans or (removed == 0 and added == 0):
            return
        end_removed = position + removed
        delta = added - removed
        keep: list[TokenSpan] = []
        dropped: list[TokenSpan] = []
        for span in self._spans:
            if span.end <= position:
                keep.append(span)
            elif span.start >= end_removed:  # includes an insertion right before the token
                keep.append(span.moved(delta))
            else:
                dropped.append(span)
        if not dropped and delta == 0:
            return
        self._spans = keep
        self._starts = [s.start for s in keep]
        if dropped:
            # Re-format outside the signal handler: the document is mid-change here.
            ranges = [(position, position + added)]
            QTimer.singleShot(0, lambda: self._forget_ranges(ranges))
            self.tokensDropped.emit(len(dropped))

    def _forget_ranges(self, ranges: list[tuple[int, int]]) -> None:
        for start, end in ranges:
            # only clear text no tracked token covers any more
            for span in self._spans:
                if span.start < end and span.end > start:
                    break
            else:
                self._clear_format(start, end)
        # the remains of partly edited tokens keep a stale tint: clear whatever lies between spans
        self._clear_untracked()

    def _clear_untracked(self) -> None:
        doc_end = self.document().characterCount() - 1
        previous = 0
        gaps = []
        for span in self._spans:
            if span.start > previous:
                gaps.append((previous, span.start))
            previous = span.end
        gaps.append((previous, doc_end))
        block = self.document().begin()
        tinted: list[tuple[int, int]] = []
        while block.isValid():  # only touch fragments that carry our tag
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                if frag.isValid() and frag.charFormat().hasProperty(_GENERATED_PROPERTY):
                    tinted.append((frag.position(), frag.position() + frag.length()))
                it += 1
            block = block.next()
        for f_start, f_end in tinted:
            for g_start, g_end in gaps:
                lo, hi = max(f_start, g_start), min(f_end, g_end)
                if hi > lo:
                    self._clear_format(lo, hi)

    # --- hover and click -------------------------------------------------------------------------

    def _span_under(self, pos: QPoint) -> int | None:
        cursor = self.editor.cursorForPosition(pos)
        position = cursor.position()
        if self.editor.cursorRect(cursor).center().x() > pos.x() and position > 0:
            position -= 1  # the mouse is over the character before the cursor position
        return self.index_at(position)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._mode != "probability" or not self._spans:
            return False
        etype = event.type()
        if etype == QEvent.Type.MouseMove:
            index = self._span_under(event.position().toPoint())
            if index is None:
                QToolTip.hideText()
            else:
                self._show_tooltip(index, event.position().toPoint())
        elif etype == QEvent.Type.MouseButtonRelease and self.interactive:
            index = self._span_under(event.position().toPoint())
            if index is not None and self._spans[index].top and not self.editor.isReadOnly() \
                    and not self.editor.textCursor().hasSelection():
                QToolTip.hideText()
                self.show_alternatives_menu(index, self.editor.viewport().mapToGlobal(event.position().toPoint()))
                return True
        elif etype == QEvent.Type.Leave:
            QToolTip.hideText()
        return False

    def _show_tooltip(self, index: int, pos: QPoint) -> None:
        span = self._spans[index]
        cursor = QTextCursor(self.document())
        cursor.setPosition(span.start)
        rect = self.editor.cursorRect(cursor)
        cursor.setPosition(span.end)
        end_rect = self.editor.cursorRect(cursor)
        area = QRect(rect.topLeft(), end_rect.bottomRight()) if end_rect.top() == rect.top() else rect
        QToolTip.showText(self.editor.viewport().mapToGlobal(pos), alternatives_html(span),
                          self.editor.viewport(), area.adjusted(-2, -2, 2, 2))

    def alternatives(self, index: int) -> list[TopToken]:
        """The alternatives offered for token ``index``, most likely first, without the chosen token."""
        span = self._spans[index]
        return [alt for alt in span.top if alt.text != span.text]

    def show_alternatives_menu(self, index: int, global_pos: QPoint | None = None) -> QMenu:
        menu = QMenu(self.editor)
        menu.setObjectName("alternativesMenu")
        alts = self.alternatives(index)
        if not alts:
            action = menu.addAction("No other alternatives were recorded")
            action.setEnabled(False)
        for alt in alts:
            p = math.exp(alt.logprob) if math.isfinite(alt.logprob) else 0.0
            action = menu.addAction(f"{visible_token(alt.text)}    {percent(p)}")
            action.triggered.connect(lambda _=False, text=alt.text: self.alternativeChosen.emit(index, text))
        menu.popup(global_pos or QCursor.pos())
        return menu
