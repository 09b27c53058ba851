"""The Compare pane: one prompt through a base model and its instruct sibling, side by side.

Run sends the prompt to the base model as raw text (``complete``) and to the instruct model as a user
message through its chat template (``chat``); both stream at once into two columns, with the same sampling
settings and the same seed (one random seed drawn per run when none is pinned, shown, and passed to both).
After both streams end, each output is scored under the *other* model (cross-scoring) and the two models'
first-step next-token distributions are fetched; a model can't score while it streams, so this waits for
both streams and is dropped when a new run starts. Runs are saved in the history and export as Markdown.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.compare import record
from desktop.compare.analysis import Cancelled, ModelView, model_view, unless_cancelled
from desktop.compare.presets import (
    FEW_SHOT_HINT,
    FEW_SHOT_STOP,
    GENERAL_HINT,
    preset,
    preset_for_prompt,
    wrap_few_shot,
)
from desktop.core import export
from desktop.core.errors import HistoryError
from desktop.core.history import title_from_text
from desktop.engine.backends import special_texts, split_threads
from desktop.engine.types import FinalEvent, SamplingParams, ScoreResult
from desktop.ui.compare.compare_controls import FewShotTemplateView, PromptControls
from desktop.ui.compare.compare_views import FirstStepView, InputsView, OutputColumn
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.workers import Call, JobControl, StreamJob, run_in_thread, say_if_waiting
from desktop.ui.widgets.history_sidebar import HistorySidebar
from desktop.ui.widgets.layout import make_timer, three_columns
from desktop.ui.widgets.notice import Notice
from desktop.ui.widgets.sampling_panel import SamplingPanel
from desktop.ui.widgets.stats import error_text

STATE_KEY = "compare"
TOP_K_ALTERNATIVES = 5  # recorded on every run, for the hover cards
SIDES = ("base", "instruct")


class CompareHistorySidebar(HistorySidebar):
    """The history sidebar, exporting compare runs as this pane's full Markdown (settings, stats, analysis)."""

    def export_item(self, item_id: int, fmt: str, path: str | Path | None = None) -> Path | None:
        if fmt != "md":
            return super().export_item(item_id, fmt, path)
        try:
            run = self.store.get_compare_run(item_id)
        except HistoryError as exc:
            self.message.emit(str(exc))
            return None
        if path is None:
            safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in run.title).strip() or "compare"
            chosen, _ = QFileDialog.getSaveFileName(self, "Export", str(Path.home() / f"{safe[:60]}.md"),
                                                    "Markdown (*.md)")
            if not chosen:
                return None
            path = chosen
        try:
            export.write_export(Path(path), record.run_to_markdown(run.data, run.title))
        except HistoryError as exc:
            self.message.emit(str(exc))
            return None
        self.message.emit(f"Exported to {path}")
        return Path(path)


class ComparePane(QWidget):
    """The Compare pane. ``context`` is the app's AppContext (desktop/ui/runtime/context.py)."""

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("comparePane")
        self.context = context
        self.jobs: dict[str, StreamJob] = {}
        self.finals: dict[str, FinalEvent] = {}
        self.inputs: dict[str, str] = {"base": "", "instruct": ""}
        self.run_params: SamplingParams | None = None
        self.run_seed: int | None = None
        self.run_prompt = ""
        self.run_few_shot = False
        self.run_models: dict[str, str] = {}
        self.run_id: int | None = None
        self.scores: dict[str, dict[str, ScoreResult | None]] = {}
        self.scored_chars: dict[str, dict[str, int | None]] = {}  # how much of each text a score covers
        self._analysis_problems: list[str] = []
        self.analysis_done = False
        self.last_finals: dict[str, FinalEvent] | None = None  # set when a run has fully ended (tests)
        self._analysis: list[Call] = []
        self._analysis_cancel = threading.Event()
        self._analysis_pending = 0
        self._pending_run = False
        self._restore_models: dict[str, str] = {}
        self._ready = False
        self._shown_once = False
        self._pair_following = False
        self._chosen: set[str] = set()  # sides a person picked in the list (a model landing leaves them alone)
        self._serial = 0  # which run the pane shows: results of an older one are not applied to it
        self._save_call: Call | None = None
        self._save_again = False

        # --- the two columns ---------------------------------------------------------------------
        self.columns = {side: OutputColumn(context, side, self) for side in SIDES}
        for side, col in self.columns.items():
            col.bar.picked.connect(lambda path, side=side: self._on_picked(side, path))
            col.bar.ready.connect(lambda handle, side=side: self._on_model_ready(side, handle))
            col.bar.lost.connect(lambda side=side: self._on_model_lost(side))
            col.bar.failed.connect(lambda message, side=side: self._on_model_failed(side, message))
            col.bar.combo.activated.connect(lambda _i, side=side: self._chosen.add(side))
        self.base_picker = self.columns["base"].bar.combo
        self.instruct_picker = self.columns["instruct"].bar.combo
        self.base_output = self.columns["base"].output
        self.instruct_output = self.columns["instruct"].output

        # --- the prompt, presets and options -----------------------------------------------------
        self.controls = PromptControls()
        c = self.controls
        self.prompt_input, self.run_button, self.stop_button = c.prompt_input, c.run_button, c.stop_button
        self.preset_buttons, self.few_shot, self.colour_mode, self.hint = (c.preset_buttons, c.few_shot,
                                                                          c.colour_mode, c.hint)
        self.inputs_button, self.first_step_button = c.inputs_button, c.first_step_button
        self.prompt_input.textChanged.connect(self._on_prompt_edited)
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        for key, button in self.preset_buttons.items():
            button.clicked.connect(lambda _=False, key=key: self.apply_preset(key))
        self.few_shot.toggled.connect(self._on_few_shot)
        c.template_button.clicked.connect(lambda: self.show_details("template"))
        self.colour_mode.currentIndexChanged.connect(self._on_colour_mode)
        self.inputs_button.toggled.connect(lambda on: self._details_toggled("inputs", on))
        self.first_step_button.toggled.connect(lambda on: self._details_toggled("first_step", on))
        self.notice = Notice("compareNotice")

        # --- details: inputs, first step, few-shot template --------------------------------------
        self.inputs_view = InputsView()
        self.first_step_view = FirstStepView()
        self.template_view = FewShotTemplateView()
        self.template_edit = self.template_view.edit
        self.template_edit.textChanged.connect(self._save_state_later)
        self.details = QTabWidget()
        self.details.setObjectName("compareDetails")
        self.details.addTab(self.inputs_view, "Exact inputs")
        self.details.addTab(self.first_step_view, "First step")
        self.details.addTab(self.template_view, "Few-shot template")
        self.details.setVisible(False)
        self.details.currentChanged.connect(self._sync_details_buttons)
        close_details = QToolButton()
        close_details.setText("✕")
        close_details.setAutoRaise(True)
        close_details.setToolTip("Hide")
        close_details.clicked.connect(lambda: self.show_details(None))
        self.details.setCornerWidget(close_details)

        self.columns_box = QWidget()
        self.columns_box.setObjectName("compareColumns")
        grid = QGridLayout(self.columns_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(3)
        for i, col in enumerate(self.columns.values()):
            col.place(grid, i)
        width = max(grid.columnMinimumWidth(i) for i in range(len(SIDES)))
        for i in range(len(SIDES)):
            grid.setColumnMinimumWidth(i, width)
        grid.setRowStretch(OutputColumn.ROWS.index("output"), 1)
        self.body = QSplitter(Qt.Orientation.Vertical)
        self.body.setObjectName("compareBody")
        self.body.setChildrenCollapsible(False)
        self.body.addWidget(self.columns_box)
        self.body.addWidget(self.details)
        self.body.setStretchFactor(0, 3)
        self.body.setStretchFactor(1, 2)

        self.seed_label = QLabel()
        self.seed_label.setObjectName("compareSeed")
        self.seed_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.analysis_label = QLabel()
        self.analysis_label.setObjectName("analysisStatus")
        self.analysis_label.setStyleSheet("color: palette(placeholder-text);")
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("exportButton")
        self.export_button.setToolTip("Save this run as Markdown: both columns, the settings and the stats")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(lambda: self.export_markdown())
        footer = QHBoxLayout()
        footer.addWidget(self.seed_label)
        footer.addWidget(self.analysis_label, 1)
        footer.addWidget(self.export_button)

        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(8, 8, 8, 8)
        center_layout.setSpacing(6)
        center_layout.addWidget(self.controls)
        center_layout.addWidget(self.notice)
        center_layout.addWidget(self.body, 1)
        center_layout.addLayout(footer)

        self.sidebar = CompareHistorySidebar(context.history, "compare")
        self.sidebar.opened.connect(self.open_run)
        self.sidebar.newRequested.connect(self.new_item)
        self.sidebar.deleted.connect(lambda item_id: item_id == self.run_id and self.new_item())
        self.sidebar.imported.connect(lambda item: item.kind == "compare" and self.open_run(item.id))
        self.sidebar.message.connect(lambda text: self.notice.show_message(text, "info"))

        self.sampling = SamplingPanel(SamplingParams(temperature=0.7, max_tokens=160))
        self.sampling.changed.connect(self._save_state_later)
        self.sampling.setToolTip("Both models run with these settings and the same seed.")
        self.splitter = three_columns(self, "compareSplitter", self.sidebar, center, self.sampling, [180, 820, 220], sampling_min_width=None)

        self._state_timer = make_timer(self, 800, self._save_state)
        self._rate_timer = make_timer(self, 250, self._report_progress, single_shot=False)
        context.libraryChanged.connect(self._on_library)
        self._restore_state()
        self._ready = True

    # --- state -----------------------------------------------------------------------------------

    def _restore_state(self) -> None:
        state = self.context.ui_state(STATE_KEY)
        if isinstance(state.get("sampling"), dict):
            self.sampling.set_state(state["sampling"])
        if isinstance(state.get("template"), str) and state["template"].strip():
            self.template_edit.setPlainText(state["template"])
        self.few_shot.setChecked(bool(state.get("few_shot", False)))
        mode = state.get("colours")
        index = self.colour_mode.findData(mode) if isinstance(mode, str) else -1
        self.colour_mode.setCurrentIndex(max(0, index))
        if isinstance(state.get("splitter"), list) and len(state["splitter"]) == 3:
            self.splitter.setSizes([int(x) for x in state["splitter"]])
        models = state.get("models")
        if isinstance(models, dict):
            self._restore_models = {s: models[s] for s in SIDES if isinstance(models.get(s), str) and models[s]}
        if isinstance(state.get("run_id"), int):
            try:
                self.open_run(state["run_id"])
            except HistoryError:
                pass
        elif isinstance(state.get("prompt"), str):
            self.prompt_input.setPlainText(state["prompt"])

    def state(self) -> dict:
        models = {s: self.columns[s].bar.current_path() or self._restore_models.get(s, "") for s in SIDES}
        return {"models": models, "sampling": self.sampling.state(), "few_shot": self.few_shot.isChecked(),
                "template": self.template_edit.toPlainText(), "colours": self.colour_mode.currentData(),
                "splitter": self.splitter.sizes(), "run_id": self.run_id, "prompt": self.prompt_input.toPlainText()}

    def _save_state_later(self) -> None:
        if self._ready:
            self._state_timer.start()

    def _save_state(self) -> None:
        if not self._ready:
            return
        try:
            self.context.set_ui_state(STATE_KEY, self.state())
        except Exception as exc:  # a settings file we can't write must not break the pane
            self.notice.show_message(error_text(exc), "warning")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._shown_once:  # models load when the pane is first shown, not at start-up
            self._shown_once = True
            self._pick_default_models()

    # --- models: the pair ------------------------------------------------------------------------

    def _on_library(self, _entries: list) -> None:
        if not self._shown_once:
            return
        if not any(c.bar.current_path() for c in self.columns.values()):
            self._pick_default_models()
            return
        for side in SIDES:  # the pair's second model landed (Compare was opened mid-download): fill its side
            if not self.columns[side].bar.current_path() and side not in self._chosen:
                path = self._model_for(side)
                if path:
                    self._select(side, path)

    def _model_for(self, side: str) -> str:
        """What an empty side should hold: the other side's sibling, else the first model of this kind."""
        other = self.columns["instruct" if side == "base" else "base"].bar.current_path()
        entry = self.context.library_entry(other) if other else None
        if entry is not None and entry.pair and self.context.library_entry(entry.pair) is not None:
            return entry.pair
        return next((e.path for e in self.context.library if e.kind == side and not e.broken), "")

    def _select(self, side: str, path: str) -> None:
        """Pick a model for one side without the other side following (the pair is chosen as a whole)."""
        self._pair_following = True
        try:
            self.columns[side].bar.select_path(path)
        finally:
            self._pair_following = False

    def _pick_default_models(self) -> None:
        """The last-used pair, else the first base model with an instruct sibling in the library."""
        if any(c.bar.current_path() for c in self.columns.values()):
            return
        wanted = dict(self._restore_models)
        if not wanted:
            library = [e for e in self.context.library if not e.broken]
            pairs = [e for e in library if e.kind == "base" and e.pair]
            if pairs:
                wanted = {"base": pairs[0].path, "instruct": pairs[0].pair}
            else:
                bases = [e for e in library if e.kind == "base"]
                instructs = [e for e in library if e.kind == "instruct"]
                if bases:
                    wanted["base"] = bases[0].path
                if instructs:
                    wanted["instruct"] = instructs[0].path
        if not wanted:
            return
        self._restore_models = {}
        for side, path in wanted.items():
            self._select(side, path)

    def _on_picked(self, side: str, path: str) -> None:
        """A person picked one side: the other side follows to its sibling, when the library knows one."""
        self._save_state_later()
        if self._pair_following or not path:
            return
        entry = self.context.library_entry(path)
        other = self.columns["instruct" if side == "base" else "base"].bar
        if entry is None or not entry.pair or other.current_path() == entry.pair:
            return
        self._pair_following = True
        try:
            other.select_path(entry.pair)
        finally:
            self._pair_following = False

    def _on_model_ready(self, side: str, handle) -> None:
        info = handle.info
        specials = special_texts([self.columns[s].bar.handle for s in SIDES])
        self.inputs_view.set_special_tokens(specials)
        expected = side
        if info.kind != expected:
            self.notice.show_message(
                f"{Path(info.path).name} looks like an {info.kind} model, in the {side} column. That works — "
                f"it's an experiment — but the comparison is clearest with a base model on the left and its "
                "instruct sibling on the right.", "warning")
        elif self.notice.level in ("warning", "error") and not self.is_running():
            self.notice.clear()
        if self._pending_run and all(c.bar.handle is not None for c in self.columns.values()):
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
        p = preset(key)
        self.prompt_input.setPlainText(p.prompt)  # the hint follows in _on_prompt_edited
        self.prompt_input.setFocus()

    def _on_prompt_edited(self) -> None:
        p = preset_for_prompt(self.prompt_input.toPlainText())
        text = (f"<b>What to look for:</b> {p.look_for}" if p is not None else GENERAL_HINT)
        if self.few_shot.isChecked():
            text += f"<br><i>{FEW_SHOT_HINT}</i>"
        self.hint.setText(text)
        self._save_state_later()

    def _on_few_shot(self, _on: bool) -> None:
        self._on_prompt_edited()

    def _on_colour_mode(self) -> None:
        mode = self.colour_mode.currentData()
        for col in self.columns.values():
            col.set_colour_mode(mode)
        if mode == "cross" and not any(c.cross is not None for c in self.columns.values()):
            self.analysis_label.setText("The other model's view appears once a run has ended and been scored.")
        self._save_state_later()

    def show_details(self, which: str | None) -> None:
        """Open the details area on "inputs", "first_step" or "template"; None hides it."""
        if which is None:
            self.details.setVisible(False)
        else:
            self.details.setCurrentIndex({"inputs": 0, "first_step": 1, "template": 2}[which])
            if not self.details.isVisible():
                self.details.setVisible(True)
                total = sum(self.body.sizes()) or 600
                self.body.setSizes([int(total * 0.6), int(total * 0.4)])
        self._sync_details_buttons()

    def _details_toggled(self, which: str, on: bool) -> None:
        if on:
            self.show_details(which)
        elif self.details.isVisible() and self.details.currentIndex() == (0 if which == "inputs" else 1):
            self.show_details(None)

    def _sync_details_buttons(self, *_args) -> None:
        visible = self.details.isVisible()
        for button, index in ((self.inputs_button, 0), (self.first_step_button, 1)):
            button.blockSignals(True)
            button.setChecked(visible and self.details.currentIndex() == index)
            button.blockSignals(False)

    # --- running ---------------------------------------------------------------------------------

    def is_running(self) -> bool:
        return any(job.running for job in self.jobs.values())

    def _base_input(self, prompt: str) -> str:
        return wrap_few_shot(self.template_edit.toPlainText(), prompt) if self.few_shot.isChecked() else prompt

    def run(self) -> None:
        """Send the prompt to both models at once: raw to the base model, templated to the instruct one."""
        prompt = self.prompt_input.toPlainText()
        if not prompt.strip():
            self.notice.show_message("Type a prompt first, or pick one of the presets.", "warning")
            return
        missing = [s for s in SIDES if not self.columns[s].bar.current_path()]
        if missing:
            self.notice.show_message(self._missing_text(missing), "warning")
            return
        try:
            params = self.sampling.params(logprobs=TOP_K_ALTERNATIVES)
            base_input = self._base_input(prompt)
        except ValueError as exc:
            self.notice.show_message(str(exc), "error")
            return
        if any(c.bar.handle is None for c in self.columns.values()):
            self._pending_run = True
            for col in self.columns.values():
                if col.bar.handle is None and (col.bar.key is None or col.bar.error):
                    col.bar.load_again()
            self.notice.show_message("Loading the models; the run starts when both are ready.", "info")
            return
        self._cancel_everything()
        self.notice.clear()
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        params = dataclasses.replace(params, seed=seed)
        base_params = params
        if self.few_shot.isChecked() and FEW_SHOT_STOP not in params.stop:
            base_params = dataclasses.replace(params, stop=(*params.stop, FEW_SHOT_STOP))
        self.run_params, self.run_seed, self.run_prompt = params, seed, prompt
        self.run_few_shot = self.few_shot.isChecked()
        self.run_models = {s: self.columns[s].bar.current_path() for s in SIDES}
        self.run_id, self.finals, self.scores = None, {}, {s: {"own": None, "cross": None} for s in SIDES}
        self.scored_chars = {s: {"own": None, "cross": None} for s in SIDES}
        self._analysis_problems = []
        self.analysis_done, self.last_finals = False, None
        self.inputs = {"base": base_input, "instruct": ""}
        self.sampling.set_last_seed(seed)
        pinned = self.sampling.seed_pin.isChecked()
        self.seed_label.setText(f"Seed <b>{seed}</b> on both" + ("" if pinned else " (drawn for this run)"))
        self.analysis_label.clear()
        self.export_button.setEnabled(False)
        self.inputs_view.set_inputs(base_input, "", few_shot=self.run_few_shot)
        self.first_step_view.clear("The first step is measured when the run ends.")
        for col in self.columns.values():
            col.clear()
            col.show_waiting("starting…")

        base, instruct = self.columns["base"].bar.handle, self.columns["instruct"].bar.handle
        messages = [{"role": "user", "content": prompt}]
        # Both decode at once: each gets its share of the cores (oversubscribed OpenMP threads spin
        # against each other and both models crawl). One model in both columns keeps its threads.
        threads = split_threads([base, instruct])

        def start_base(control: JobControl):
            return say_if_waiting(control, base.complete(base_input, base_params, threads=threads),
                                  "the base model")

        def start_instruct(control: JobControl):
            try:  # the exact templated text, for the inputs view
                control.report(unless_cancelled(lambda: instruct.render_chat(messages), lambda: control.cancelled))
            except Cancelled:
                return None
            return say_if_waiting(control, instruct.chat(messages, params, threads=threads),
                                  "the instruct model")

        for side, start in (("base", start_base), ("instruct", start_instruct)):
            job = StreamJob(start, self, f"tandem-compare-{side}")
            job.tokens.connect(self.columns[side].append)
            job.status.connect(self.columns[side].show_waiting)
            job.info.connect(self._on_templated)
            job.finished.connect(lambda final, side=side, job=job: self._on_finished(side, job, final))
            self.jobs[side] = job
        self.prompt_input.setReadOnly(True)
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._rate_timer.start()
        for job in self.jobs.values():
            job.start()

    def _missing_text(self, missing: list[str]) -> str:
        """One line naming the model to choose for each empty side."""
        if len(missing) == len(SIDES):
            return ("Pick a base and an instruct model first (the lists hold the models in your library; the "
                    "Models page downloads a pair).")
        side = missing[0]
        where = "left" if side == "base" else "right"
        article = "an" if side == "instruct" else "a"
        path = self._model_for(side)
        if path:
            return f"Choose {article} {side} model on the {where}, e.g. {Path(path).name}, then Run both."
        return (f"Choose {article} {side} model on the {where}: none is in your library yet (if the pair is "
                "still downloading, it appears there when it lands).")

    def _on_templated(self, text: object) -> None:
        if isinstance(text, str):
            self.inputs["instruct"] = text
            self.inputs_view.set_inputs(None, text, few_shot=self.run_few_shot)

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
            for side in self.jobs:
                if side not in self.finals:
                    self.finals[side] = FinalEvent("cancelled", self.columns[side].text())
            self.save_run()  # a snapshot now; written in the background
        self._serial += 1
        for side, job in self.jobs.items():
            job.discard()
            self.context.generationRate.emit(f"compare {side}", 0.0)
        self.jobs = {}
        self._analysis_cancel.set()
        for call in self._analysis:
            call.discard()
        self._analysis = []
        self._analysis_pending = 0
        self._finish_ui()

    def _report_progress(self) -> None:
        for side, job in self.jobs.items():
            if job.running and job.token_count:
                self.columns[side].show_progress(job.token_count, job.rate())
            self.context.generationRate.emit(f"compare {side}", job.rate() if job.running else 0.0)

    def _on_finished(self, side: str, job: StreamJob, final: FinalEvent) -> None:
        if self.jobs.get(side) is not job:
            return
        self.finals[side] = final
        col = self.columns[side]
        col.set_final(final, error_text(final.error) if final.error is not None else "")
        self.context.generationRate.emit(f"compare {side}", 0.0)
        if len(self.finals) < len(SIDES):
            return
        self._finish_ui()
        self.last_finals = dict(self.finals)
        self._report_context()
        self.save_run()
        self._start_analysis()

    def _finish_ui(self) -> None:
        self.prompt_input.setReadOnly(False)
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self._rate_timer.stop()

    def _report_context(self) -> None:
        used, size = 0, 0
        for side in SIDES:
            handle, final = self.columns[side].bar.handle, self.finals.get(side)
            if handle is None or final is None:
                continue
            n = final.stats.prompt_tokens + final.stats.completion_tokens
            if handle.info.n_ctx and (not size or n / handle.info.n_ctx > used / size):
                used, size = n, handle.info.n_ctx
        self.context.contextUsage.emit(STATE_KEY, used, size)

    # --- seeing inside: cross-scoring and the first step -----------------------------------------

    def _start_analysis(self) -> None:
        """Score each output under both models and fetch both first steps, one worker per model."""
        base, instruct = self.columns["base"].bar.handle, self.columns["instruct"].bar.handle
        failed = [s for s in SIDES if self.finals[s].error is not None]
        if base is None or instruct is None or failed:
            self.analysis_label.setText(f"Not scored: the {' and '.join(failed) or 'other'} model failed."
                                        if failed else "Not scored: a model was unloaded.")
            self.analysis_done = True
            return
        texts = {s: self.columns[s].text() for s in SIDES}
        self._analysis_cancel = cancel = threading.Event()
        cancelled = cancel.is_set
        prompt, base_input = self.run_prompt, self.inputs["base"]
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
        other = "instruct" if model == "base" else "base"
        problems = []
        for side, kind, scored in ((model, "own", view.own), (other, "cross", view.cross)):
            if isinstance(scored, BaseException):
                problems.append(f"Could not score the {side} output under the {model} model: {error_text(scored)}")
                if kind == "cross":
                    self.columns[side].show_scoring(problems[-1], error=True)
                continue
            self.scores[side][kind] = scored.result
            self.scored_chars[side][kind] = scored.chars
            self.columns[side].set_scores(**{kind: scored.result, f"{kind}_chars": scored.chars})
        if isinstance(view.first, BaseException):
            problems.append(f"No first step from the {model} model: {error_text(view.first)}")
        else:
            self.first_step_view.set_tops(model, view.first)
            if not view.first:
                self.first_step_view.summary.setText(f"The {model} model would end its text right away: its "
                                                     "most likely next token is the end of text.")
        self._analysis_step_done(" ".join(problems))

    def _on_analysis_failed(self, model: str, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            return
        self._analysis_step_done(f"Could not analyse with the {model} model: {error_text(exc)}")

    def _analysis_step_done(self, problem: str = "") -> None:
        self._analysis_pending -= 1
        if problem:
            self._analysis_problems.append(problem)
        if self._analysis_pending > 0:
            return
        self.analysis_done = True
        if self._analysis_problems:
            self.analysis_label.setText(" ".join(self._analysis_problems))
            self.analysis_label.setToolTip(" ".join(self._analysis_problems))
        else:
            self.analysis_label.setText("Scored: hover a token, or colour by “the other model's view”.")
            self.analysis_label.setToolTip("")
        self._analysis = []
        self.save_run()

    # --- history ---------------------------------------------------------------------------------

    def run_data(self) -> dict:
        """The current run as the history stores it (desktop.compare.record's shape)."""
        return self._run_builder()()

    def _run_builder(self):
        """A function that builds ``run_data()`` from a snapshot of the run taken now. The snapshot is cheap
        (immutable events and scores); building thousands of tokens' JSON can then happen off the GUI thread."""
        sides = {side: (self.run_models.get(side, ""), self.inputs.get(side, ""), self.finals.get(side),
                        list(self.columns[side].events), dict(self.scores.get(side, {})),
                        dict(self.scored_chars.get(side, {}))) for side in SIDES}
        head = {"version": record.RUN_VERSION, "prompt": self.run_prompt, "few_shot": self.run_few_shot,
                "few_shot_template": self.template_edit.toPlainText(), "seed": self.run_seed,
                "sampling": record.sampling_json(self.run_params) if self.run_params else {},
                "created": time.time()}
        tops = {"base": self.first_step_view.base, "instruct": self.first_step_view.instruct}

        def build() -> dict:
            data = dict(head)
            for side, (model, model_input, final, events, scores, chars) in sides.items():
                data[side] = record.side_json(model, model_input, final, events, scores.get("own"),
                                              scores.get("cross"), own_chars=chars.get("own"),
                                              cross_chars=chars.get("cross"))
            if tops["base"] or tops["instruct"]:
                data["first_step"] = {side: record.tops_json(t) for side, t in tops.items()}
            return data

        return build

    def save_run(self) -> None:
        """Save the current run in the history, off the GUI thread (a long run's tokens make a large row).

        Saves of one run are chained: the first insert gives the id the later updates need. ``saving``
        is true until the last one landed.
        """
        if not self.finals:
            return
        if self._save_call is not None:
            self._save_again = True
            return
        build, title, run_id, serial = self._run_builder(), title_from_text(self.run_prompt), self.run_id, self._serial
        store = self.context.history
        self._save_again = False
        self._save_call = run_in_thread(lambda: store.save_compare_run(build(), title=title, run_id=run_id),
                                        lambda new_id: self._on_saved(serial, new_id),
                                        lambda exc: self._on_saved(serial, None, exc), name="tandem-compare-save")

    @property
    def saving(self) -> bool:
        return self._save_call is not None

    def _on_saved(self, serial: int, run_id: int | None, error: BaseException | None = None) -> None:
        self._save_call = None
        if error is not None:
            self.notice.show_message(error_text(error), "error")
        if serial != self._serial:  # the pane moved on to another run meanwhile
            self.sidebar.refresh()
        elif run_id is not None:
            self.run_id = run_id
            self.export_button.setEnabled(True)
            self.sidebar.set_current(run_id)
            self._save_state()
        if self._save_again:
            self.save_run()

    def open_run(self, run_id: int) -> None:
        """Load a saved run into the pane: prompt, settings, both columns, scores, inputs, first step."""
        run = self.context.history.get_compare_run(run_id)
        data = run.data
        self._cancel_everything()
        self.run_id = run.id
        self.run_prompt = str(data.get("prompt", ""))
        self.run_few_shot = bool(data.get("few_shot", False))
        self.run_seed = data.get("seed") if isinstance(data.get("seed"), int) else None
        self.run_params = record.sampling_from(data.get("sampling"))
        self.prompt_input.setPlainText(self.run_prompt)
        if isinstance(data.get("few_shot_template"), str) and data["few_shot_template"].strip():
            self.template_edit.setPlainText(data["few_shot_template"])
        self.few_shot.setChecked(self.run_few_shot)
        if self.run_params is not None:
            self.sampling.set_params(dataclasses.replace(self.run_params, seed=None))
        self.sampling.set_last_seed(self.run_seed)
        self.seed_label.setText(f"Seed <b>{self.run_seed}</b> on both" if self.run_seed is not None else "")
        self.finals, self.scores, self.run_models, self.inputs = {}, {}, {}, {}
        self.scored_chars, self._analysis_problems = {}, []
        for side in SIDES:
            side_data = record.side_of(data, side)
            col = self.columns[side]
            col.clear()
            events = record.tokens_from(side_data.get("tokens"))
            final = record.final_from(side_data)
            if events and "".join(e.text for e in events) == final.text:
                col.append(events)
            col.set_final(final, str(side_data.get("error", "")))
            self.finals[side] = final
            self.run_models[side] = str(side_data.get("model", ""))
            self.inputs[side] = str(side_data.get("input", ""))
            self.scores[side] = {k: record.score_from(side_data.get(k)) for k in ("own", "cross")}
            self.scored_chars[side] = {k: record.score_chars(side_data.get(k)) for k in ("own", "cross")}
        for side in SIDES:  # scores after both texts are in place (cross colouring aligns on the text)
            chars = self.scored_chars[side]
            self.columns[side].set_scores(self.scores[side]["own"], self.scores[side]["cross"],
                                          own_chars=chars["own"], cross_chars=chars["cross"])
        self.inputs_view.set_inputs(self.inputs["base"], self.inputs["instruct"], few_shot=self.run_few_shot)
        steps = data.get("first_step") if isinstance(data.get("first_step"), dict) else {}
        self.first_step_view.clear("No first-step measurement was saved with this run.")
        for side in SIDES:
            tops = record.tops_from(steps.get(side))
            if tops:
                self.first_step_view.set_tops(side, tops)
        self.last_finals = dict(self.finals)
        self.analysis_done = True
        self.analysis_label.setText(f"Saved run · {time.strftime('%Y-%m-%d %H:%M', time.localtime(run.updated_at))}")
        self.export_button.setEnabled(True)
        self.notice.clear()
        if not self._shown_once:  # opened at start-up: the models load when the pane is first shown
            self._restore_models = {s: p for s, p in self.run_models.items() if p}
        for side in SIDES if self._shown_once else ():  # the run's models, in the pickers, ready to run again
            path = self.run_models[side]
            bar = self.columns[side].bar
            if path and bar.current_path() != path and bar.combo.findData(path) >= 0:
                self._select(side, path)
            elif path and bar.combo.findData(path) < 0:
                self.notice.show_message(f"{Path(path).name} is no longer in the library; the run shows what "
                                         "it wrote.", "info")
        self.sidebar.set_current(run.id)
        self._save_state_later()

    def export_markdown(self, path: str | Path | None = None) -> Path | None:
        """Export the current run as Markdown (asks for a file unless ``path`` is given)."""
        if self.run_id is None:
            self.notice.show_message("Run a comparison first; then it can be exported.", "info")
            return None
        return self.sidebar.export_item(self.run_id, "md", path)

    def new_item(self) -> None:
        """A fresh, empty run (the last one stays in the history)."""
        self._cancel_everything()
        self.run_id, self.finals, self.scores, self.last_finals = None, {}, {}, None
        self.prompt_input.clear()
        for col in self.columns.values():
            col.clear()
        self.inputs_view.clear()
        self.first_step_view.clear("After a run: the first token each model would write, its top candidates, "
                                   "and how much the two distributions overlap.")
        self.seed_label.clear()
        self.analysis_label.clear()
        self.export_button.setEnabled(False)
        self.notice.clear()
        self.sidebar.set_current(None)
        self.prompt_input.setFocus()
        self._save_state_later()

    # --- main window hooks -----------------------------------------------------------------------

    def primary_action(self) -> None:
        self.run()

    def shutdown(self) -> None:
        self._cancel_everything()
        if self._save_call is not None:  # a run being written: let it land (the store closes after us)
            self._save_call.wait(5)
        self._save_state()
