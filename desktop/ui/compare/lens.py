"""The Compare pane's alignment lens: the token shift of a run's instruct answer, the in-context alignment
preset for the base model, and "Run a prompt set…". Its tab (``TAB``) is registered in ``tabs.TABS``.

``LensController`` owns the lens's state (the measurement running, what the view shows, the prompt-set
dialog); it observes the run's session and reads the pair's models and the columns through its ``TabHost``. The measuring is
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
from desktop.ui.compare.tab import Tab, TabController, TabHost, Toggle
from desktop.ui.dialogs.prompt_set_dialog import PromptSetDialog
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.stats import error_text


class LensController(TabController):
    """Token shift in Compare: built by the pane from ``TAB`` with its host and the ``AlignmentView``."""

    view: AlignmentView

    def __init__(self, host: TabHost, view: AlignmentView):
        super().__init__(host, view)
        self.session, self.models, self.widgets = host.session, host.models, host.widgets
        self.columns, self.controls = host.widgets.columns, host.widgets.controls
        self._call: Call | None = None
        self._cancel = threading.Event()
        self._key: tuple | None = None  # (session serial, context) of what the view shows
        self.prompt_set_dialog: PromptSetDialog | None = None
        view.measureRequested.connect(lambda: self.measure(force=True))
        view.stopRequested.connect(self.stop)
        view.contextChanged.connect(lambda _c: self.measure(force=True))
        self.widgets.details.currentChanged.connect(lambda _i: self._maybe_measure())
        # after the pane's own connection, which opened the tab: measure now that the view is visible
        self.controls.tab_buttons[TAB.key].toggled.connect(lambda _on: self._maybe_measure())
        self.controls.icl_toggle.toggled.connect(self._on_icl_toggled)
        self.controls.few_shot.toggled.connect(lambda on: on and self.controls.icl_toggle.setChecked(False))
        self.controls.prompt_set_button.clicked.connect(self.open_prompt_set)
        self.session.subscribe(self._on_session)

    # --- the in-context alignment preset ---------------------------------------------------------

    def _on_icl_toggled(self, on: bool) -> None:
        if on:
            self.controls.few_shot.setChecked(False)
        self.host.on_prompt_options()

    def run_uses_preset(self) -> bool:
        return is_in_context(self.session.prompt, self.session.inputs.get("base", ""))

    # --- the alignment view ----------------------------------------------------------------------

    def _on_session(self, what: str) -> None:
        if what in ("started", "cleared"):
            self._drop()
            self.view.clear("Token shift of the instruct answer: measured once the run has ended.")
        elif what == "ended":
            self._new_run()
        elif what == "opened":  # after the pane has filled the columns and the options from the record
            QTimer.singleShot(0, self._new_run)

    def _new_run(self) -> None:
        self._drop()
        self._key = None
        uses_preset = self.run_uses_preset()
        if uses_preset:
            self.controls.icl_toggle.setChecked(True)
        self.view.set_context("icl" if uses_preset else "plain")
        self.view.clear("Open this view to measure the run's instruct answer.")
        self._maybe_measure()

    def _maybe_measure(self) -> None:
        if self.host.showing(self.view):
            self.measure()

    @property
    def running(self) -> bool:
        """A measurement is on its way."""
        return self._call is not None

    def measure(self, force: bool = False) -> None:
        """Rank the run's instruct answer under the base model, in the view's base context, off the GUI thread."""
        view = self.view
        context = view.context()
        key = (self.session.serial, context)
        if not force and (key == self._key or self._call is not None):
            return
        base, instruct = (self.models[s].handle for s in SIDES)
        events = self.columns["instruct"].events
        answer = [e.token_id for e in events] or self.columns["instruct"].text()
        if not self.session.ended or self.host.is_running():
            view.clear("Token shift of the instruct answer: measured once the run has ended.")
            return
        if base is None or instruct is None:
            view.clear("Load both models to measure the token shift.")
            return
        if not answer:
            view.clear("The instruct model wrote nothing: nothing to measure.")
            return
        self._drop()
        self._key = key
        self._cancel = cancel = threading.Event()
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
        self._call = run_in_thread(work, self._on_result, self._on_failed, name="tandem-compare-alignment")

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

    def _on_result(self, value) -> None:
        self._call = None
        result, agreement = value
        self.view.show_result(result, agreement)

    def _on_failed(self, exc: BaseException) -> None:
        self._call = None
        if isinstance(exc, Cancelled):
            return
        self._key = None  # a later look tries again
        text = str(exc) if isinstance(exc, TandemError) else error_text(exc)
        self.view.show_refusal(text.splitlines()[0] if text else "The token shift failed.")

    def stop(self) -> None:
        if self._call is None:
            return
        self._drop()
        self._key = None
        self.view.set_busy(False, "Stopped. Measure again when you like.")

    def _drop(self) -> None:
        self._cancel.set()
        if self._call is not None:
            self._call.discard()
            self._call = None
        self.view.set_busy(False)

    # --- a whole prompt set ----------------------------------------------------------------------

    def open_prompt_set(self) -> PromptSetDialog | None:
        """The "Run a prompt set…" dialog on the two loaded models (it refuses a pair from two families)."""
        base, instruct = (self.models[s].handle for s in SIDES)
        if base is None or instruct is None:
            self.widgets.notice.show_message("Load a base model and its instruct sibling first.", "warning")
            return None
        paths = {s: self.models[s].path or getattr(h.info, "name", s)
                 for s, h in (("base", base), ("instruct", instruct))}
        if self.prompt_set_dialog is not None and self.prompt_set_dialog.running:
            self.prompt_set_dialog.raise_()  # one set at a time on these models
            return self.prompt_set_dialog
        if self.prompt_set_dialog is not None:
            self.prompt_set_dialog.deleteLater()
        dialog = self.prompt_set_dialog = PromptSetDialog(base, instruct, paths["base"], paths["instruct"],
                                                                self.host.parent)
        dialog.show()
        return dialog

    def shutdown(self) -> None:
        """The window closes: drop a measurement and stop a running prompt set (its finished prompts stay)."""
        self._drop()
        if self.prompt_set_dialog is not None:
            self.prompt_set_dialog.close()


TAB = Tab("alignment", "Alignment", AlignmentView,
          Toggle("Alignment", "showAlignmentButton",
                 "Token shift: which tokens of the instruct answer the base model would have chosen too "
                 "(URIAL, ICLR 2024)"),
          LensController)
