"""The chat transcript: each turn under its role, finished replies rendered as Markdown.

A streaming reply is appended as plain text (cheap, incremental); when it ends it is replaced by its
Markdown rendering. ``toPlainText()`` reads as the conversation: "You", the message, "Assistant", the reply.
Raw HTML in a reply is not interpreted (a model's output must never become active content).
"""

from __future__ import annotations

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

from desktop.ui.widgets.theme import is_dark

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
_MARKDOWN = QTextDocument.MarkdownFeature(QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
                                          | QTextDocument.MarkdownFeature.MarkdownNoHTML.value)


class ChatTranscript(QTextBrowser):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setAccessibleName("Conversation")
        self.setOpenExternalLinks(True)
        self.setOpenLinks(True)
        self.setUndoRedoEnabled(False)
        self._reply_start: int | None = None
        self.document().setDocumentMargin(12)

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
        dark = is_dark(self)  # the role colours, light enough to read on a dark page
        accent = {"user": QColor("#63c497" if dark else "#2e7d5b"),
                  "assistant": QColor("#86a5f5" if dark else "#3d5fb8")}.get(role)
        fmt.setForeground(accent or self.palette().color(QPalette.ColorRole.PlaceholderText))
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
            self._insert_markdown(cursor, content)
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
        self._end_cursor().insertText(text, QTextCharFormat())
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
