"""Compare's alignment lens on the real tiny models (no mocks): the Alignment view on a run's existing
instruct answer, the refusal for two vocabularies, the in-context alignment preset, and "Run a prompt set…"."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from test_compare_pane import open_compare, run_and_wait, short_run
from ui_helpers import GEN_TIMEOUT_MS, LOAD_TIMEOUT_MS

from desktop.core import synth
from desktop.lens import analyze, preset
from desktop.lens.shift import CLASSES
from desktop.ui.compare.compare_alignment import token_card
from desktop.ui.compare.compare_alignment_plot import class_colour
from desktop.ui.widgets.theme import is_dark


def greedy(pane, prompt: str, tokens: int = 24) -> None:
    short_run(pane, prompt, tokens=tokens, seed="0")
    s = pane.sampling
    s.temperature.setValue(0.0)
    s.repeat_penalty.setValue(1.0)


def open_alignment(qtbot, pane):
    view = pane.widgets.views["alignment"]
    with qtbot.waitSignal(view.measured, timeout=GEN_TIMEOUT_MS):
        qtbot.mouseClick(pane.controls.tab_buttons["alignment"], Qt.MouseButton.LeftButton)
    return view


def test_alignment_view_of_a_sibling_pair_matches_the_lens(qtbot, window):
    pane = open_compare(qtbot, window)
    greedy(pane, "List three colours.")
    run_and_wait(qtbot, pane)
    view = open_alignment(qtbot, pane)
    result = view.result
    assert result is not None and result.context == "plain"
    # the run's own instruct tokens, by id: nothing was generated again
    assert [t.token_id for t in result.tokens] == [e.token_id for e in pane.columns["instruct"].events]
    shown = view.shares_shown()
    assert sum(shown.values()) == pytest.approx(100.0, abs=0.15)
    assert shown == pytest.approx({c: getattr(result.shares, c) for c in CLASSES}, abs=0.05)
    # the same measurement made directly through the lens, on the pane's own models
    base, instruct = (pane.model[s].handle for s in ("base", "instruct"))
    direct, _, _ = analyze.shift_answer(base, instruct, pane.session.prompt, [t.token_id for t in result.tokens])
    assert [t.rank for t in direct.tokens] == [t.rank for t in result.tokens]
    # each token's colour is its class's, and its hover card says its rank
    dark = is_dark(view.text_view)
    for t, start in zip(result.tokens, view.text_view._starts):
        if not t.text:
            continue
        assert view.text_view.class_at(start).background().color() == class_colour(t.cls, dark), t
        assert view.text_view.token_at(start) is t
        assert f"rank {t.rank:,}" in token_card(t)
    assert view.profile.bars() == [(t.rank, t.cls) for t in result.tokens]
    # the paper's rows sit beside this run's
    assert view.shares_table.rowCount() == 3 and "paper" in view.shares_table.item(1, 0).text()
    # another base context measures again, without a new generation
    with qtbot.waitSignal(view.measured, timeout=GEN_TIMEOUT_MS):
        view.context_choice.setCurrentIndex(view.context_choice.findData("urial"))
    assert view.result.context == "urial" and "Query" in view.status.text()
    # Stop drops a measurement under way: its result never lands
    view.context_choice.setCurrentIndex(view.context_choice.findData("plain"))
    call = pane.controllers["alignment"]._call
    assert call is not None and view.stop_button.isEnabled()
    qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    assert call.wait(30) and pane.controllers["alignment"]._call is None
    QApplication.processEvents()
    assert view.result is None and view.status.text().startswith("Stopped")
    assert view.measure_button.isEnabled() and not view.stop_button.isEnabled()


def test_a_pair_from_two_vocabularies_is_refused_in_one_line(qtbot, make_window, ui_models, tiny_instruct):
    other = synth.write_llama_gguf(ui_models / "tiny-other-vocab.gguf", instruct=True, seed=4,
                                   shape=synth.ModelShape(extra_vocab=7))
    window = make_window()
    pane = open_compare(qtbot, window)
    pane.pair.select("instruct", str(other))
    qtbot.waitUntil(lambda: pane.model["instruct"].handle is not None
                    and pane.columns["instruct"].bar.current_path().endswith(other.name), timeout=LOAD_TIMEOUT_MS)
    greedy(pane, "Who won the World Cup?", tokens=12)
    finals = run_and_wait(qtbot, pane)
    assert all(f.error is None for f in finals.values())
    view = open_alignment(qtbot, pane)
    text = view.status.text()
    assert "different vocabularies" in text and "sibling pair" in text and "\n" not in text
    assert view.result is None and not view.body.isVisible()
    # the rest of Compare kept working: the run was cross-scored
    assert pane.columns["base"].cross is not None and pane.columns["instruct"].cross is not None


def test_the_in_context_alignment_preset_wraps_the_base_prompt_and_stops_at_query(qtbot, window):
    pane = open_compare(qtbot, window)
    pane.controls.few_shot.setChecked(True)
    pane.controls.icl_toggle.setChecked(True)
    assert not pane.controls.few_shot.isChecked()  # one or the other
    assert "# Query:" in pane.controls.hint.text()
    greedy(pane, "Explain why the sky is blue.", tokens=200)
    run_and_wait(qtbot, pane)
    assert pane.session.inputs["base"] == preset.wrap_prompt("Explain why the sky is blue.")
    request = pane._request()  # what the base side was sent: the preset, stopping at the next "# Query:"
    assert request.base_input == pane.session.inputs["base"] and "# Query:" in request.base_params.stop
    assert "# Query:" not in request.params.stop  # the instruct side is sent as before
    assert "# Query:" not in pane.columns["base"].text()
    final = pane.session.finals["base"]
    assert final.finish_reason in ("stop", "length")
    view = open_alignment(qtbot, pane)
    assert view.result.context == "icl"
    assert "Base + preamble answer vs the instruct answer" in view.agreement.text()
    measured_ids = [t.token_id for t in view.result.tokens]
    # the run reopened from the history: the preset is on again and the view measures the saved tokens
    run_id = pane.run_id
    pane.new_item()
    pane.controls.icl_toggle.setChecked(False)
    assert view.result is None
    with qtbot.waitSignal(view.measured, timeout=GEN_TIMEOUT_MS):
        pane.open_run(run_id)
    assert pane.controls.icl_toggle.isChecked() and not pane.controls.few_shot.isChecked()
    assert view.result.context == "icl" and [t.token_id for t in view.result.tokens] == measured_ids
    assert pane.state()["in_context"] is True  # kept with the pane's state for the next start


def test_a_prompt_set_runs_stops_and_resumes_to_a_report(qtbot, window, tmp_path):
    pane = open_compare(qtbot, window)
    prompts = tmp_path / "two.txt"
    prompts.write_text("List three colours.\nOnce upon a time\n", encoding="utf-8")
    dialog = pane.controllers["alignment"].open_prompt_set()
    qtbot.addWidget(dialog)
    opened = []
    dialog.open_url = opened.append
    dialog.builtin.setChecked(False)
    dialog.prompt_file.setText(str(tmp_path / "missing.jsonl"))
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)  # a bad file: one line, nothing runs
    assert dialog.status.text().startswith("No prompt file at") and not dialog.running
    dialog.prompt_file.setText(str(prompts))
    dialog.out_dir.setText(str(tmp_path / "out"))
    dialog.max_tokens.setValue(200)

    def stop_on_the_second(p):
        if p.current == "2":
            dialog.stop()

    dialog.progressed.connect(stop_on_the_second)
    with qtbot.waitSignal(dialog.finished_run, timeout=GEN_TIMEOUT_MS) as done:
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    report = done.args[0]
    assert report == tmp_path / "out" / "report.md" and report.exists()
    assert "Stopped" in dialog.status.text() and str(report) in dialog.status.text()
    first = sorted(p.name for p in (tmp_path / "out" / "records").glob("*.json"))
    assert first in (["0000.json"], ["0000.json", "0001.json"])
    dialog.progressed.disconnect(stop_on_the_second)
    seen = []
    dialog.progressed.connect(seen.append)
    with qtbot.waitSignal(dialog.finished_run, timeout=GEN_TIMEOUT_MS):
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert seen[0].skipped == len(first)  # resumed: nothing done twice
    assert sorted(p.name for p in (tmp_path / "out" / "records").glob("*.json")) == ["0000.json", "0001.json"]
    assert "Done" in dialog.status.text() and dialog.progress.value() == 2
    assert "List three colours." in report.read_text() and "Once upon a time" in report.read_text()
    assert [u.toLocalFile() for u in opened] == [str(report), str(report)]
    shutil.rmtree(tmp_path / "out")


def test_a_model_without_ranks_shows_its_one_line_reason(qtbot, window, monkeypatch):
    """A remote server says through its capabilities that it reports no ranks; the view gives its reason."""
    from desktop.engine.model import Capabilities

    pane = open_compare(qtbot, window)
    greedy(pane, "Who won the World Cup?", tokens=8)
    run_and_wait(qtbot, pane)
    handle = pane.model["base"].handle
    monkeypatch.setattr(type(handle), "capabilities", property(
        lambda self: Capabilities(score_ranks=False, scoring_note="this server returns no token ranks")))
    view = open_alignment(qtbot, pane)
    assert view.status.text() == ("The base model can't be used for token shift: this server returns no "
                                  "token ranks")
    assert view.result is None


def test_the_same_file_on_both_sides_greedy_is_all_unshifted(qtbot, window, tiny_instruct):
    """One instruct file in both columns, greedy; the base side reads the query through its own chat template,
    as the instruct side did: every token of the answer is the base side's first choice."""
    pane = open_compare(qtbot, window)
    path = pane.columns["instruct"].bar.combo.currentData()
    assert path.endswith(tiny_instruct.name)
    pane.pair.select("base", path)
    qtbot.waitUntil(lambda: pane.model["base"].handle is not None
                    and pane.columns["base"].bar.current_path() == path, timeout=LOAD_TIMEOUT_MS)
    greedy(pane, "List three colours.", tokens=32)
    run_and_wait(qtbot, pane)
    view = open_alignment(qtbot, pane)
    assert view.result.context == "plain"  # the paper's context first: the chat template itself shifts tokens
    with qtbot.waitSignal(view.measured, timeout=GEN_TIMEOUT_MS):
        view.context_choice.setCurrentIndex(view.context_choice.findData("chat"))
    assert view.result.context == "chat" and view.result.shares.n == len(pane.columns["instruct"].events)
    assert view.shares_shown() == {"unshifted": 100.0, "marginal": 0.0, "shifted": 0.0}
    assert all(t.rank == 1 for t in view.result.tokens)
    assert view.shifted_table.item(0, 0).text() == "no shifted tokens"
