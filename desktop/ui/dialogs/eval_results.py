"""The results of an evaluation: the side-by-side table (task, metric, base vs instruct raw/chat) and a question
browser filtered by agreement. Each question shows both models' choices with their loglikelihoods, and
"Open in Compare" hands its prompt to whoever wires the signal (the Compare page)."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.eval.questions import metric_table

RUNS = ("base", "instruct-raw", "instruct-chat")
# filter label -> (base right?, instruct right?) ; None = any
FILTERS = {
    "All questions": None,
    "Only base right": (True, False),
    "Only instruct right": (False, True),
    "Both right": (True, True),
    "Neither right": (False, False),
}


def load_folder(out_dir: Path) -> tuple[dict, list[dict]]:
    """results.json and questions.jsonl of an evaluation folder (what `tandem eval` writes)."""
    results = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    rows = [json.loads(ln) for ln in (out_dir / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if ln.strip()]
    return results, rows


class EvalResultsView(QWidget):
    """The table and the question browser for one evaluation folder."""

    open_in_compare = Signal(str)  # the question's prompt as the base model was given it

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("evalResults")
        self.rows: list[dict] = []
        self.runs: list[str] = []
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("evalTable")
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.compare_with = QComboBox()
        self.compare_with.setObjectName("evalCompareWith")
        self.filter = QComboBox()
        self.filter.setObjectName("evalFilter")
        self.filter.addItems(list(FILTERS))
        self.questions = QListWidget()
        self.questions.setObjectName("evalQuestions")
        self.detail = QTextBrowser()
        self.detail.setObjectName("evalQuestionDetail")
        self.open_button = QPushButton("Open in Compare")
        self.open_button.setObjectName("evalOpenInCompare")
        self.open_button.setEnabled(False)
        self.count = QLabel("")
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Base vs"))
        filters.addWidget(self.compare_with)
        filters.addWidget(self.filter, 1)
        filters.addWidget(self.count)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.detail, 1)
        rl.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignRight)
        split = QSplitter()
        split.addWidget(self.questions)
        split.addWidget(right)
        split.setSizes([320, 420])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(filters)
        layout.addWidget(split, 1)
        self.filter.currentIndexChanged.connect(self._refill)
        self.compare_with.currentIndexChanged.connect(self._refill)
        self.questions.currentItemChanged.connect(self._show)
        self.open_button.clicked.connect(self._open)

    def show_folder(self, out_dir: Path) -> None:
        results, rows = load_folder(out_dir)
        self.show_results(results, rows)

    def show_results(self, results: dict, rows: list[dict]) -> None:
        self.rows = rows
        self.runs = [r for r in RUNS if r in results]
        table = metric_table(results)
        self.table.clear()
        self.table.setColumnCount(2 + len(self.runs))
        self.table.setHorizontalHeaderLabels(["task", "metric", *self.runs])
        self.table.setRowCount(len(table))
        for i, row in enumerate(table):
            cells = [row["task"], row["metric"]]
            for run in self.runs:
                v, se = row["values"].get(run), row["stderr"].get(run)
                cells.append("–" if v is None else f"{v:.3f}" + (f" ± {se:.3f}" if se is not None else ""))
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.compare_with.blockSignals(True)
        self.compare_with.clear()
        self.compare_with.addItems([r for r in self.runs if r != "base"])
        self.compare_with.blockSignals(False)
        self._refill()

    def visible_questions(self) -> list[tuple[dict, dict]]:
        """(base row, instruct row) pairs the filter lets through, in task and question order."""
        other = self.compare_with.currentText()
        want = FILTERS[self.filter.currentText()]
        by = {(r["task"], r["doc_id"], r["run"]): r for r in self.rows}
        out = []
        for (task, doc_id, run), base in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            if run != "base" or (task, doc_id, other) not in by:
                continue
            inst = by[(task, doc_id, other)]
            if want is None or (bool(base["correct"]), bool(inst["correct"])) == want:
                out.append((base, inst))
        return out

    def _refill(self) -> None:
        self.questions.clear()
        pairs = self.visible_questions()
        for base, inst in pairs:
            mark = ("✓" if base["correct"] else "✗") + ("✓" if inst["correct"] else "✗")
            text = base.get("question") or base.get("prompt") or ""
            item = QListWidgetItem(f"{mark}  {base['task']} #{base['doc_id']}: {text[:80]}")
            item.setData(Qt.ItemDataRole.UserRole, (base, inst))
            self.questions.addItem(item)
        self.count.setText(f"{len(pairs)} questions")
        self.detail.clear()
        self.open_button.setEnabled(False)
        if pairs:
            self.questions.setCurrentRow(0)

    def _show(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        base, inst = item.data(Qt.ItemDataRole.UserRole)
        self.detail.setHtml(_detail_html(base, inst))
        self.open_button.setEnabled(True)

    def _open(self) -> None:
        item = self.questions.currentItem()
        if item is not None:
            base, _inst = item.data(Qt.ItemDataRole.UserRole)
            self.open_in_compare.emit(base.get("prompt") or "")


def _esc(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _detail_html(base: dict, inst: dict) -> str:
    parts = [f"<p><b>{_esc(base['task'])} #{base['doc_id']}</b>: {_esc(base.get('question') or base['prompt'])}</p>"]
    for row in (base, inst):
        verdict = "right" if row["correct"] else "wrong"
        parts.append(f"<p><b>{_esc(row['run'])}</b> ({_esc(row.get('model', ''))}): {verdict}</p>")
        if "choices" in row:
            items = []
            for i, (choice, ll) in enumerate(zip(row["choices"], row["loglikelihoods"])):
                flags = (" ← chosen" if i == row["choice"] else "") + (" (target)" if i == row["target"] else "")
                items.append(f"<li><code>{_esc(choice)}</code> {ll:.3f}{flags}</li>")
            parts.append("<ul>" + "".join(items) + "</ul>")
        else:
            parts.append(f"<p>answered <code>{_esc(row.get('answer', ''))}</code>; "
                         f"expected <code>{_esc(row.get('target'))}</code></p>")
    return "".join(parts)
