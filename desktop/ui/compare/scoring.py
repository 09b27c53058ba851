"""The Compare pane's analysis of an ended run: each output scored under the other model (cross-scoring),
and both models' first-step distributions, one worker thread per model.

``ScoringController`` owns the analysis' state (its worker calls, their cancel flag, how many are still out):
the scoring is ``desktop.compare.analysis``; the controller starts it off the GUI thread on the pair's models,
records what comes back in the session and shows it in the columns and labels. ``cancel()`` drops a running
analysis when the pane moves on (its results belong to an older session serial).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from desktop.compare.analysis import Cancelled, ModelView, model_view
from desktop.compare.pair import SIDES
from desktop.compare.pair_model import PairModel
from desktop.compare.session import CompareSession
from desktop.ui.compare.compare_layout import CompareWidgets
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.stats import error_text


class ScoringController:
    """Cross-scoring and the first step of an ended run. ``on_scored()`` is called once every score is in
    (the pane saves the run again)."""

    def __init__(self, session: CompareSession, models: PairModel, widgets: CompareWidgets,
                 on_scored: Callable[[], None]):
        self.session, self.models, self.on_scored = session, models, on_scored
        self.columns = widgets.columns
        self.analysis_label = widgets.analysis_label
        self.first_step_view = widgets.views["first_step"]
        self._calls: list[Call] = []
        self._cancel = threading.Event()
        self._pending = 0

    def cancel(self) -> None:
        """Drop a running analysis: what it still sends back is discarded."""
        self._cancel.set()
        for call in self._calls:
            call.discard()
        self._calls = []
        self._pending = 0

    def start(self) -> None:
        """Score each output under both models and fetch both first steps, one worker per model."""
        base, instruct = self.models["base"].handle, self.models["instruct"].handle
        failed = self.session.failed_sides()
        if base is None or instruct is None or failed:
            self.analysis_label.setText(f"Not scored: the {' and '.join(failed) or 'other'} model failed."
                                        if failed else "Not scored: a model was unloaded.")
            self.session.analysis_finished()
            return
        texts = {s: self.columns[s].text() for s in SIDES}
        self._cancel = cancel = threading.Event()
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
        self._pending = len(jobs)
        self._calls = [run_in_thread(job, lambda view, m=model: self._on_view(m, view),
                                     lambda exc, m=model: self._on_failed(m, exc),
                                     name=f"tandem-compare-score-{model}")
                       for model, job in jobs.items()]

    def _on_view(self, model: str, view: ModelView) -> None:
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
        self._step_done()

    def _on_failed(self, model: str, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            return
        self.session.analysis_failed(f"Could not analyse with the {model} model: {error_text(exc)}")
        self._step_done()

    def _step_done(self) -> None:
        self._pending -= 1
        if self._pending > 0:
            return
        problems = " ".join(self.session.problems)
        self.analysis_label.setText(problems or "Scored: hover a token, or colour by “the other model's view”.")
        self.analysis_label.setToolTip(problems)
        self._calls = []
        self.session.analysis_finished()
        self.on_scored()

