"""The Compare pane's runs in the history: saved off the GUI thread after each stage of a run, opened back
into the pane, exported as Markdown, or replaced by a fresh run.

``HistoryController`` owns the saving (the write on its way, whether another must follow); the record's shape
is ``desktop.compare.record`` and the state it is built from is the pane's ``CompareSession``. What it needs
of the pane comes in as two calls: ``replace()`` (stop the current run and its analysis) and
``state_changed(now)`` (the pane's remembered state should be saved, at once or soon).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from desktop.compare.pair import SIDES
from desktop.compare.session import CompareSession
from desktop.core.history import HistoryStore, title_from_text
from desktop.ui.compare.compare_layout import CompareWidgets
from desktop.ui.compare.compare_pair import PairPicker
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.sampling_panel import SamplingPanel
from desktop.ui.widgets.stats import error_text


class HistoryController:
    """Save, open, export and start afresh: the Compare pane's runs in the history."""

    def __init__(self, session: CompareSession, widgets: CompareWidgets, store: HistoryStore,
                 sampling: SamplingPanel, picker: PairPicker, replace: Callable[[], None],
                 state_changed: Callable[[bool], None]):
        self.session, self.widgets, self.store, self.sampling, self.picker = session, widgets, store, sampling, picker
        self.replace, self.state_changed = replace, state_changed
        self.columns, self.controls, self.notice, self.sidebar = (widgets.columns, widgets.controls, widgets.notice,
                                                                  widgets.sidebar)
        self._save_call: Call | None = None
        self._save_again = False

    def run_data(self) -> dict:
        """The current run as the history stores it (desktop.compare.record's shape)."""
        return self._run_builder()()

    def _run_builder(self):
        events = {s: self.columns[s].events for s in SIDES}
        return self.session.builder(events, self.widgets.views["template"].edit.toPlainText())

    def save_run(self) -> None:
        """Save the current run in the history, off the GUI thread (a long run's tokens make a large row).

        Saves of one run are chained: the first insert gives the id the later updates need. ``saving``
        is true until the last one landed.
        """
        if not self.session.finals:
            return
        if self._save_call is not None:
            self._save_again = True
            return
        s = self.session
        build, title, run_id, serial = self._run_builder(), title_from_text(s.prompt), s.run_id, s.serial
        store = self.store
        self._save_again = False
        self._save_call = run_in_thread(lambda: store.save_compare_run(build(), title=title, run_id=run_id),
                                        lambda new_id: self._on_saved(serial, new_id),
                                        lambda exc: self._on_saved(serial, None, exc), name="tandem-compare-save")

    @property
    def saving(self) -> bool:
        return self._save_call is not None

    def wait(self, timeout: float) -> None:
        """Let a write on its way land (the window is closing)."""
        if self._save_call is not None:
            self._save_call.wait(timeout)

    def _on_saved(self, serial: int, run_id: int | None, error: BaseException | None = None) -> None:
        self._save_call = None
        if error is not None:
            self.notice.show_message(error_text(error), "error")
        if serial != self.session.serial:  # the pane moved on to another run meanwhile
            self.sidebar.refresh()
        elif run_id is not None:
            self.session.saved(run_id)
            self.widgets.export_button.setEnabled(True)
            self.sidebar.set_current(run_id)
            self.state_changed(True)
        if self._save_again:
            self.save_run()

    def open_run(self, run_id: int) -> None:
        """Load a saved run into the pane: prompt, settings, both columns, scores, inputs, first step."""
        run = self.store.get_compare_run(run_id)
        self.replace()
        s = self.session
        events = s.open(run.id, run.data, run.updated_at)
        self._show_opened(run.data, events)
        note = self.picker.select_run_models(s.models)
        if note:
            self.notice.show_message(note, "info")
        self.sidebar.set_current(run.id)
        self.state_changed(False)

    def _show_opened(self, data: dict, events: dict) -> None:
        s, w = self.session, self.widgets
        self.controls.prompt_input.setPlainText(s.prompt)
        if isinstance(data.get("few_shot_template"), str) and data["few_shot_template"].strip():
            w.views["template"].edit.setPlainText(data["few_shot_template"])
        self.controls.few_shot.setChecked(s.few_shot)
        if s.params is not None:
            self.sampling.set_params(dataclasses.replace(s.params, seed=None))
        self.sampling.set_last_seed(s.seed)
        w.seed_label.setText(f"Seed <b>{s.seed}</b> on both" if s.seed is not None else "")
        for side in SIDES:
            col = self.columns[side]
            col.clear()
            if events[side]:
                col.append(events[side])
            col.set_final(s.finals[side], s.errors.get(side, ""))
        for side in SIDES:  # scores after both texts are in place (cross colouring aligns on the text)
            col, scores, chars = self.columns[side], s.scores[side], s.scored_chars[side]
            col.set_scores(scores["own"], scores["cross"], own_chars=chars["own"], cross_chars=chars["cross"])
        w.views["inputs"].set_inputs(s.inputs["base"], s.inputs["instruct"], few_shot=s.few_shot)
        w.views["first_step"].clear("No first-step measurement was saved with this run.")
        for side, tops in s.first.items():
            w.views["first_step"].set_tops(side, tops)
        w.analysis_label.setText(f"Saved run · {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.updated_at))}")
        w.export_button.setEnabled(True)
        self.notice.clear()

    def export_markdown(self, path: str | Path | None = None) -> Path | None:
        """Export the current run as Markdown (asks for a file unless ``path`` is given)."""
        if self.session.run_id is None:
            self.notice.show_message("Run a comparison first; then it can be exported.", "info")
            return None
        return self.sidebar.export_item(self.session.run_id, "md", path)

    def new_item(self) -> None:
        """A fresh, empty run (the last one stays in the history)."""
        self.replace()
        self.session.clear()
        w = self.widgets
        self.controls.prompt_input.clear()
        for col in self.columns.values():
            col.clear()
        w.views["inputs"].clear()
        w.views["first_step"].clear("After a run: the first token each model would write, its top candidates, "
                                   "and how much the two distributions overlap.")
        w.seed_label.clear()
        w.analysis_label.clear()
        w.export_button.setEnabled(False)
        self.notice.clear()
        self.sidebar.set_current(None)
        self.controls.prompt_input.setFocus()
        self.state_changed(False)

