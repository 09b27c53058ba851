"""The Compare pane's alignment lens: the token shift of a run's instruct answer, the in-context alignment
preset for the base model, and "Run a prompt set…".

A mixin of ``ComparePane`` (it uses the pane's columns, session, controls and notice). The measuring is
``desktop.lens.analyze.shift_answer`` on the run's *existing* instruct tokens (their ids, so nothing is
generated or re-tokenized), run off the GUI thread; Stop drops it (a score already sent to a model finishes
there, unseen). A pair from two families, or a backend without ranks, gets the lens's one-line refusal in the
view; the rest of Compare is untouched.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QTimer

from desktop.compare.analysis import Cancelled
from desktop.compare.pair import SIDES, is_in_context
from desktop.core.errors import TandemError
from desktop.lens import analyze, preset
from desktop.lens.shift import answer_agreement
from desktop.ui.compare.compare_alignment import AlignmentView
from desktop.ui.dialogs.prompt_set_dialog import PromptSetDialog
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.stats import error_text


class AlignmentLens:
    """Token shift in Compare, for ``ComparePane``."""

    alignment_view: AlignmentView

    def _setup_alignment(self) -> None:
        self.alignment_view = self.widgets.alignment_view
        self._alignment_call: Call | None = None
        self._alignment_cancel = threading.Event()
        self._alignment_key: tuple | None = None  # (session serial, context) of what the view shows
        self.prompt_set_dialog: PromptSetDialog | None = None
        view = self.alignment_view
        view.measureRequested.connect(lambda: self.measure_alignment(force=True))
        view.stopRequested.connect(self.stop_alignment)
        view.contextChanged.connect(lambda _c: self.measure_alignment(force=True))
        self.details.currentChanged.connect(lambda _i: self._alignment_maybe_measure())
        self.controls.alignment_button.toggled.connect(self._alignment_toggled)
        self.controls.icl_toggle.toggled.connect(self._on_icl_toggled)
        self.few_shot.toggled.connect(lambda on: on and self.controls.icl_toggle.setChecked(False))
        self.controls.prompt_set_button.clicked.connect(self.open_prompt_set)
        self.session.subscribe(self._alignment_on_session)

    # --- the in-context alignment preset ---------------------------------------------------------

    def _on_icl_toggled(self, on: bool) -> None:
        if on:
            self.few_shot.setChecked(False)
        self._on_prompt_edited()

    def run_uses_preset(self) -> bool:
        return is_in_context(self.session.prompt, self.session.inputs.get("base", ""))

    # --- the alignment view ----------------------------------------------------------------------

    def _alignment_on_session(self, what: str) -> None:
        if what in ("started", "cleared"):
            self._drop_alignment()
            self.alignment_view.clear("Token shift of the instruct answer: measured once the run has ended.")
        elif what == "ended":
            self._alignment_new_run()
        elif what == "opened":  # after the pane has filled the columns and the options from the record
            QTimer.singleShot(0, self._alignment_new_run)

    def _alignment_new_run(self) -> None:
        self._drop_alignment()
        self._alignment_key = None
        uses_preset = self.run_uses_preset()
        if uses_preset:
            self.controls.icl_toggle.setChecked(True)
        self.alignment_view.set_context("icl" if uses_preset else "plain")
        self.alignment_view.clear("Open this view to measure the run's instruct answer.")
        self._alignment_maybe_measure()

    def _alignment_toggled(self, on: bool) -> None:
        self._details_toggled("alignment", on)
        self._alignment_maybe_measure()  # the tab was chosen before the details area became visible

    def _alignment_visible(self) -> bool:
        return self.details.isVisible() and self.details.currentWidget() is self.alignment_view

    def _alignment_maybe_measure(self) -> None:
        if self._alignment_visible():
            self.measure_alignment()

    def measure_alignment(self, force: bool = False) -> None:
        """Rank the run's instruct answer under the base model, in the view's base context, off the GUI thread."""
        view = self.alignment_view
        context = view.context()
        key = (self.session.serial, context)
        if not force and (key == self._alignment_key or self._alignment_call is not None):
            return
        base, instruct = (self.model[s].handle for s in SIDES)
        events = self.columns["instruct"].events
        answer = [e.token_id for e in events] or self.columns["instruct"].text()
        if not self.session.ended or self.is_running():
            view.clear("Token shift of the instruct answer: measured once the run has ended.")
            return
        if base is None or instruct is None:
            view.clear("Load both models to measure the token shift.")
            return
        if not answer:
            view.clear("The instruct model wrote nothing: nothing to measure.")
            return
        self._drop_alignment()
        self._alignment_key = key
        self._alignment_cancel = cancel = threading.Event()
        prompt = self.session.prompt
        base_ids = self._base_answer_ids() if context == "icl" and self.run_uses_preset() else None

        def work():
            analyze.require_sibling(base, instruct)  # a refusal before any scoring
            if cancel.is_set():
                raise Cancelled()
            result, _inst, _base = analyze.shift_answer(base, instruct, prompt, answer, context=context)
            if cancel.is_set():
                raise Cancelled()
            ids = [t.token_id for t in result.tokens]
            return result, (answer_agreement(base_ids, ids) if base_ids is not None else None)

        view.clear()
        view.set_busy(True, "Ranking each token of the instruct answer among the base model's choices…")
        self._alignment_call = run_in_thread(work, self._on_alignment, self._on_alignment_failed,
                                             name="tandem-compare-alignment")

    def _base_answer_ids(self) -> list[int]:
        """The base model's own answer under the preset, as token ids, cut where ``clean_answer`` cuts it."""
        col = self.columns["base"]
        keep = len(preset.clean_answer(col.text()))
        ids, length = [], 0
        for e in col.events:
            length += len(e.text)
            if length > keep:
                break
            ids.append(e.token_id)
        return ids

    def _on_alignment(self, value) -> None:
        self._alignment_call = None
        result, agreement = value
        self.alignment_view.show_result(result, agreement)

    def _on_alignment_failed(self, exc: BaseException) -> None:
        self._alignment_call = None
        if isinstance(exc, Cancelled):
            return
        self._alignment_key = None  # a later look tries again
        text = str(exc) if isinstance(exc, TandemError) else error_text(exc)
        self.alignment_view.show_refusal(text.splitlines()[0] if text else "The token shift failed.")

    def stop_alignment(self) -> None:
        if self._alignment_call is None:
            return
        self._drop_alignment()
        self._alignment_key = None
        self.alignment_view.set_busy(False, "Stopped. Measure again when you like.")

    def _drop_alignment(self) -> None:
        self._alignment_cancel.set()
        if self._alignment_call is not None:
            self._alignment_call.discard()
            self._alignment_call = None
        self.alignment_view.set_busy(False)

    # --- a whole prompt set ----------------------------------------------------------------------

    def open_prompt_set(self) -> PromptSetDialog | None:
        """The "Run a prompt set…" dialog on the two loaded models (it refuses a pair from two families)."""
        base, instruct = (self.model[s].handle for s in SIDES)
        if base is None or instruct is None:
            self.notice.show_message("Load a base model and its instruct sibling first.", "warning")
            return None
        paths = {s: self.columns[s].bar.current_path() or getattr(h.info, "name", s)
                 for s, h in (("base", base), ("instruct", instruct))}
        if self.prompt_set_dialog is not None and self.prompt_set_dialog.running:
            self.prompt_set_dialog.raise_()  # one set at a time on these models
            return self.prompt_set_dialog
        if self.prompt_set_dialog is not None:
            self.prompt_set_dialog.deleteLater()
        dialog = self.prompt_set_dialog = PromptSetDialog(base, instruct, paths["base"], paths["instruct"], self)
        dialog.show()
        return dialog

    def _shutdown_alignment(self) -> None:
        """The window closes: drop a measurement and stop a running prompt set (its finished prompts stay)."""
        self._drop_alignment()
        if self.prompt_set_dialog is not None:
            self.prompt_set_dialog.close()
