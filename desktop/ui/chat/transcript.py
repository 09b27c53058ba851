"""The chat transcript: each turn under its role, finished replies rendered as Markdown.

A streaming reply is appended as plain text (cheap, incremental); when it ends it is replaced by its
Markdown rendering. ``toPlainText()`` reads as the conversation: "You", the message, "Assistant", the reply.
Raw HTML in a reply is not interpreted (a model's output must never become active content). A special
token the model wrote (``<start_of_image>``) is styled as the exact-inputs view styles it, and the role
titles take the theme's colours again when it changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from PySide6.QtCore import QEvent
from PySide6.QtGui import (
    QColor,
    QFont,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from desktop.core.special_tokens import DEFAULT_PATTERN, special_token_pattern
from desktop.ui.widgets.theme import is_dark
from desktop.ui.widgets.token_format import apply_special

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
_MARKDOWN = QTextDocument.MarkdownFeature(QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
                                          | QTextDocument.MarkdownFeature.MarkdownNoHTML.value)
_ROLE_PROPERTY = 0x100200  # QTextFormat.UserProperty + n: a title's role, to recolour it on a theme change
_SPECIAL_PROPERTY = 0x100201  # a special token's format


class ChatTranscript(QTextBrowser):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setAccessibleName("Conversation")
        self.setOpenExternalLinks(True)
        self.setOpenLinks(True)
        self.setUndoRedoEnabled(False)
        self._reply_start: int | None = None
        self._special: re.Pattern[str] = DEFAULT_PATTERN
        self.document().setDocumentMargin(12)

    def set_special_tokens(self, texts: Iterable[str]) -> None:
        """Add a model's own special-token texts (its BOS/EOS) to the generic marker shapes."""
        self._special = special_token_pattern(texts)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # a theme switch: the titles' colours were set for the old one
            self._recolor()

    def _role_color(self, role: str) -> QColor:
        dark = is_dark(self)  # the role colours, light enough to read on a dark page
        accent = {"user": QColor("#63c497" if dark else "#2e7d5b"),
                  "assistant": QColor("#86a5f5" if dark else "#3d5fb8")}.get(role)
        return accent or self.palette().color(QPalette.ColorRole.PlaceholderText)

    def _recolor(self) -> None:
        """Give every title and special token the current theme's colours (their formats hold colours)."""
        dark = is_dark(self)
        cursor = QTextCursor(self.document())
        block = self.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                fmt = frag.charFormat()
                if fmt.hasProperty(_ROLE_PROPERTY) or fmt.hasProperty(_SPECIAL_PROPERTY):
                    if fmt.hasProperty(_ROLE_PROPERTY):
                        fmt.setForeground(self._role_color(str(fmt.property(_ROLE_PROPERTY))))
                    else:
                        fmt.clearBackground()
                        apply_special(fmt, dark)
                    cursor.setPosition(frag.position())
                    cursor.setPosition(frag.position() + frag.length(), QTextCursor.MoveMode.KeepAnchor)
                    cursor.setCharFormat(fmt)
                it += 1
            block = block.next()

    def _style_special(self, start: int, end: int) -> None:
        """Style the special tokens in document positions [start, end) (a model's reply)."""
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        part = cursor.selectedText()  # one character per position (a block break is U+2029)
        dark = is_dark(self)
        for m in self._special.finditer(part):
            lo = start + len(part[:m.start()].encode("utf-16-le")) // 2
            cursor.setPosition(lo)
            cursor.setPosition(lo + len(m.group().encode("utf-16-le")) // 2, QTextCursor.MoveMode.KeepAnchor)
            fmt = QTextCharFormat()
            fmt.setProperty(_SPECIAL_PROPERTY, True)
            cursor.mergeCharFormat(apply_special(fmt, dark))

    # --- building blocks -------------------------------------------------------------------------

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _header(self, role: str) -> QTextCursor:
        cursor = self._end_cursor()
        empty = self.document().isEmpty()
        block = QTextBlockFormat()
        block.setTopMargin(0 if empty else 14)
        block.setBottomMargin(2)
        fmt = QTextCharFormat()
        fmt.setFontWeight(QFont.Weight.Bold)
        fmt.setForeground(self._role_color(role))
        fmt.setProperty(_ROLE_PROPERTY, role)
        if empty:
            cursor.setBlockFormat(block)
            cursor.setBlockCharFormat(fmt)
        else:
            cursor.insertBlock(block, fmt)
        cursor.insertText(ROLE_TITLES.get(role, role.title()), fmt)
        cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        return cursor

    def _insert_markdown(self, cursor: QTextCursor, text: str) -> None:
        if text.strip():
            cursor.insertFragment(QTextDocumentFragment.fromMarkdown(text, _MARKDOWN))
        else:
            cursor.insertText("(empty reply)")

    # --- API -------------------------------------------------------------------------------------

    def clear_all(self) -> None:
        self.clear()
        self._reply_start = None

    def add_message(self, role: str, content: str, note: str = "") -> None:
        """A finished message: the user's text as typed, the assistant's rendered as Markdown."""
        cursor = self._header(role)
        if role == "assistant":
            start = cursor.position()
            self._insert_markdown(cursor, content)
            self._style_special(start, cursor.position())
        else:
            cursor.insertText(content)
        self._insert_note(cursor, note)
        self._scroll_to_end()

    def _insert_note(self, cursor: QTextCursor, note: str) -> None:
        if note:
            muted = QTextCharFormat()
            muted.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
            muted.setFontItalic(True)
            cursor.insertBlock(QTextBlockFormat(), muted)
            cursor.insertText(note, muted)

    def set_messages(self, messages: list[tuple[str, str, str]]) -> None:
        """Rebuild from (role, content, note) triples."""
        self.clear_all()
        for role, content, note in messages:
            self.add_message(role, content, note)

    def begin_reply(self) -> None:
        cursor = self._header("assistant")
        self._reply_start = cursor.position()
        self._scroll_to_end()

    def append_reply(self, text: str) -> None:
        if self._reply_start is None or not text:
            return
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = self._end_cursor()
        cursor.insertText(text, QTextCharFormat())
        # the line so far: a marker may arrive in two pieces
        self._style_special(max(self._reply_start, cursor.block().position()), cursor.position())
        if at_bottom:
            bar.setValue(bar.maximum())

    def finish_reply(self, text: str, note: str = "") -> None:
        """Replace the streamed plain text with the reply's Markdown rendering."""
        if self._reply_start is None:
            self.add_message("assistant", text, note)
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._reply_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        self._insert_markdown(cursor, text)
        self._style_special(self._reply_start, cursor.position())
        self._insert_note(cursor, note)
        self._reply_start = None
        self._scroll_to_end()

    def discard_reply(self) -> None:
        """Remove a reply that produced nothing (its header too)."""
        if self._reply_start is None:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._reply_start)
        cursor.movePosition(QTextCursor.MoveOperation.PreviousBlock)
        cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock)
        if cursor.position() > 0:  # take the separator before the header as well
            cursor.movePosition(QTextCursor.MoveOperation.PreviousCharacter)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        self._reply_start = None

    @property
    def streaming(self) -> bool:
        return self._reply_start is not None

    def _scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
