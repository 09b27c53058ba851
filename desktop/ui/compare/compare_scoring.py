"""The Compare pane's analysis of an ended run: each output scored under the other model (cross-scoring),
and both models' first-step distributions, one worker thread per model.

A mixin of ``ComparePane`` (it uses the pane's columns, session and labels): the scoring is
``desktop.compare.analysis``; this part starts it off the GUI thread and shows what comes back. A new run
drops a running analysis (its results belong to an older session serial).
"""

from __future__ import annotations

import threading

from desktop.compare.analysis import Cancelled, ModelView, model_view
from desktop.compare.pair import SIDES
from desktop.ui.runtime.workers import run_in_thread
from desktop.ui.widgets.stats import error_text


class RunAnalysis:
    """Cross-scoring and the first step, for ``ComparePane``."""

    def _start_analysis(self) -> None:
        """Score each output under both models and fetch both first steps, one worker per model."""
        base, instruct = self.model["base"].handle, self.model["instruct"].handle
        failed = self.session.failed_sides()
        if base is None or instruct is None or failed:
            self.analysis_label.setText(f"Not scored: the {' and '.join(failed) or 'other'} model failed."
                                        if failed else "Not scored: a model was unloaded.")
            self._analysis_finished()
            return
        texts = {s: self.columns[s].text() for s in SIDES}
        self._analysis_cancel = cancel = threading.Event()
        cancelled = cancel.is_set
        prompt, base_input = self.session.prompt, self.session.inputs["base"]
        jobs = {  # the base model sees its own (raw or few-shot) input; the instruct model the user message
            "base": lambda: model_view(base, base_input, texts["base"], texts["instruct"], as_chat=False,
                                       cancelled=cancelled),
            "instruct": lambda: model_view(instruct, prompt, texts["instruct"], texts["base"], as_chat=True,
                                           cancelled=cancelled),
        }
        self.analysis_label.setText("Scoring each output under the other model…")
        for col in self.columns.values():
            if col.text():
                col.show_scoring(f"Scoring under the {col.other} model…")
        self._analysis_pending = len(jobs)
        self._analysis = [run_in_thread(job, lambda view, m=model: self._on_analysed(m, view),
                                        lambda exc, m=model: self._on_analysis_failed(m, exc),
                                        name=f"tandem-compare-score-{model}")
                          for model, job in jobs.items()]

    def _on_analysed(self, model: str, view: ModelView) -> None:
        """One model's view of the run: its score of both texts and its first step."""
        outcome = self.session.apply_view(model, view, error_text)
        for side, problem in outcome.failed:
            self.columns[side].show_scoring(problem, error=True)
        for side, note in outcome.unavailable:  # a limit of the model's server, not a fault: said plainly
            self.columns[side].show_scoring(note)
        for side, kind, scored in outcome.scored:
            self.columns[side].set_scores(**{kind: scored.result, f"{kind}_chars": scored.chars})
        if outcome.first is not None:
            self.first_step_view.set_tops(model, outcome.first)
            if not outcome.first:
                self.first_step_view.summary.setText(f"The {model} model would end its text right away: its "
                                                     "most likely next token is the end of text.")
        self._analysis_step_done()

    def _on_analysis_failed(self, model: str, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            return
        self.session.analysis_failed(f"Could not analyse with the {model} model: {error_text(exc)}")
        self._analysis_step_done()

    def _analysis_step_done(self) -> None:
        self._analysis_pending -= 1
        if self._analysis_pending > 0:
            return
        problems = " ".join(self.session.problems)
        self.analysis_label.setText(problems or "Scored: hover a token, or colour by “the other model's view”.")
        self.analysis_label.setToolTip(problems)
        self._analysis = []
        self._analysis_finished()
        self.save_run()

    def _analysis_finished(self) -> None:
        self.session.analysis_finished()

