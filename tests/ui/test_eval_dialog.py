"""The Evaluate… dialog on the tiny models (already loaded, as Compare's are): progress, Stop then resume, the
results table, the question browser and its "Open in Compare" signal, and the one line without lm-eval."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from desktop.engine import LoadOptions, load_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None,
                                reason="lm-eval (the eval extra) not installed")
OPTIONS = LoadOptions(threads=1, n_ctx=512)


@pytest.fixture(scope="module")
def pair(tiny_base, tiny_instruct):
    with load_model(tiny_base, OPTIONS) as base, load_model(tiny_instruct, OPTIONS) as instruct:
        yield base, instruct, str(tiny_base), str(tiny_instruct)


def make_dialog(qtbot, pair, out, limit: int):
    from desktop.ui.dialogs.eval_dialog import EvalDialog

    dialog = EvalDialog(*pair)
    qtbot.addWidget(dialog)
    dialog.limit.setValue(limit)
    dialog.out_dir.setText(str(out))
    return dialog


def test_run_shows_progress_then_the_table_and_the_question_browser(qtbot, pair, tmp_path):
    dialog = make_dialog(qtbot, pair, tmp_path / "out", limit=3)
    seen = []
    dialog.progressed.connect(lambda label, done, total, left: seen.append((label, done, total)))
    with qtbot.waitSignal(dialog.finished_run, timeout=300_000) as done:
        dialog.run_button.click()
    assert done.args[0] == tmp_path / "out", dialog.status.text()
    assert {label.split(" ")[0] for label, _, _ in seen} == {"base", "instruct-raw", "instruct-chat"}
    assert any(d == t == 12 for _, d, t in seen)  # 3 questions x 4 choices, each run
    assert "Done" in dialog.status.text()
    view = dialog.results
    assert not view.isHidden()
    assert view.table.rowCount() == 2  # tandem_mc: acc, acc_norm
    assert [view.table.horizontalHeaderItem(i).text() for i in range(5)] == [
        "task", "metric", "base", "instruct-raw", "instruct-chat"]
    rows = [json.loads(ln) for ln in (tmp_path / "out" / "questions.jsonl").read_text().splitlines()]
    assert view.questions.count() == 3
    view.filter.setCurrentText("Only base right")
    view.compare_with.setCurrentText("instruct-chat")
    expected = sum(1 for b in rows if b["run"] == "base" and b["correct"] and not next(
        r for r in rows if r["run"] == "instruct-chat" and r["doc_id"] == b["doc_id"])["correct"])
    assert view.questions.count() == expected
    view.filter.setCurrentText("All questions")
    view.questions.setCurrentRow(1)
    assert "← chosen" in view.detail.toPlainText()
    with qtbot.waitSignal(dialog.open_in_compare, timeout=2000) as opened:
        view.open_button.click()
    base_row = next(r for r in rows if r["run"] == "base" and r["doc_id"] == 1)
    assert opened.args[0] == base_row["prompt"] and opened.args[0].startswith("Question: ")


def test_stop_then_run_again_resumes(qtbot, pair, tmp_path):
    dialog = make_dialog(qtbot, pair, tmp_path / "out", limit=40)
    dialog.template.setCurrentText("raw")
    totals = []

    def on_progress(label, done, total, left):
        totals.append((label.split(" ")[0], done, total))
        if done >= 5 and dialog.stop_button.isEnabled():
            dialog.stop_button.click()

    dialog.progressed.connect(on_progress)
    with qtbot.waitSignal(dialog.finished_run, timeout=300_000) as stopped:
        dialog.run_button.click()
    assert stopped.args[0] is None
    assert dialog.status.text().startswith("Stopped")
    assert dialog.run_button.isEnabled()
    dialog.progressed.disconnect(on_progress)
    totals.clear()
    dialog.progressed.connect(lambda label, done, total, left: totals.append((label.split(" ")[0], done, total)))
    with qtbot.waitSignal(dialog.finished_run, timeout=300_000) as finished:
        dialog.run_button.click()
    assert finished.args[0] == tmp_path / "out"
    first_base = next(t for run, _, t in totals if run == "base")
    assert first_base <= 160 - 5  # the requests answered before Stop came from the cache


def test_without_lm_eval_the_dialog_says_how_to_get_it(qtbot, pair, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    dialog = make_dialog(qtbot, pair, tmp_path / "out", limit=3)
    assert not dialog.run_button.isEnabled()
    assert 'pip install "tandem-llm[eval]"' in dialog.status.text()
