"""The Chat pane's system prompt and its "Show prompt" view: the exact templated text the next request sends,
rendered off the GUI thread; a template the model can't render is said in the model notice.

``PromptPreview`` is a controller: it takes the pane's widgets, its model and two reads of the pane (the
turns so far, whether a reply is streaming) and owns its state (the render on its way, the debounce timer).
The pane keeps to the conversation and its reply.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt

from desktop.compare.pane_model import PaneModel
from desktop.core.errors import ChatTemplateError
from desktop.core.history import title_from_text
from desktop.ui.chat.chat_layout import ChatWidgets
from desktop.ui.chat.conversation import Turn
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.layout import make_timer
from desktop.ui.widgets.stats import error_text

RENDER_AFTER_MS = 300


class PromptPreview:
    """The system prompt toggle and the prompt view of a Chat pane. ``state_changed()`` is called when the
    system prompt or the view's visibility changed (the pane saves its state)."""

    def __init__(self, widgets: ChatWidgets, model: PaneModel, turns: Callable[[], list[Turn]],
                 is_generating: Callable[[], bool], state_changed: Callable[[], None], parent: QObject):
        self.widgets, self.model, self.turns = widgets, model, turns
        self.is_generating, self.state_changed = is_generating, state_changed
        self._call: Call | None = None
        self._timer = make_timer(parent, RENDER_AFTER_MS, self.update)
        widgets.show_prompt_button.toggled.connect(self._on_show_prompt)
        widgets.system_toggle.toggled.connect(self._on_system_toggle)
        widgets.system_prompt.textChanged.connect(self._on_system_changed)
        self.update_system_toggle()

    def schedule(self) -> None:
        """Render again soon (the conversation changed)."""
        self._timer.start()

    def _on_system_toggle(self, shown: bool) -> None:
        self.widgets.system_prompt.setVisible(shown)
        self.widgets.system_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _on_system_changed(self) -> None:
        self.update_system_toggle()
        self._timer.start()
        self.state_changed()

    def update_system_toggle(self) -> None:
        text = self.widgets.system_prompt.toPlainText().strip()
        self.widgets.system_toggle.setText("System prompt" + (f": {title_from_text(text, 70)}" if text else " (none)"))

    def _on_show_prompt(self, shown: bool) -> None:
        self.widgets.prompt_box.setVisible(shown)
        if shown:
            self.update()
        self.state_changed()

    def update(self, check_template: bool = False) -> None:
        """Render the conversation (as the next request would send it) off the GUI thread."""
        w, handle = self.widgets, self.model.handle
        if handle is None or (not w.prompt_box.isVisible() and not check_template):
            return
        if self.is_generating():
            return  # the running job reports the prompt it used; refreshed when it ends
        if not handle.capabilities.server_template:  # the server templates the chat itself: say so
            w.prompt_view.set_prompt("")
            w.prompt_view.setPlaceholderText(f"Can't show the prompt: {handle.capabilities.template_note}.")
            return
        messages = [{"role": t.role, "content": t.content} for t in self.turns()]
        system = w.system_prompt.toPlainText().strip() or None
        if self._call is not None:
            self._call.discard()

        def done(text: str) -> None:
            w.prompt_view.set_prompt(text)
            if w.model_notice.level == "error":
                w.model_notice.clear()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, ChatTemplateError):
                w.model_notice.show_message(str(exc), "error")
            w.prompt_view.set_prompt("")
            w.prompt_view.setPlaceholderText(error_text(exc))

        self._call = run_in_thread(lambda: handle.render_chat(messages, system=system), done, failed,
                                   name="tandem-render")
