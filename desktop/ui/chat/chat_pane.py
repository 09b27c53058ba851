"""The Chat pane: a conversation with an instruct model through its own chat template.

Send adds your message and streams the reply; Stop keeps what was said; Regenerate replaces the last
reply; Edit last takes your last message back into the input to change and resend. "Show prompt" shows the
exact templated text the model receives, special tokens highlighted, updated as the conversation grows.
When the conversation no longer fits the context, the oldest turns are left out (the system prompt is kept)
and the pane says so. A base model has no chat template: the engine's refusal is shown here.
The system prompt and the prompt view are ``chat_prompt.PromptPreview``, a controller the pane builds; the
loaded model is the pane's ``PaneModel`` (``self.model``).
"""

from __future__ import annotations

import time

from PySide6.QtWidgets import (
    QWidget,
)

from desktop.core.errors import EngineCrashed, HistoryError
from desktop.core.history import title_from_text
from desktop.engine.backends import special_texts
from desktop.engine.types import FinalEvent, TokenEvent
from desktop.ui.chat.chat_layout import ChatWidgets
from desktop.ui.chat.chat_prompt import PromptPreview
from desktop.ui.chat.conversation import Turn, fit_conversation, note_for
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.workers import JobControl, StreamJob, say_if_waiting
from desktop.ui.widgets.layout import make_timer, three_columns
from desktop.ui.widgets.page import SingleModelPage
from desktop.ui.widgets.stats import describe_final, error_text

STATE_KEY = "chat"
SAVE_EVERY_S = 1.0


class ChatPane(SingleModelPage):
    state_key = STATE_KEY

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(context, parent)
        self.setObjectName("chatPane")
        self.turns: list[Turn] = []
        self.chat_id: int | None = None
        self._reply_id: int | None = None
        self._reply_parts: list[str] = []
        self._last_save = 0.0
        self._pending_reply = False

        w = ChatWidgets(context, self.model)
        self.model_bar = w.model_bar
        self.show_prompt_button = w.show_prompt_button
        self.model_notice = w.model_notice
        self.notice = w.notice
        self.system_toggle = w.system_toggle
        self.system_prompt = w.system_prompt
        self.transcript = w.transcript
        self.input = w.input
        self.send_button = w.send_button
        self.stop_button = w.stop_button
        self.regenerate_button = w.regenerate_button
        self.edit_button = w.edit_button
        self.stats_label = w.stats_label
        self.prompt_view = w.prompt_view
        self.prompt_caption = w.prompt_caption
        self.prompt_box = w.prompt_box
        self.conversation_split = w.conversation_split
        self.sampling = w.sampling
        self.sidebar = w.sidebar
        self._connect()
        self.preview = PromptPreview(w, self.model, lambda: self.turns, self.is_generating, self._save_state_later,
                                     self)
        self.splitter = three_columns(self, "chatSplitter", self.sidebar, w.center, self.sampling, [200, 800, 250])

        self._rate_timer = make_timer(self, 500, self._report_rate, single_shot=False)
        self._restore_state()
        self._update_buttons()
        self._page_ready()

    def _connect(self) -> None:
        self.model_bar.picked.connect(lambda _p: self._save_state())
        self.send_button.clicked.connect(lambda: self.send())
        self.stop_button.clicked.connect(self.stop)
        self.regenerate_button.clicked.connect(self.regenerate)
        self.edit_button.clicked.connect(self.edit_last)
        self.sampling.changed.connect(self._save_state_later)
        self.sidebar.opened.connect(self.open_chat)
        self.sidebar.newRequested.connect(self.new_item)
        self.sidebar.deleted.connect(lambda item_id: item_id == self.chat_id and self.new_item())
        self.sidebar.imported.connect(lambda item: item.kind == "chat" and self.open_chat(item.id))
        self.sidebar.message.connect(lambda text: self.notice.show_message(text, "info"))

    # --- state -----------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        state = self.context.ui_state(STATE_KEY)
        if isinstance(state.get("sampling"), dict):
            self.sampling.set_state(state["sampling"])
        if isinstance(state.get("splitter"), list) and len(state["splitter"]) == 3:
            self.splitter.setSizes([int(x) for x in state["splitter"]])
        self._restore_model = state.get("model", "") if isinstance(state.get("model"), str) else ""
        if isinstance(state.get("system_prompt"), str):
            self.system_prompt.setPlainText(state["system_prompt"])
        if isinstance(state.get("chat_id"), int):
            try:
                self.open_chat(state["chat_id"])
            except HistoryError:
                pass
        self.show_prompt_button.setChecked(bool(state.get("show_prompt", False)))

    def state(self) -> dict:
        return {"model": self.model_bar.current_path() or self._restore_model, "sampling": self.sampling.state(),
                "chat_id": self.chat_id, "splitter": self.splitter.sizes(),
                "show_prompt": self.show_prompt_button.isChecked(),
                "system_prompt": self.system_prompt.toPlainText()}

    # --- model -----------------------------------------------------------------------------------

    def _on_model_ready(self, handle) -> None:
        self.model_notice.clear()
        self.stats_label.clear()
        if self.notice.level == "error" and not self.is_generating():
            self.notice.clear()
        specials = special_texts([handle])
        self.prompt_view.set_special_tokens(specials)
        self.preview.update(check_template=True)
        if self._pending_reply:
            self._pending_reply = False
            self._start_reply()

    def _on_model_lost(self) -> None:
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""))

    def _on_model_failed(self, message: str) -> None:
        self._pending_reply = False
        self.notice.show_message(message, "error")

    # --- conversation ----------------------------------------------------------------------------

    def send(self, text: str | None = None) -> None:
        """Send the input (or ``text``) as your next message and stream the reply."""
        text = (self.input.toPlainText() if text is None else text).strip()
        if not text:
            self.input.setFocus()
            return
        if not self.model_bar.current_path():
            self.notice.show_message("Pick a model first (an instruct model: one with a chat template).", "warning")
            return
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""), discard=True)
        try:
            self._ensure_chat(text)
            message_id = self.context.history.add_message(self.chat_id, "user", text)
        except HistoryError as exc:
            self.notice.show_message(str(exc), "error")
            return
        self.turns.append(Turn("user", text, message_id))
        self.transcript.add_message("user", text)
        self.input.clear()
        self._start_reply()

    def _ensure_chat(self, first_message: str) -> None:
        system = self.system_prompt.toPlainText().strip()
        if self.chat_id is None:
            self.chat_id = self.context.history.create_chat(
                title_from_text(first_message), model=self.model_bar.current_path(), system_prompt=system)
            self.sidebar.set_current(self.chat_id)
            self._save_state()
        else:
            self.context.history.update_chat(self.chat_id, model=self.model_bar.current_path(),
                                             system_prompt=system)

    def _start_reply(self) -> None:
        try:
            params = self.sampling.params()
        except ValueError as exc:
            self.notice.show_message(str(exc), "error")
            return
        handle = self.model.handle
        if handle is None:
            self._pending_reply = True
            if self.model.needs_load():
                self.model_bar.load_again()
            self.notice.show_message("Loading the model; the reply starts when it is ready.", "info")
            self._update_buttons()
            return
        self.notice.clear()
        messages = [{"role": t.role, "content": t.content} for t in self.turns]
        system = self.system_prompt.toPlainText().strip() or None
        n_ctx = handle.info.n_ctx
        reserve = min(params.max_tokens, n_ctx // 2)  # room left for the reply

        def start(control: JobControl):
            kept, dropped, rendered, count = fit_conversation(handle, messages, system, reserve)
            control.report({"dropped": dropped, "prompt": rendered, "prompt_tokens": count, "n_ctx": n_ctx})
            return say_if_waiting(control, handle.chat(kept, params, system=system))

        try:
            self._reply_id = self.context.history.add_message(self.chat_id, "assistant", "", complete=False)
        except HistoryError as exc:
            self.notice.show_message(str(exc), "error")
            return
        self._reply_parts = []
        self._last_save = time.monotonic()
        self.transcript.begin_reply()
        job = StreamJob(start, self, "tandem-chat")
        job.tokens.connect(self._on_tokens)
        job.info.connect(self._on_prepared)
        job.status.connect(lambda text: self.notice.show_message(text, "info"))
        job.finished.connect(lambda final, job=job: job is self.job and self._end_job(final))
        self.job = job
        self.stats_label.setText("thinking…")
        self._rate_timer.start()
        self._prompt_tokens = 0
        self._update_buttons()
        job.start()

    def _on_prepared(self, info: dict) -> None:
        self._prompt_tokens = info["prompt_tokens"]
        self.context.contextUsage.emit(STATE_KEY, info["prompt_tokens"], info["n_ctx"])
        self.prompt_view.set_prompt(info["prompt"])
        if info["dropped"]:
            n = info["dropped"]
            self.notice.show_message(
                f"The conversation no longer fits the model's {info['n_ctx']:,}-token context: the {n} oldest "
                f"message{'s were' if n != 1 else ' was'} left out of what the model sees "
                "(the system prompt is kept).", "warning")
        elif self.notice.level == "info":
            self.notice.clear()

    def _on_tokens(self, events: list[TokenEvent]) -> None:
        text = "".join(e.text for e in events)
        self._reply_parts.append(text)
        self.transcript.append_reply(text)
        now = time.monotonic()
        if self._reply_id is not None and now - self._last_save >= SAVE_EVERY_S:
            self._last_save = now
            try:  # a crash loses at most the last second of the reply
                self.context.history.update_message(self._reply_id, "".join(self._reply_parts))
            except HistoryError:
                pass

    def _end_job(self, final: FinalEvent, discard: bool = False) -> None:
        """Settle the running reply: keep what was said, or remove it if nothing was."""
        job, self.job = self.job, None
        if job is not None and discard:
            job.discard()
        self._rate_timer.stop()
        self.context.generationRate.emit(STATE_KEY, 0.0)
        text = "".join(self._reply_parts) or final.text
        reply_id, self._reply_id = self._reply_id, None
        if reply_id is not None:
            try:
                if text:
                    meta = {"finish_reason": final.finish_reason, "stats": final.stats.as_json(),
                            "seed": final.stats.seed}
                    if final.error is not None:  # a reply cut off: what was said stays, with why it stopped
                        meta["error"] = error_text(final.error)
                    self.context.history.update_message(reply_id, text, complete=True, meta=meta)
                else:
                    self.context.history.truncate_chat_at(reply_id)
            except HistoryError as exc:
                self.notice.show_message(str(exc), "error")
        note = note_for(final.finish_reason)
        if text:
            self.turns.append(Turn("assistant", text, reply_id, note))
            self.transcript.finish_reply(text, note)
        else:
            self.transcript.discard_reply()
        self.stats_label.setText(describe_final(final))
        self.sampling.set_last_seed(final.stats.seed)
        if final.error is not None:
            message = error_text(final.error)
            if isinstance(final.error, EngineCrashed):
                message += " Send again (or Regenerate) to load it again."
            self.notice.show_message(message, "error")
        s = final.stats
        handle = self.model.handle
        if s.prompt_tokens and handle is not None:
            self.context.contextUsage.emit(STATE_KEY, s.prompt_tokens + s.completion_tokens, handle.info.n_ctx)
        self._update_buttons()
        self.preview.schedule()
        self.sidebar.refresh()
        self.generationEnded.emit(final)

    def stop(self) -> None:
        self._pending_reply = False
        if self.job is not None and self.job.running:
            self.job.cancel()
        self._update_buttons()

    def regenerate(self) -> None:
        """Replace the last reply with a new one (or answer the last message if it has no reply)."""
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""), discard=True)
        if not self.turns:
            return
        if self.turns[-1].role == "assistant":
            last = self.turns.pop()
            if last.message_id is not None:
                self.context.history.truncate_chat_at(last.message_id)
            self._render_transcript()
        if self.turns and self.turns[-1].role == "user":
            self._start_reply()

    def edit_last(self) -> None:
        """Take the last user message back into the input (it and what followed are removed)."""
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""), discard=True)
        index = next((i for i in range(len(self.turns) - 1, -1, -1) if self.turns[i].role == "user"), None)
        if index is None:
            return
        turn = self.turns[index]
        if turn.message_id is not None:
            self.context.history.truncate_chat_at(turn.message_id)
        del self.turns[index:]
        self._render_transcript()
        self.input.setPlainText(turn.content)
        self.input.setFocus()
        self._update_buttons()
        self.preview.schedule()

    def _render_transcript(self) -> None:
        self.transcript.set_messages([(t.role, t.content, t.note) for t in self.turns])

    def _update_buttons(self) -> None:
        busy = self.is_generating() or self._pending_reply
        self.stop_button.setEnabled(busy)
        self.regenerate_button.setEnabled(bool(self.turns) and not busy)
        self.edit_button.setEnabled(any(t.role == "user" for t in self.turns) and not busy)

    def _report_rate(self) -> None:
        if self.is_generating():
            self.context.generationRate.emit(STATE_KEY, self.job.rate())
            handle = self.model.handle
            if handle is not None and self._prompt_tokens:
                self.context.contextUsage.emit(STATE_KEY, self._prompt_tokens + self.job.token_count,
                                               handle.info.n_ctx)

    # --- chats in the history --------------------------------------------------------------------

    def open_chat(self, chat_id: int) -> None:
        chat = self.context.history.get_chat(chat_id)
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""), discard=True)
        self.chat_id = chat.id
        self.turns = [Turn(m.role, m.content, m.id,
                           note_for(str(m.meta.get("finish_reason", ""))) if m.complete else "(unfinished)")
                      for m in chat.messages if m.role in ("user", "assistant")]
        self.system_prompt.blockSignals(True)
        self.system_prompt.setPlainText(chat.system_prompt)
        self.system_prompt.blockSignals(False)
        self.preview.update_system_toggle()
        self._render_transcript()
        self.notice.clear()
        self.stats_label.clear()
        self.sidebar.set_current(chat.id)
        self._update_buttons()
        self._save_state()
        self.preview.schedule()

    def new_item(self) -> None:
        """A new, empty chat (the system prompt stays, as a starting point)."""
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""), discard=True)
        self.chat_id = None
        self.turns = []
        self.transcript.clear_all()
        self.notice.clear()
        self.stats_label.clear()
        self.sidebar.set_current(None)
        self.input.setFocus()
        self._update_buttons()
        self._save_state()
        self.preview.schedule()

    # --- main window hooks -----------------------------------------------------------------------

    def primary_action(self) -> None:
        self.send()

    def shutdown(self) -> None:
        if self.is_generating():
            self._end_job(FinalEvent("cancelled", ""), discard=True)
        self._save_state()
