"""The Chat pane's widgets and how they sit together, built apart from the pane's behaviour: the model bar
and "Show prompt", the system prompt, the transcript over the prompt view, the input with its buttons, the
sampling panel and the history sidebar. The pane connects them (desktop/ui/chat/chat_pane.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.compare.pane_model import PaneModel
from desktop.engine.types import SamplingParams
from desktop.ui.chat.transcript import ChatTranscript
from desktop.ui.runtime.context import AppContext
from desktop.ui.widgets.history_sidebar import HistorySidebar
from desktop.ui.widgets.model_bar import ModelBar
from desktop.ui.widgets.notice import Notice
from desktop.ui.widgets.prompt_view import PromptView
from desktop.ui.widgets.sampling_panel import SamplingPanel


class ChatWidgets:
    """Every widget of the Chat pane, laid out; ``center`` is the middle column."""

    def __init__(self, context: AppContext, model: PaneModel):
        self.model_bar = ModelBar(context, model, owner="chat")
        self._header()
        self._conversation()
        self._input()
        self._center()
        self.sampling = SamplingPanel(SamplingParams(temperature=0.7, max_tokens=512))
        self.sidebar = HistorySidebar(context.history, "chat")

    def _header(self) -> None:
        self.show_prompt_button = QPushButton("Show prompt")
        self.show_prompt_button.setObjectName("showPromptButton")
        self.show_prompt_button.setCheckable(True)
        self.show_prompt_button.setToolTip("Show the exact text the model receives after its chat template")
        self.header = header = QHBoxLayout()
        header.addWidget(self.model_bar, 1)
        header.addWidget(self.show_prompt_button)
        self.model_notice = Notice("modelNotice")
        self.notice = Notice("chatNotice")

        self.system_toggle = QToolButton()
        self.system_toggle.setObjectName("systemPromptToggle")
        self.system_toggle.setCheckable(True)
        self.system_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.system_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.system_toggle.setAutoRaise(True)
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setObjectName("systemPrompt")
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("Optional instructions for the whole conversation, "
                                              "e.g. “Answer in one sentence.”")
        self.system_prompt.setFixedHeight(64)
        self.system_prompt.setVisible(False)

    def _conversation(self) -> None:
        self.transcript = ChatTranscript()
        self.transcript.setPlaceholderText("Pick an instruct model and say something. The reply streams here.")

        self.prompt_view = PromptView()
        prompt_box = QWidget()
        prompt_box.setObjectName("promptPanel")
        prompt_layout = QVBoxLayout(prompt_box)
        prompt_layout.setContentsMargins(0, 4, 0, 0)
        self.prompt_caption = QLabel("<b>What the model sees</b> — the conversation after its chat template, "
                                     "special tokens highlighted. The model just continues this text.")
        self.prompt_caption.setWordWrap(True)
        prompt_layout.addWidget(self.prompt_caption)
        prompt_layout.addWidget(self.prompt_view, 1)
        prompt_box.setVisible(False)
        self.prompt_box = prompt_box
        self.conversation_split = QSplitter(Qt.Orientation.Vertical)
        self.conversation_split.setObjectName("conversationSplitter")
        self.conversation_split.addWidget(self.transcript)
        self.conversation_split.addWidget(prompt_box)
        self.conversation_split.setCollapsible(0, False)
        self.conversation_split.setSizes([420, 260])

    def _input(self) -> None:
        self.input = QPlainTextEdit()
        self.input.setObjectName("messageInput")
        self.input.setAccessibleName("Message")
        self.input.setPlaceholderText("Message (Ctrl+Enter to send)")
        self.input.setFixedHeight(80)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.setToolTip("Send the message (Ctrl+Enter)")
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the reply; what was said is kept (Esc)")
        self.stop_button.setEnabled(False)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setObjectName("regenerateButton")
        self.regenerate_button.setToolTip("Replace the last reply with a new one")
        self.edit_button = QPushButton("Edit last")
        self.edit_button.setObjectName("editLastButton")
        self.edit_button.setToolTip("Take your last message back into the input to change and resend it")
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        self.input_row = input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(buttons)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("statsLabel")
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.below = below = QHBoxLayout()
        below.addWidget(self.regenerate_button)
        below.addWidget(self.edit_button)
        below.addWidget(self.stats_label, 1)

    def _center(self) -> None:
        self.center = center = QWidget()
        col = QVBoxLayout(center)
        col.setContentsMargins(8, 8, 8, 8)
        col.addLayout(self.header)
        col.addWidget(self.model_notice)
        col.addWidget(self.system_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        col.addWidget(self.system_prompt)
        col.addWidget(self.conversation_split, 1)
        col.addWidget(self.notice)
        col.addLayout(self.input_row)
        col.addLayout(self.below)
