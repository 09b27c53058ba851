""""Run a prompt set…": the token-shift experiment of ``tandem experiment`` on the two models Compare has loaded.

The work is ``desktop.lens.experiment.Experiment.run`` on a worker thread; its progress comes back as a
signal (a frozen ``Progress``), Stop sets the flag it polls between tokens, and the folder keeps one record
per finished prompt, so running the same set into the same folder again resumes where it stopped. At the end
the report is opened (``report.md``) and the dialog says where it is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
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
from desktop.lens import experiment
from desktop.lens.analyze import DEFAULT_TOP_K
from desktop.ui.runtime.workers import Call, run_in_thread
from desktop.ui.widgets.layout import restyle, set_progress


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def default_out_dir() -> Path:
    return paths.data_dir() / "experiments" / time.strftime("alignment-%Y%m%d-%H%M")


class PromptSetDialog(QDialog):
    """Choose a prompt set and a folder, run it with progress, stop, resume, open the report."""

    progressed = Signal(object)  # experiment.Progress, emitted from the worker thread (queued to the GUI)
    finished_run = Signal(object)  # report.md's Path, or None when the run failed before a report
    open_url = staticmethod(QDesktopServices.openUrl)  # how the report is opened (tests replace it)

    def __init__(self, base, instruct, base_path: str, instruct_path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("promptSetDialog")
        self.setWindowTitle("Run a prompt set")
        self.models, self.model_paths = (base, instruct), (base_path, instruct_path)
        self._call: Call | None = None
        self._stop = threading.Event()
        self.report: Path | None = None
        self._browse_buttons: list[QPushButton] = []
        form = self._build_form()
        self.progress = QProgressBar()
        self.progress.setObjectName("promptSetProgress")
        self.status = QLabel("Greedy answers from both models, the token shift of every instruct answer and "
                             "cross-scoring, with a report (as `tandem experiment`).")
        self.status.setObjectName("promptSetStatus")
        self.status.setWordWrap(True)
        self.status.setOpenExternalLinks(False)
        self.status.linkActivated.connect(lambda url: self.open_url(QUrl(url)))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(self._build_buttons())
        self.progressed.connect(self._on_progress)
        self.resize(560, self.sizeHint().height())

    def _build_form(self) -> QFormLayout:
        self.builtin = QCheckBox(f"the shipped set ({experiment.BUILTIN_PROMPTS})")
        self.builtin.setObjectName("promptSetBuiltin")
        self.builtin.setChecked(True)
        self.prompt_file = QLineEdit()
        self.prompt_file.setObjectName("promptSetFile")
        self.prompt_file.setPlaceholderText(".jsonl ({\"prompt\": …} per line) or .txt (a prompt per line)")
        self.prompt_file.setEnabled(False)
        self.builtin.toggled.connect(lambda on: self.prompt_file.setEnabled(not on))
        self.urial = QCheckBox("the base model reads the URIAL '# Query:' … '# Answer:' wrapper")
        self.urial.setObjectName("promptSetUrial")
        self.seed = QSpinBox()
        self.seed.setObjectName("promptSetSeed")
        self.seed.setRange(0, 2**31 - 1)
        self.max_tokens = QSpinBox()
        self.max_tokens.setObjectName("promptSetMaxTokens")
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(256)
        self.out_dir = QLineEdit(str(default_out_dir()))
        self.out_dir.setObjectName("promptSetOut")
        self.out_dir.setToolTip("The report goes here. Run the same set into the same folder again to resume.")
        form = QFormLayout()
        form.addRow("Prompts:", self.builtin)
        form.addRow("or a file:", self._with_browse(self.prompt_file, self._browse_prompts))
        form.addRow("Base context:", self.urial)
        form.addRow("Seed:", self.seed)
        form.addRow("Answer length:", self.max_tokens)
        form.addRow("Output folder:", self._with_browse(self.out_dir, self._browse_out))
        return form

    def _with_browse(self, edit: QLineEdit, browse) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(browse)
        row.addWidget(button)
        self._browse_buttons.append(button)
        return box

    def _build_buttons(self) -> QHBoxLayout:
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("promptSetRun")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("promptSetStop")
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

    def _browse_prompts(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Prompt set", str(Path.home()), "Prompt sets (*.jsonl *.txt)")
        if path:
            self.builtin.setChecked(False)
            self.prompt_file.setText(path)

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder", self.out_dir.text() or str(Path.home()))
        if path:
            self.out_dir.setText(path)

    # --- running ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._call is not None

    def _experiment(self) -> tuple[list[experiment.Prompt], Callable[[], experiment.Experiment]]:
        """The prompts these fields name, and a function that makes the experiment on the worker thread (it
        asks the base model for its vocabulary, which waits while the model is busy). ExperimentError (one
        line) for a bad file or folder."""
        source = experiment.builtin_prompts_path() if self.builtin.isChecked() else self.prompt_file.text().strip()
        if not str(source):
            raise experiment.ExperimentError("Choose a prompt file, or the shipped set.")
        if not self.out_dir.text().strip():
            raise experiment.ExperimentError("Choose an output folder for the report.")
        prompts = experiment.load_prompts(source)
        base, _ = self.models
        out, context = self.out_dir.text().strip(), "urial" if self.urial.isChecked() else "plain"
        seed, max_tokens = self.seed.value(), self.max_tokens.value()

        def make() -> experiment.Experiment:
            settings = experiment.Settings(
                base=self.model_paths[0], instruct=self.model_paths[1], vocab_id=base.vocab_id, context=context,
                temperature=0.0, seed=seed, max_tokens=max_tokens, top_k=DEFAULT_TOP_K, system=None,
                prompts_sha=experiment.prompts_sha(prompts))
            return experiment.Experiment(out, settings, prompts)

        return prompts, make

    def start(self) -> None:
        if self.running:
            return
        try:
            prompts, make = self._experiment()
        except TandemError as exc:
            self._say(str(exc), error=True)
            return
        self._stop = stop = threading.Event()
        self.report = None
        self._set_running(True)
        self._say(f"Starting {len(prompts)} prompts…")
        base, instruct = self.models

        def work():
            exp = make()
            path = exp.run(base, instruct, progress=self.progressed.emit, should_stop=stop.is_set)
            return path, dict(exp.failures), stop.is_set()

        self._call = run_in_thread(work, self._on_done, self._on_failed, name="tandem-prompt-set")

    def stop(self) -> None:
        """Stop after the current token; what is done stays, and a new Run resumes from there."""
        if self.running:
            self._stop.set()
            self.stop_button.setEnabled(False)
            self._say("Stopping…")

    def _on_progress(self, p: experiment.Progress) -> None:
        if not self.running:
            return
        self.progress.setRange(0, max(1, p.total))
        set_progress(self.progress, p.done)
        resumed = f" ({p.skipped} done before)" if p.skipped else ""
        left = ("estimating time left" if p.eta_s is None else f"{_clock(p.eta_s)} left") if p.current else "writing the report"
        self._say(f"{p.done} of {p.total} prompts{resumed} · {left}" + (f" · now prompt {p.current}" if p.current else ""))

    def _on_done(self, value) -> None:
        self._call = None
        self._set_running(False)
        path, failures, stopped = value
        self.report = Path(path)
        where = f"<a href='{QUrl.fromLocalFile(str(self.report)).toString()}'>{self.report}</a>"
        if stopped:
            text = f"Stopped. The report so far is in {where}; Run again to continue where it stopped."
        else:
            text = f"Done. The report is in {where}."
        if failures:
            pid, reason = next(iter(failures.items()))
            text += f" Prompt {pid} failed ({reason}); Run again to retry it."
        self._say(text)
        self.open_url(QUrl.fromLocalFile(str(self.report)))
        self.finished_run.emit(self.report)

    def _on_failed(self, exc: BaseException) -> None:
        self._call = None
        self._set_running(False)
        self._say(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, error=True)
        self.finished_run.emit(None)

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.builtin, self.prompt_file, self.urial, self.seed, self.max_tokens, self.out_dir,
                  *self._browse_buttons):
            w.setEnabled(not running and (w is not self.prompt_file or not self.builtin.isChecked()))

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        restyle(self.status, "color: #c0392b;" if error else "")

    def closeEvent(self, event) -> None:
        """Closing stops a running set (its finished prompts stay) and drops what it would still report."""
        if self._call is not None:
            self._stop.set()
            self._call.discard()
            self._call = None
        super().closeEvent(event)
