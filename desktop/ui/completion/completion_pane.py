"""The Completion pane: a notebook where a (base) model continues your text.

The editor holds the document. Generate sends the whole document to the model as raw text and appends the
continuation at its end, marked with a tint until edited; Stop keeps what was produced; anything can be
edited and continued again. The token view colours generated tokens by probability; hovering shows the
alternatives, clicking one replaces the text from that token on and continues from there.
Documents are saved in the history as you go. The widgets are built by ``completion_layout.CompletionWidgets``;
the loaded model is the pane's ``PaneModel`` (``self.model``).
"""

from __future__ import annotations

import logging

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import EngineCrashed, HistoryError
from desktop.core.history import title_from_text
from desktop.engine.types import FinalEvent, SamplingParams, TokenEvent
from desktop.ui.completion.completion_layout import CompletionWidgets
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.workers import StreamJob, run_in_thread, say_if_waiting
from desktop.ui.widgets.layout import make_timer, three_columns
from desktop.ui.widgets.page import SingleModelPage
from desktop.ui.widgets.sampling_panel import SamplingPanel
from desktop.ui.widgets.stats import describe_final, error_text

log = logging.getLogger(__name__)


def _count_failed(exc: BaseException) -> None:
    """The context meter keeps its last count; the next edit counts again."""
    log.info("could not count the document's tokens: %s", exc)


STATE_KEY = "completion"
TOP_K_ALTERNATIVES = 5  # asked on every run, so the token view can be switched on afterwards
SAVE_EVERY_MS = 1000


class CompletionPane(SingleModelPage):
    state_key = STATE_KEY

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(context, parent)
        self.setObjectName("completionPane")
        self.document_id: int | None = None
        self._auto_title = True
        self._listed_title: str | None = None
        self._pending_generate = False
        self._restoring = False
        self._count_call = None
        self._prompt_count = 0  # tokens in the document, as last counted
        self._gen_base = 0

        w = CompletionWidgets(context, self.model)
        self.model_bar, self.token_toggle, self.model_notice, self.notice = (w.model_bar, w.token_toggle,
                                                                            w.model_notice, w.notice)
        self.editor, self.tracker, self.sidebar = w.editor, w.tracker, w.sidebar
        self.generate_button, self.stop_button, self.stats_label = w.generate_button, w.stop_button, w.stats_label
        self._connect()
        header, actions = w.header, w.actions
        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(8, 8, 8, 8)
        center_layout.addLayout(header)
        center_layout.addWidget(self.model_notice)
        center_layout.addWidget(self.notice)
        center_layout.addWidget(self.editor, 1)
        center_layout.addLayout(actions)

        self.sampling = SamplingPanel(SamplingParams(temperature=0.8, max_tokens=200))
        self.sampling.changed.connect(self._save_state_later)
        self.splitter = three_columns(self, "completionSplitter", self.sidebar, center, self.sampling, [200, 700, 250])

        self._save_timer = make_timer(self, SAVE_EVERY_MS, self.save_document)
        self._count_timer = make_timer(self, 500, self._count_context)
        self._rate_timer = make_timer(self, 500, self._report_rate, single_shot=False)
        self._restore_state()
        self._page_ready()

    def _connect(self) -> None:
        self.model_bar.picked.connect(lambda _p: self._save_state())
        self.token_toggle.toggled.connect(self._on_token_view)
        self.editor.textChanged.connect(self._on_text_changed)
        self.tracker.alternativeChosen.connect(self.continue_with_alternative)
        self.generate_button.clicked.connect(self.generate)
        self.stop_button.clicked.connect(self.stop)
        self.sidebar.opened.connect(self.open_document)
        self.sidebar.newRequested.connect(self.new_item)
        self.sidebar.deleted.connect(self._on_deleted)
        self.sidebar.renamed.connect(self._on_renamed)
        self.sidebar.imported.connect(lambda item: item.kind == "document" and self.open_document(item.id))
        self.sidebar.message.connect(lambda text: self.notice.show_message(text, "info"))

    # --- state -----------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        state = self.context.ui_state(STATE_KEY)
        if isinstance(state.get("sampling"), dict):
            self.sampling.set_state(state["sampling"])
        self.token_toggle.setChecked(bool(state.get("token_view", False)))
        if isinstance(state.get("splitter"), list) and len(state["splitter"]) == 3:
            self.splitter.setSizes([int(x) for x in state["splitter"]])
        self._restore_model = state.get("model", "") if isinstance(state.get("model"), str) else ""
        doc_id = state.get("document_id")
        if isinstance(doc_id, int):
            try:
                self.open_document(doc_id)
            except HistoryError:
                pass

    def state(self) -> dict:
        return {"model": self.model_bar.current_path() or self._restore_model,
                "sampling": self.sampling.state(), "token_view": self.token_toggle.isChecked(),
                "document_id": self.document_id, "splitter": self.splitter.sizes()}

    def _can_save_state(self) -> bool:
        return super()._can_save_state() and not self._restoring

    # --- model -----------------------------------------------------------------------------------

    def _on_model_ready(self, handle) -> None:
        if not self.is_generating():
            self.stats_label.clear()
        if handle.info.kind == "instruct":
            self.model_notice.show_message(
                f"{handle.info.name or self.model_bar.current_path()} is an instruct model. Here it sees "
                "your text raw, without its chat template: an experiment worth making (it often drifts "
                "into its chat format). For a conversation, use the Chat pane.", "info")
        else:
            self.model_notice.clear()
        if self.notice.level == "error" and not self.is_generating():
            self.notice.clear()
        self._count_context()
        if self._pending_generate:
            self._pending_generate = False
            self.generate()

    def _on_model_lost(self) -> None:
        if self.job is not None and self.job.running:
            self.job.discard()
            self._finish_ui()
        self.context.contextUsage.emit(STATE_KEY, 0, 0)

    def _on_model_failed(self, message: str) -> None:
        self._pending_generate = False
        self.notice.show_message(message, "error")

    # --- generating ------------------------------------------------------------------------------

    def generate(self) -> None:
        """Continue the document from its end with the picked model."""
        if not self.model_bar.current_path():
            self.notice.show_message("Pick a model first (the list holds the models in your library).", "warning")
            return
        try:
            params = self.sampling.params(logprobs=TOP_K_ALTERNATIVES)
        except ValueError as exc:
            self.notice.show_message(str(exc), "error")
            return
        handle = self.model.handle
        if handle is None:
            self._pending_generate = True
            if self.model.needs_load():
                self.model_bar.load_again()
            self.notice.show_message("Loading the model; generation starts when it is ready.", "info")
            return
        if self.job is not None:
            self.job.discard()  # a new generation replaces a running one; its text stays
        self.notice.clear()
        prompt = self.editor.toPlainText()
        self._gen_base = self._prompt_count
        job = StreamJob(lambda control: say_if_waiting(control, handle.complete(prompt, params)), self,
                        "tandem-complete")
        job.tokens.connect(self._on_tokens)
        job.status.connect(lambda text: self.notice.show_message(text, "info"))
        job.finished.connect(lambda final, job=job: self._on_finished(job, final))
        self.job = job
        self.editor.setReadOnly(True)
        self.generate_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.stats_label.setText("generating…")
        self._rate_timer.start()
        job.start()

    def stop(self) -> None:
        """Stop generating; what was produced stays in the document."""
        if self.job is not None and self.job.running:
            self.job.cancel()
        self._pending_generate = False

    def _on_tokens(self, events: list[TokenEvent]) -> None:
        if self.notice.level == "info" and self.notice.text().startswith("Waiting"):
            self.notice.clear()
        bar = self.editor.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self.tracker.append(events)
        if at_bottom:
            bar.setValue(bar.maximum())
        if not self._save_timer.isActive():
            self._save_timer.start()  # a crash loses at most the last second

    def _on_finished(self, job: StreamJob, final: FinalEvent) -> None:
        if job is not self.job:
            return
        self._finish_ui()
        self.stats_label.setText(describe_final(final))
        self.sampling.set_last_seed(final.stats.seed)
        self.context.generationRate.emit(STATE_KEY, 0.0)
        if final.error is not None:
            text = error_text(final.error)
            if isinstance(final.error, EngineCrashed):
                text += " Press Generate to load it again and continue."
            self.notice.show_message(text, "error")
        s = final.stats
        if s.prompt_tokens and self.model.handle is not None:
            self._prompt_count = s.prompt_tokens + s.completion_tokens
            self.context.contextUsage.emit(STATE_KEY, self._prompt_count, self.model.handle.info.n_ctx)
        self.save_document()
        self.generationEnded.emit(final)

    def _finish_ui(self) -> None:
        self.editor.setReadOnly(False)
        self.generate_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self._rate_timer.stop()

    def _report_rate(self) -> None:
        if self.job is not None and self.job.running:
            self.context.generationRate.emit(STATE_KEY, self.job.rate())
            handle = self.model.handle
            if handle is not None:
                self.context.contextUsage.emit(STATE_KEY, self._gen_base + self.job.token_count,
                                               handle.info.n_ctx)

    def continue_with_alternative(self, index: int, text: str) -> None:
        """Replace the document from token ``index`` with ``text`` and continue generating from there."""
        if self.job is not None:
            self.job.discard()
            self._finish_ui()
        span = self.tracker.spans[index]
        chosen = next((alt for alt in span.top if alt.text == text), None)
        self.tracker.truncate_from(index)
        self.tracker.append([TokenEvent(text, chosen.token_id if chosen else -1,
                                        chosen.logprob if chosen else 0.0, span.top)])
        self.generate()

    # --- the document ----------------------------------------------------------------------------

    def _on_text_changed(self) -> None:
        if self._restoring:
            return
        if not self.is_generating():
            self._save_timer.start()
            self._count_timer.start()

    def _count_context(self) -> None:
        handle = self.model.handle
        if handle is None or self.is_generating() or not handle.capabilities.tokenizer:  # a server may not count
            return
        if self._count_call is not None:
            self._count_call.discard()
        text = self.editor.toPlainText()
        n_ctx = handle.info.n_ctx

        def done(count: int) -> None:
            self._prompt_count = count
            self.context.contextUsage.emit(STATE_KEY, count, n_ctx)

        self._count_call = run_in_thread(lambda: handle.count_tokens(text), done, _count_failed,
                                         name="tandem-count")

    def save_document(self) -> None:
        self._save_timer.stop()
        text = self.editor.toPlainText()
        if not text.strip() and self.document_id is None:
            return
        meta = {"marks": self.tracker.marked_ranges(), "auto_title": self._auto_title,
                "sampling": self.sampling.state()}
        title = title_from_text(text) if self._auto_title else None
        new = self.document_id is None
        try:
            self.document_id = self.context.history.save_document(
                text, document_id=self.document_id, title=title, model=self.model_bar.current_path(), meta=meta)
        except HistoryError as exc:
            self.notice.show_message(str(exc), "error")
            return
        if new:
            self._save_state()
        if new or title != self._listed_title:  # the sidebar only changes when the title does
            self._listed_title = title
            self.sidebar.set_current(self.document_id)

    def open_document(self, document_id: int) -> None:
        document = self.context.history.get_document(document_id)
        if self.job is not None:
            self.job.discard()
            self._finish_ui()
        if self.document_id is not None and document_id != self.document_id:
            self.save_document()
        self._restoring = True
        try:
            self.tracker.clear()
            self.editor.setPlainText(document.text)
            marks = document.meta.get("marks", [])
            if isinstance(marks, list):
                self.tracker.restore_marks([m for m in marks if isinstance(m, list) and len(m) == 2])
            self.tracker.set_mode("probability" if self.token_toggle.isChecked() else "marked")
        finally:
            self._restoring = False
        self.document_id = document.id
        self._auto_title = bool(document.meta.get("auto_title", True))
        self.stats_label.clear()
        self.notice.clear()
        cursor = self.editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        self.editor.setTextCursor(cursor)
        self.sidebar.set_current(document.id)
        self._save_state()
        self._count_context()

    def new_item(self, save_current: bool = True) -> None:
        """Start an empty document (the current one is saved first)."""
        if self.job is not None:
            self.job.discard()
            self._finish_ui()
        if save_current:
            self.save_document()
        self._save_timer.stop()
        self._restoring = True
        try:
            self.tracker.clear()
            self.editor.clear()
        finally:
            self._restoring = False
        self.document_id = None
        self._auto_title = True
        self.stats_label.clear()
        self.notice.clear()
        self.sidebar.set_current(None)
        self.editor.setFocus()
        self._save_state()

    def _on_deleted(self, item_id: int) -> None:
        if item_id == self.document_id:
            self.document_id = None
            self.new_item(save_current=False)

    def _on_renamed(self, item_id: int, _title: str) -> None:
        if item_id == self.document_id:
            self._auto_title = False
            self.save_document()

    def _on_token_view(self, on: bool) -> None:
        self.tracker.set_mode("probability" if on else "marked")
        if on and self.tracker.spans and not any(s.top for s in self.tracker.spans):
            self.notice.show_message("Probabilities are recorded while generating; text generated before "
                                     "a restart shows its marking only.", "info")
        self._save_state_later()

    # --- main window hooks -----------------------------------------------------------------------

    def primary_action(self) -> None:
        self.generate()

    def shutdown(self) -> None:
        if self.job is not None:
            self.job.discard()
        self.save_document()
        self._save_state()
