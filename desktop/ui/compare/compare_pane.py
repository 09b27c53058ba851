"""The Compare pane: one prompt through a base model and its instruct sibling, side by side.

Run sends the prompt to the base model as raw text and to the instruct model as a user message through its
chat template (``desktop.compare.pair``, shared with ``tandem compare``); both stream at once into two
columns, with the same sampling settings and the same seed (one drawn per run when none is pinned, shown,
and passed to both). After both streams end, each output is scored under the *other* model (cross-scoring)
and the two models' first-step next-token distributions are fetched; this is dropped when a new run starts.
The run's state lives in a ``CompareSession`` and the two models in a ``PairModel`` (both Qt-free); this pane
drives the run and shows it. The rest belongs to controllers that take (session, models, widgets) and own
their state: ``ScoringController`` (the analysis of an ended run), ``HistoryController`` (saving, opening,
exporting) and one per details tab that has one, built from the tab registry (``desktop.ui.compare.tabs``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QWidget

from desktop.compare import pair
from desktop.compare.analysis import Cancelled, unless_cancelled
from desktop.compare.pair import SIDES, PairRequest
from desktop.compare.pair_model import PairModel
from desktop.compare.presets import FEW_SHOT_HINT, GENERAL_HINT, ICL_HINT, preset, preset_for_prompt
from desktop.compare.session import CompareSession
from desktop.core.errors import HistoryError
from desktop.engine.backends import special_texts
from desktop.engine.types import FinalEvent, SamplingParams
from desktop.ui.compare import tabs
from desktop.ui.compare.compare_layout import CompareWidgets
from desktop.ui.compare.compare_pair import PairPicker
from desktop.ui.compare.evaluate import EvaluateController
from desktop.ui.compare.history import HistoryController
from desktop.ui.compare.scoring import ScoringController
from desktop.ui.compare.tab import TabController, TabHost
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.workers import JobControl, StreamJob, say_if_waiting
from desktop.ui.widgets.layout import make_timer, three_columns
from desktop.ui.widgets.page import Page
from desktop.ui.widgets.sampling_panel import SamplingPanel
from desktop.ui.widgets.stats import error_text

STATE_KEY = "compare"
TOP_K_ALTERNATIVES = 5  # recorded on every run, for the hover cards
LOAD_AFTER_SHOW_MS = 100  # the first show paints before the models start loading


class ComparePane(Page):
    """The Compare pane. ``context`` is the app's AppContext (desktop/ui/runtime/context.py)."""

    state_key = STATE_KEY
    runEnded = Signal(object)  # {side: FinalEvent} once both sides of a run ended
    analysed = Signal()  # the ended run's scores and first steps are in (or failed)

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(context, parent)
        self.setObjectName("comparePane")
        self.session = CompareSession()
        self.session.subscribe(self._on_session)
        self.jobs: dict[str, StreamJob] = {}
        self._pending_run = False
        self.model = PairModel()
        w = self.widgets = CompareWidgets(context, self, self.model)
        self.columns, self.controls, self.notice, self.sidebar = w.columns, w.controls, w.notice, w.sidebar
        self.pair = PairPicker(context, self.columns, picked=self._save_state_later)
        self.sampling = SamplingPanel(SamplingParams(temperature=0.7, max_tokens=160))
        self.sampling.setToolTip("Both models run with these settings and the same seed.")
        self.splitter = three_columns(self, "compareSplitter", self.sidebar, w.center, self.sampling,
                                      [180, 820, 220], sampling_min_width=200)
        self._connect()
        self.scoring = ScoringController(self.session, self.model, w, on_scored=self.save_run)
        self.history = HistoryController(self.session, w, context.history, self.sampling, self.pair,
                                         replace=self._cancel_everything,
                                         state_changed=lambda now: self._save_state() if now
                                         else self._save_state_later())
        self.evaluate = EvaluateController(self.model, w, self, show_prompt=self._show_question)
        host = TabHost(self.session, self.model, w, self, self.is_running, self._on_prompt_edited)
        self.controllers: dict[str, TabController] = {
            tab.key: tab.controller(host, w.views[tab.key]) for tab in tabs.TABS if tab.controller is not None}
        self._rate_timer = make_timer(self, 250, self._report_progress, single_shot=False)
        self._restore_state()
        self._page_ready()

    def _connect(self) -> None:
        self.model.events.loaded.connect(lambda e: self._on_model_ready(e.side, e.value))
        self.model.events.lost.connect(lambda e: self._on_model_lost(e.side))
        self.model.events.failed.connect(lambda e: self._on_model_failed(e.side, e.value))
        c, w = self.controls, self.widgets
        c.prompt_input.textChanged.connect(self._on_prompt_edited)
        c.run_button.clicked.connect(self.run)
        c.stop_button.clicked.connect(self.stop)
        for key, button in c.preset_buttons.items():
            button.clicked.connect(lambda _=False, key=key: self.apply_preset(key))
        c.few_shot.toggled.connect(self._on_prompt_edited)
        c.template_button.clicked.connect(lambda: self.show_details("template"))
        c.colour_mode.currentIndexChanged.connect(self._on_colour_mode)
        w.views["template"].edit.textChanged.connect(self._save_state_later)
        w.export_button.clicked.connect(lambda: self.export_markdown())
        self.sidebar.opened.connect(self.open_run)
        self.sidebar.newRequested.connect(self.new_item)
        self.sidebar.deleted.connect(lambda item_id: item_id == self.run_id and self.new_item())
        self.sidebar.imported.connect(lambda item: item.kind == "compare" and self.open_run(item.id))
        self.sidebar.message.connect(lambda text: self.notice.show_message(text, "info"))
        self.sampling.changed.connect(self._save_state_later)

    @property
    def run_id(self) -> int | None:
        return self.session.run_id

    # --- state -----------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        state = self.context.ui_state(STATE_KEY)
        if isinstance(state.get("sampling"), dict):
            self.sampling.set_state(state["sampling"])
        if isinstance(state.get("template"), str) and state["template"].strip():
            self.widgets.views["template"].edit.setPlainText(state["template"])
        self.controls.few_shot.setChecked(bool(state.get("few_shot", False)))
        self.controls.icl_toggle.setChecked(bool(state.get("in_context", False)))
        mode = state.get("colours")
        index = self.controls.colour_mode.findData(mode) if isinstance(mode, str) else -1
        self.controls.colour_mode.setCurrentIndex(max(0, index))
        if isinstance(state.get("splitter"), list) and len(state["splitter"]) == 3:
            self.splitter.setSizes([int(x) for x in state["splitter"]])
        self.pair.restore(state.get("models"))
        if isinstance(state.get("run_id"), int):
            try:
                self.open_run(state["run_id"])
            except HistoryError:
                pass
        elif isinstance(state.get("prompt"), str):
            self.controls.prompt_input.setPlainText(state["prompt"])

    def state(self) -> dict:
        return {"models": self.pair.state(), "sampling": self.sampling.state(), "few_shot": self.controls.few_shot.isChecked(),
                "in_context": self.controls.icl_toggle.isChecked(),
                "template": self.widgets.views["template"].edit.toPlainText(), "colours": self.controls.colour_mode.currentData(),
                "splitter": self.splitter.sizes(), "run_id": self.run_id, "prompt": self.controls.prompt_input.toPlainText()}

    def showEvent(self, event) -> None:
        super().showEvent(event)  # models load when the pane is first shown (not at start-up), after its
        if not self.pair.shown_once:  # first paint: inside the page switch they made it a ~40 ms stall
            QTimer.singleShot(LOAD_AFTER_SHOW_MS, self, lambda: self.isVisible() and self.pair.shown())

    # --- models ----------------------------------------------------------------------------------

    def _on_model_ready(self, side: str, handle) -> None:
        self.widgets.views["inputs"].set_special_tokens(special_texts(list(self.model.handles().values())))
        info = handle.info
        if info.kind != side:
            self.notice.show_message(
                f"{Path(self.columns[side].bar.current_path() or info.name).name} looks like an {info.kind} model, in the {side} column. That works — "
                f"it's an experiment — but the comparison is clearest with a base model on the left and its "
                "instruct sibling on the right.", "warning")
        elif self.notice.level in ("warning", "error") and not self.is_running():
            self.notice.clear()
        if self._pending_run and self.model.both_loaded():
            self._pending_run = False
            self.run()

    def _on_model_lost(self, side: str) -> None:
        job = self.jobs.get(side)
        if job is not None and job.running:
            job.discard()
            self._on_finished(side, job, FinalEvent("cancelled", "".join(e.text for e in self.columns[side].events)))

    def _on_model_failed(self, side: str, message: str) -> None:
        self._pending_run = False
        self.notice.show_message(f"{side.title()} model: {message}", "error")

    # --- prompt, presets, options ----------------------------------------------------------------

    def apply_preset(self, key: str) -> None:
        self.controls.prompt_input.setPlainText(preset(key).prompt)  # the hint follows in _on_prompt_edited
        self.controls.prompt_input.setFocus()

    def _on_prompt_edited(self, *_args) -> None:
        p = preset_for_prompt(self.controls.prompt_input.toPlainText())
        text = (f"<b>What to look for:</b> {p.look_for}" if p is not None else GENERAL_HINT)
        if self.controls.few_shot.isChecked() or self.controls.icl_toggle.isChecked():
            text += f"<br><i>{ICL_HINT if self.controls.icl_toggle.isChecked() else FEW_SHOT_HINT}</i>"
        self.controls.hint.setText(text)
        self._save_state_later()

    def _on_colour_mode(self) -> None:
        mode = self.controls.colour_mode.currentData()
        for col in self.columns.values():
            col.set_colour_mode(mode)
        if mode == "cross" and not any(c.cross is not None for c in self.columns.values()):
            self.widgets.analysis_label.setText("The other model's view appears once a run has ended and been scored.")
        self._save_state_later()

    def show_details(self, which: str | None) -> None:
        """Open the details area on a registered tab (``tabs.keys()``); None hides it."""
        self.widgets.show_details(which)

    # --- running ---------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return any(job.running for job in self.jobs.values())

    is_generating = is_running

    def _request(self) -> PairRequest | None:
        """This run's request from the pane's inputs, or None after saying what is missing."""
        prompt = self.controls.prompt_input.toPlainText()
        if not prompt.strip():
            self.notice.show_message("Type a prompt first, or pick one of the presets.", "warning")
            return None
        missing = [s for s in SIDES if not self.columns[s].bar.current_path()]
        if missing:
            self.notice.show_message(self.pair.missing_text(missing), "warning")
            return None
        try:
            params = pair.with_run_seed(self.sampling.params(logprobs=TOP_K_ALTERNATIVES))
            if self.controls.icl_toggle.isChecked():
                return PairRequest.in_context(prompt, params)
            template = self.widgets.views["template"].edit.toPlainText() if self.controls.few_shot.isChecked() else None
            return PairRequest.make(prompt, params, few_shot_template=template)
        except ValueError as exc:
            self.notice.show_message(str(exc), "error")
            return None

    def run(self) -> None:
        """Send the prompt to both models at once: raw to the base model, templated to the instruct one."""
        request = self._request()
        if request is None:
            return
        if not self.model.both_loaded():
            self._pending_run = True
            for side, col in self.columns.items():
                if self.model[side].needs_load():
                    col.bar.load_again()
            self.notice.show_message("Loading the models; the run starts when both are ready.", "info")
            return
        self._cancel_everything()
        self.notice.clear()
        self.session.start(request, {s: self.columns[s].bar.current_path() for s in SIDES})
        self._show_started(request)
        self._start_jobs(request)

    def _show_started(self, request: PairRequest) -> None:
        seed = request.params.seed
        self.sampling.set_last_seed(seed)
        pinned = self.sampling.seed_pin.isChecked()
        self.widgets.seed_label.setText(f"Seed <b>{seed}</b> on both" + ("" if pinned else " (drawn for this run)"))
        self.widgets.analysis_label.clear()
        self.widgets.export_button.setEnabled(False)
        self.widgets.views["inputs"].set_inputs(request.base_input, "", few_shot=request.few_shot)
        self.widgets.views["first_step"].clear("The first step is measured when the run ends.")
        for col in self.columns.values():
            col.clear()
            col.show_waiting("starting…")
        self.controls.prompt_input.setReadOnly(True)
        self.controls.run_button.setEnabled(False)
        self.controls.stop_button.setEnabled(True)
        self._rate_timer.start()

    def _start_jobs(self, request: PairRequest) -> None:
        models = self.model.handles()
        threads = pair.pair_threads(models["base"], models["instruct"])

        def start_base(control: JobControl):
            return say_if_waiting(control, pair.start("base", models["base"], request, threads), "the base model")

        def start_instruct(control: JobControl):
            caps = models["instruct"].capabilities
            try:  # the exact templated text, for the inputs view (a server may template it unseen)
                control.report(unless_cancelled(lambda: models["instruct"].render_chat(request.messages),
                                                lambda: control.cancelled) if caps.server_template
                               else {"note": f"Can't show the prompt: {caps.template_note}."})
            except Cancelled:
                return None
            return say_if_waiting(control, pair.start("instruct", models["instruct"], request, threads),
                                  "the instruct model")

        for side, start in (("base", start_base), ("instruct", start_instruct)):
            job = StreamJob(start, self, f"tandem-compare-{side}")
            job.tokens.connect(self.columns[side].append)
            job.status.connect(self.columns[side].show_waiting)
            job.info.connect(self._on_templated)
            job.finished.connect(lambda final, side=side, job=job: self._on_finished(side, job, final))
            self.jobs[side] = job
        for job in self.jobs.values():
            job.start()

    def _on_templated(self, text: object) -> None:
        if isinstance(text, dict):  # the instruct model's server applies its template itself
            self.widgets.views["inputs"].set_inputs(None, "", few_shot=self.session.few_shot)
            self.widgets.views["inputs"].instruct_view.setPlaceholderText(text["note"])
        elif isinstance(text, str):
            self.session.templated(text)
            self.widgets.views["inputs"].set_inputs(None, text, few_shot=self.session.few_shot)

    def stop(self) -> None:
        """Stop both models; what each wrote so far stays."""
        self._pending_run = False
        for job in self.jobs.values():
            if job.running:
                job.cancel()

    def _cancel_everything(self) -> None:
        """A new run (or an opened one) replaces the current run and its analysis. A run still streaming is
        kept in the history as stopped, with what both models wrote so far."""
        if self.is_running():
            self.session.stop_unfinished({s: self.columns[s].text() for s in self.jobs})
            self.save_run()  # a snapshot now; written in the background
        self.session.replace()
        for side, job in self.jobs.items():
            job.discard()
            self.context.generationRate.emit(f"compare {side}", 0.0)
        self.jobs = {}
        self.scoring.cancel()
        self._finish_ui()

    def _report_progress(self) -> None:
        for side, job in self.jobs.items():
            if job.running and job.token_count:
                self.columns[side].show_progress(job.token_count, job.rate())
            self.context.generationRate.emit(f"compare {side}", job.rate() if job.running else 0.0)

    def _on_finished(self, side: str, job: StreamJob, final: FinalEvent) -> None:
        if self.jobs.get(side) is not job:
            return
        self.columns[side].set_final(final, error_text(final.error) if final.error is not None else "")
        self.context.generationRate.emit(f"compare {side}", 0.0)
        self.session.finish(side, final)  # the last side ends the run: _on_session("ended")

    def _on_session(self, what: str) -> None:
        """The pane observes its session: a run that ended is shown, saved and analysed."""
        if what == "ended":
            self._finish_ui()
            self._report_context()
            self.runEnded.emit(dict(self.session.finals))
            self.save_run()
            self.scoring.start()
        elif what == "analysed":
            self.analysed.emit()

    def _finish_ui(self) -> None:
        self.controls.prompt_input.setReadOnly(False)
        self.controls.run_button.setEnabled(True)
        self.controls.stop_button.setEnabled(False)
        self._rate_timer.stop()

    def _report_context(self) -> None:
        used, size = 0, 0
        for side in SIDES:
            handle, final = self.model[side].handle, self.session.finals.get(side)
            if handle is None or final is None:
                continue
            n = final.stats.prompt_tokens + final.stats.completion_tokens
            if handle.info.n_ctx and (not size or n / handle.info.n_ctx > used / size):
                used, size = n, handle.info.n_ctx
        self.context.contextUsage.emit(STATE_KEY, used, size)

    # --- main window hooks -----------------------------------------------------------------------

    def primary_action(self) -> None:
        self.run()

    def shutdown(self) -> None:
        self.evaluate.shutdown()
        for controller in self.controllers.values():
            controller.shutdown()
        self._cancel_everything()
        self.history.wait(5)  # a run being written: let it land (the store closes after us)
        self._save_state()

    def _show_question(self, prompt: str) -> None:
        """A question from the evaluation's browser, in the prompt box, ready to run."""
        self.controls.prompt_input.setPlainText(prompt)
        self.window().raise_()
        self.controls.prompt_input.setFocus()

    # --- the history (HistoryController) ---------------------------------------------------------

    def open_run(self, run_id: int) -> None:
        self.history.open_run(run_id)

    def new_item(self) -> None:
        self.history.new_item()

    def save_run(self) -> None:
        self.history.save_run()

    def run_data(self) -> dict:
        return self.history.run_data()

    @property
    def saving(self) -> bool:
        return self.history.saving

    def export_markdown(self, path: str | Path | None = None) -> Path | None:
        return self.history.export_markdown(path)
