"""The exact text a model receives, with its special tokens highlighted.

A chat model is still "just" completing text: its chat template wraps each turn in special tokens
(``<|im_start|>``, ``[INST]``, ``<start_of_turn>`` …). This view shows that text verbatim and makes the
tokens stand out. Reusable: the Chat pane's "Show prompt" and Compare's inputs view.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from PySide6.QtGui import QColor, QFont, QFontDatabase, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from desktop.core.special_tokens import special_token_pattern

__all__ = ["PromptView", "special_token_pattern", "special_tokens_in"]


def special_tokens_in(text: str, extra: Iterable[str] = ()) -> list[str]:
    return special_token_pattern(extra).findall(text)


class _Highlighter(QSyntaxHighlighter):
    def __init__(self, document, pattern: re.Pattern[str]):
        super().__init__(document)
        self.pattern = pattern
        self.fmt = QTextCharFormat()
        self.fmt.setForeground(QColor("#c2185b"))
        self.fmt.setBackground(QColor(194, 24, 91, 40))
        self.fmt.setFontWeight(QFont.Weight.Bold)

    def highlightBlock(self, text: str) -> None:
        for match in self.pattern.finditer(text):
            # QSyntaxHighlighter positions are UTF-16 units; convert from Python's code points
            start = len(text[: match.start()].encode("utf-16-le")) // 2
            length = len(match.group().encode("utf-16-le")) // 2
            self.setFormat(start, length, self.fmt)


class PromptView(QPlainTextEdit):
    """Read-only, monospaced, special tokens highlighted; ``set_prompt()`` replaces the text."""

    def __init__(self, parent: QWidget | None = None, object_name: str = "promptView"):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText("The exact prompt appears here once a model is loaded.")
        self._highlighter = _Highlighter(self.document(), special_token_pattern())

    def set_special_tokens(self, tokens: Iterable[str]) -> None:
        self._highlighter.pattern = special_token_pattern(tokens)
        self._highlighter.rehighlight()

    def set_prompt(self, text: str) -> None:
        if text != self.toPlainText():
            bar = self.verticalScrollBar()
            at_bottom = bar.value() >= bar.maximum() - 4
            self.setPlainText(text)
            if at_bottom:
                bar.setValue(bar.maximum())

    def highlighted_tokens(self) -> list[str]:
        """The special tokens the view highlights in its current text (tests, accessibility)."""
        return self._highlighter.pattern.findall(self.toPlainText())
