"""The Completion pane's widgets, built apart from its behaviour: the model bar with the token-view switch,
the notices, the document editor with its token tracker, Generate/Stop with the stats line, and the history
sidebar.

``CompletionWidgets`` builds and lays them out and connects nothing: the pane wires them to its behaviour,
like the other pages' ``*_layout`` modules (``ChatWidgets``, ``CompareWidgets``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton

from desktop.compare.pane_model import PaneModel
from desktop.ui.runtime.context import AppContext
from desktop.ui.widgets.history_sidebar import HistorySidebar
from desktop.ui.widgets.model_bar import ModelBar
from desktop.ui.widgets.notice import Notice
from desktop.ui.widgets.token_view import TokenTracker


class CompletionWidgets:
    """Every widget of the Completion pane; ``header`` and ``actions`` are the rows above and below the editor,
    ``model`` the pane's PaneModel the model bar shows."""

    def __init__(self, context: AppContext, model: PaneModel):
        self.header = self._build_header(context, model)
        self._build_editor()
        self.actions = self._build_actions()
        self.sidebar = HistorySidebar(context.history, "document")

    def _build_header(self, context: AppContext, model: PaneModel) -> QHBoxLayout:
        """The model bar and the token-view switch, over the model's notice."""
        self.model_bar = ModelBar(context, model, owner="completion")
        self.token_toggle = QCheckBox("Token probabilities")
        self.token_toggle.setObjectName("tokenViewToggle")
        self.token_toggle.setToolTip("Colour each generated token by how likely the model found it; hover "
                                     "a token for the alternatives, click one to continue from it.")
        header = QHBoxLayout()
        header.addWidget(self.model_bar, 1)
        header.addWidget(self.token_toggle)
        self.model_notice = Notice("modelNotice")
        self.notice = Notice("completionNotice")
        return header

    def _build_editor(self) -> None:
        """The notebook: the document, its token tracker."""
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("promptEditor")
        self.editor.setAccessibleName("Document")
        self.editor.setPlaceholderText(
            "Write the beginning of a text and press Generate (Ctrl+Enter): the model continues it.\n\n"
            "A base model completes text: start a story, a list, a Q&A, code…")
        font = QFont(self.editor.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.editor.setFont(font)
        self.tracker = TokenTracker(self.editor)

    def _build_actions(self) -> QHBoxLayout:
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setToolTip("Continue the document from its end (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop generating; the text so far is kept (Esc)")
        self.stop_button.setEnabled(False)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("statsLabel")
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        actions = QHBoxLayout()
        actions.addWidget(self.generate_button)
        actions.addWidget(self.stop_button)
        actions.addWidget(self.stats_label, 1)
        return actions
