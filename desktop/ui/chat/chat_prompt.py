"""The Chat pane's system prompt and its "Show prompt" view: the exact templated text the next request sends,
rendered off the GUI thread; a template the model can't render is said in the model notice.

A mixin of ``ChatPane`` (it uses the pane's widgets, turns and timers), split from ``chat_pane`` so that the
pane keeps to the conversation and its reply.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop.core.errors import ChatTemplateError
from desktop.core.history import title_from_text
from desktop.ui.runtime.workers import run_in_thread
from desktop.ui.widgets.stats import error_text


class ChatPrompt:
    """The system prompt toggle and the prompt view, for ``ChatPane``."""

    def _on_system_toggle(self, shown: bool) -> None:
        self.system_prompt.setVisible(shown)
        self.system_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _on_system_changed(self) -> None:
        self._update_system_toggle()
        self._render_timer.start()
        self._save_state_later()

    def _update_system_toggle(self) -> None:
        text = self.system_prompt.toPlainText().strip()
        self.system_toggle.setText("System prompt" + (f": {title_from_text(text, 70)}" if text else " (none)"))

    def _on_show_prompt(self, shown: bool) -> None:
        self.prompt_box.setVisible(shown)
        if shown:
            self.update_prompt_view()
        self._save_state_later()

    def update_prompt_view(self, check_template: bool = False) -> None:
        """Render the conversation (as the next request would send it) off the GUI thread."""
        handle = self.model.handle
        if handle is None or (not self.prompt_box.isVisible() and not check_template):
            return
        if self.is_generating():
            return  # the running job reports the prompt it used; refreshed when it ends
        if not handle.capabilities.server_template:  # the server templates the chat itself: say so
            self.prompt_view.set_prompt("")
            self.prompt_view.setPlaceholderText(f"Can't show the prompt: {handle.capabilities.template_note}.")
            return
        messages = [{"role": t.role, "content": t.content} for t in self.turns]
        system = self.system_prompt.toPlainText().strip() or None
        if self._render_call is not None:
            self._render_call.discard()

        def done(text: str) -> None:
            self.prompt_view.set_prompt(text)
            if self.model_notice.level == "error":
                self.model_notice.clear()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, ChatTemplateError):
                self.model_notice.show_message(str(exc), "error")
            self.prompt_view.set_prompt("")
            self.prompt_view.setPlaceholderText(error_text(exc))

        self._render_call = run_in_thread(lambda: handle.render_chat(messages, system=system), done, failed,
                                          name="tandem-render")
