""""Evaluate…": `tandem eval` on the two models Compare has loaded, with progress, Stop and resume, then the
results table and the question browser (``EvalResultsView``).

The work is ``desktop.eval.runner.run_loaded`` on a worker thread: the loaded models are served on a free
loopback port with a random key while lm-eval runs. Progress comes back as a queued signal; Stop raises
between two requests, and lm-eval's response cache in the output folder keeps what is done, so Run into the
same folder resumes. lm-eval is an optional extra: without it the dialog says in one line how to get it.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core import paths
from desktop.core.errors import TandemError
from desktop.eval import TASK_NAMES
from desktop.eval.plan import EvalPlan, require_lm_eval
from desktop.ui.dialogs.eval_results import EvalResultsView
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.layout import restyle, set_progress


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def lm_eval_missing() -> str:
    """"" when evaluation can run here, else the one line that says how to get it."""
    try:
        require_lm_eval()
    except TandemError as exc:
        return str(exc)
    return ""


class EvalDialog(QDialog):
    """Pick tasks, a limit and few-shot; run with progress, Stop, resume; then the results view."""

    progressed = Signal(str, int, int, float)  # label, done, total, seconds left (-1: not known yet)
    finished_run = Signal(object)  # the output folder, or None when the run failed or stopped
    open_in_compare = Signal(str)  # a question's prompt, for the Compare page (the integrator wires it)

    def __init__(self, base, instruct, base_path: str, instruct_path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("evalDialog")
        self.setWindowTitle("Evaluate the pair")
        self.models, self.model_paths = {"base": base, "instruct": instruct}, (base_path, instruct_path)
        self._call: Call | None = None
        self._stop = threading.Event()
        self.out: Path | None = None
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_form())
        self.progress = QProgressBar()
        self.progress.setObjectName("evalProgress")
        self.status = QLabel("lm-eval on both models: the base, the instruct raw and through its chat template.")
        self.status.setObjectName("evalStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(self._build_buttons())
        self.results = EvalResultsView()
        self.results.setVisible(False)
        self.results.open_in_compare.connect(self.open_in_compare)
        layout.addWidget(self.results, 1)
        self.progressed.connect(self._on_progress)
        missing = lm_eval_missing()
        if missing:
            self.run_button.setEnabled(False)
            self._say(missing.removeprefix("tandem: error: "), error=True)
        self.resize(760, self.sizeHint().height())

    def _build_form(self) -> QFormLayout:
        self.task_boxes = {}
        row = QHBoxLayout()
        for name in TASK_NAMES:
            box = QCheckBox(name)
            box.setObjectName(f"evalTask_{name}")
            box.setChecked(name == "tandem_mc")
            self.task_boxes[name] = box
            row.addWidget(box)
        row.addStretch(1)
        self.more_tasks = QLineEdit()
        self.more_tasks.setObjectName("evalMoreTasks")
        self.more_tasks.setPlaceholderText("other lm-eval tasks, comma-separated (arc_easy, hellaswag, …)")
        self.limit = QSpinBox()
        self.limit.setObjectName("evalLimit")
        self.limit.setRange(0, 1_000_000)
        self.limit.setSpecialValueText("all")
        self.limit.setValue(40)
        self.fewshot = QSpinBox()
        self.fewshot.setObjectName("evalFewshot")
        self.fewshot.setRange(-1, 25)
        self.fewshot.setSpecialValueText("task default")
        self.fewshot.setValue(-1)
        self.template = QComboBox()
        self.template.setObjectName("evalTemplate")
        self.template.addItems(["both", "raw", "chat"])
        self.out_dir = QLineEdit(str(paths.data_dir() / "eval" / time.strftime("%Y-%m-%d-%H%M%S")))
        self.out_dir.setObjectName("evalOut")
        self.out_dir.setToolTip("Run into the same folder again to resume where it stopped.")
        form = QFormLayout()
        form.addRow("Tasks:", row)
        form.addRow("", self.more_tasks)
        form.addRow("Questions per task:", self.limit)
        form.addRow("Few-shot:", self.fewshot)
        form.addRow("Instruct template:", self.template)
        form.addRow("Output folder:", self.out_dir)
        return form

    def _build_buttons(self) -> QHBoxLayout:
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("evalRun")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("evalStop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.run_button)
        row.addWidget(self.stop_button)
        row.addWidget(close)
        return row

    # --- running ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._call is not None

    def plan(self) -> EvalPlan:
        tasks = [n for n, b in self.task_boxes.items() if b.isChecked()]
        tasks += [t.strip() for t in self.more_tasks.text().split(",") if t.strip()]
        if not tasks:
            raise TandemError("Pick at least one task.")
        return EvalPlan(base=self.model_paths[0], instruct=self.model_paths[1], tasks=tuple(dict.fromkeys(tasks)),
                        limit=self.limit.value() or None,
                        num_fewshot=None if self.fewshot.value() < 0 else self.fewshot.value(),
                        template=self.template.currentText())

    def start(self) -> None:
        if self.running:
            return
        try:
            plan = self.plan()
        except TandemError as exc:
            self._say(str(exc), error=True)
            return
        out = Path(self.out_dir.text().strip() or ".")
        self._stop = stop = threading.Event()
        self._set_running(True)
        self._say("Checking the tasks…")
        progressed = self.progressed

        def work():
            from desktop.eval.report import write_outputs
            from desktop.eval.runner import Progress, prepare, run_loaded

            relay = Progress(io.StringIO(), should_stop=stop.is_set,  # the numbers go to the dialog
                             on_update=lambda label, kind, done, total, left:
                             progressed.emit(f"{label} · {kind}", done, total, left))

            prepared = prepare(plan)
            results = run_loaded(plan, self.models, out, lambda _text: None,
                                 relay, prepared)
            write_outputs(out, plan, results)
            return out

        self._call = run_in_thread(work, self._on_done, self._on_failed, name="tandem-eval")

    def stop(self) -> None:
        """Stop after the request in flight; what is done stays in the cache, and Run resumes."""
        if self.running:
            self._stop.set()
            self.stop_button.setEnabled(False)
            self._say("Stopping…")

    def _on_progress(self, label: str, done: int, total: int, left: float) -> None:
        if not self.running:
            return
        self.progress.setRange(0, max(1, total))
        set_progress(self.progress, done)
        when = "estimating time left" if left < 0 else f"{_clock(left)} left"
        self._say(f"{label}: {done} of {total} requests · {when}")

    def _on_done(self, out: Path) -> None:
        self._call = None
        self._set_running(False)
        self.out = out
        self._say(f"Done. The report is in {out / 'report.md'}.")
        self.results.show_folder(out)
        self.results.setVisible(True)
        self.finished_run.emit(out)

    def _on_failed(self, exc: BaseException) -> None:
        self._call = None
        self._set_running(False)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        stopped = self._stop.is_set()
        self._say("Stopped. Run again into the same folder to resume." if stopped else text, error=not stopped)
        self.finished_run.emit(None)

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (*self.task_boxes.values(), self.more_tasks, self.limit, self.fewshot, self.template,
                  self.out_dir):
            w.setEnabled(not running)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        restyle(self.status, "color: #c0392b;" if error else "")

    def closeEvent(self, event) -> None:
        """Closing stops a running evaluation (what is done stays cached) and drops what it would report."""
        if self._call is not None:
            self._stop.set()
            self._call.discard()
            self._call = None
        super().closeEvent(event)
