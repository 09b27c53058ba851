"""The Compare pane over the real tiny base/instruct models: both stream, stop, presets, exact inputs, the
history round trip, and cross-scores checked against the engine's own ``score()``."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QPushButton, QWidget
from ui_helpers import GEN_TIMEOUT_MS, LOAD_TIMEOUT_MS, shown

from desktop.compare.analysis import align_scored
from desktop.compare.presets import DEFAULT_FEW_SHOT_TEMPLATE, FEW_SHOT_STOP, PRESETS, wrap_few_shot
from desktop.engine.types import SamplingParams

LONG_PROMPT = "Once upon a time"
PINNED_SEED = "4"  # runs that only need to last a while (stop mid-run, a pinned seed shown on both); re-picked when flash attention became the CPU default (seed 6 ended after 55 tokens)


def long_seed(pane, need: int = 2000) -> str:
    """A seed for which the base model writes ``need``+ tokens before its end token, found through the very
    handle and sampling the pane uses. (A random tiny model ends a text after ~800 tokens on average, and which
    seed gives a long one changes with any numeric change in llama.cpp: flash attention, threads, a new build.)"""
    import dataclasses

    params = pane.sampling.params(logprobs=0)
    handle = pane.model["base"].handle
    for seed in range(80):
        stream = handle.complete(LONG_PROMPT, dataclasses.replace(params, seed=seed), replace_running=False)
        stream.text()
        if stream.final.stats.completion_tokens >= need:
            return str(seed)
    pytest.fail(f"no seed in 0..79 makes the tiny base model write {need} tokens")


def open_compare(qtbot, window):
    """Show the pane (its default pair loads) and wait for both models."""
    window.show_page("compare")
    pane = window.compare_pane
    qtbot.waitUntil(lambda: all(m.handle is not None or m.error for m in pane.model.sides.values()),
                    timeout=LOAD_TIMEOUT_MS)
    assert not any(m.error for m in pane.model.sides.values())
    return pane


def run_and_wait(qtbot, pane, analysed: bool = True):
    with qtbot.waitSignal(pane.runEnded, timeout=GEN_TIMEOUT_MS) as ended:
        qtbot.mouseClick(pane.controls.run_button, Qt.MouseButton.LeftButton)
    if analysed:
        qtbot.waitUntil(lambda: pane.session.analysis_done and not pane.saving, timeout=GEN_TIMEOUT_MS)
    return ended.args[0]


def short_run(pane, prompt: str = "Who won the World Cup?", tokens: int = 24, seed: str | None = None):
    pane.controls.prompt_input.setPlainText(prompt)
    pane.sampling.max_tokens.setValue(tokens)
    if seed is not None:
        pane.sampling.seed_pin.setChecked(True)
        pane.sampling.seed.setText(seed)


def test_named_widgets_and_the_default_pair(qtbot, window, tiny_base, tiny_instruct):
    pane = window.findChild(QWidget, "comparePane")
    assert pane is window.compare_pane
    for cls, name in ((QComboBox, "basePicker"), (QComboBox, "instructPicker"), (QPlainTextEdit, "promptInput"),
                      (QPushButton, "runButton"), (QPushButton, "stopButton"), (QPlainTextEdit, "baseOutput"),
                      (QPlainTextEdit, "instructOutput")):
        assert pane.findChild(cls, name) is not None, name
    pane = open_compare(qtbot, window)
    assert pane.columns["base"].bar.combo.currentData().endswith(tiny_base.name)
    assert pane.columns["instruct"].bar.combo.currentData().endswith(tiny_instruct.name)
    assert pane.model["base"].handle.info.kind == "base"
    assert pane.model["instruct"].handle.info.kind == "instruct"
    # picking the instruct model on the base side is allowed; the other side follows to its sibling
    base_index = pane.columns["base"].bar.combo.findData(pane.columns["instruct"].bar.combo.currentData())
    pane.columns["base"].bar.combo.setCurrentIndex(base_index)
    assert pane.columns["instruct"].bar.combo.currentData().endswith(tiny_base.name)


def test_both_columns_stream_at_once_with_one_seed(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, LONG_PROMPT, tokens=3000, seed=PINNED_SEED)
    batches = {"base": 0, "instruct": 0}
    both_running_with_text = []

    def count(side):
        def on_tokens(_events):
            batches[side] += 1
            if all(j.running for j in pane.jobs.values()) and pane.columns["base"].output.toPlainText() \
                    and pane.columns["instruct"].output.toPlainText():
                both_running_with_text.append(True)
        return on_tokens

    with qtbot.waitSignal(pane.runEnded, timeout=GEN_TIMEOUT_MS) as ended:
        qtbot.mouseClick(pane.controls.run_button, Qt.MouseButton.LeftButton)
        for side in ("base", "instruct"):
            pane.jobs[side].tokens.connect(count(side))
        assert not pane.controls.run_button.isEnabled() and pane.controls.stop_button.isEnabled()
    finals = ended.args[0]
    assert both_running_with_text, "the two columns never streamed at the same time"
    assert batches["base"] > 1 and batches["instruct"] > 1
    for side, output in (("base", pane.columns["base"].output), ("instruct", pane.columns["instruct"].output)):
        final = finals[side]
        assert final.error is None and final.finish_reason in ("stop", "length")
        assert output.toPlainText() == shown(final.text) and final.stats.completion_tokens > 100
        stats = pane.columns[side].stats.text()
        assert f"{final.stats.completion_tokens:,} tokens" in stats and "tok/s" in stats and "first token" in stats
        spans = pane.columns[side].tracker.spans  # token probabilities for the hover cards
        assert spans and all(s.logprob is not None and math.isfinite(s.logprob) and s.top for s in spans)
    assert finals["base"].stats.seed == finals["instruct"].stats.seed == int(PINNED_SEED)
    assert pane.controls.run_button.isEnabled() and not pane.controls.stop_button.isEnabled()


def test_an_unpinned_run_draws_one_seed_for_both_and_shows_it(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane)
    assert not pane.sampling.seed_pin.isChecked()
    finals = run_and_wait(qtbot, pane, analysed=False)
    seed = finals["base"].stats.seed
    assert seed is not None and seed == finals["instruct"].stats.seed == pane.session.seed
    assert pane.sampling.seed.text() == str(seed) and str(seed) in pane.widgets.seed_label.text()


def test_stop_stops_both(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, LONG_PROMPT, tokens=3000, seed=PINNED_SEED)
    with qtbot.waitSignal(pane.runEnded, timeout=GEN_TIMEOUT_MS) as ended:
        pane.run()
        # both have started (a tiny model's tokens arrive ~30 at a time, 30 ms apart: stop at the first ones)
        qtbot.waitUntil(lambda: all(pane.columns[s].events for s in ("base", "instruct")), timeout=GEN_TIMEOUT_MS)
        qtbot.mouseClick(pane.controls.stop_button, Qt.MouseButton.LeftButton)
    for side in ("base", "instruct"):
        final = ended.args[0][side]
        assert final.finish_reason == "cancelled", side
        assert pane.columns[side].text() == final.text and final.text  # what was written stays
        assert pane.columns[side].output.toPlainText() == shown(final.text)
        assert pane.columns[side].stats.text().startswith("stopped")
    assert pane.controls.run_button.isEnabled() and not pane.controls.stop_button.isEnabled()
    qtbot.waitUntil(lambda: pane.session.analysis_done, timeout=GEN_TIMEOUT_MS)  # partial outputs are still scored
    assert pane.session.scores["base"]["cross"].tokens and pane.session.scores["instruct"]["cross"].tokens


def test_presets_fill_the_prompt_and_say_what_to_look_for(qtbot, window):
    pane = window.compare_pane
    assert {p.key for p in PRESETS} >= {"worldcup", "list", "summarize", "explain", "write", "translate", "story"}
    for p in PRESETS:
        qtbot.mouseClick(pane.controls.preset_buttons[p.key], Qt.MouseButton.LeftButton)
        assert pane.controls.prompt_input.toPlainText() == p.prompt
        assert p.look_for[:40] in pane.controls.hint.text()
    assert pane.controls.prompt_input.toPlainText() == "Once upon a time"
    pane.controls.prompt_input.setPlainText("something of my own")
    assert "What to look for" not in pane.controls.hint.text()


def test_inputs_view_shows_raw_and_templated_text(qtbot, window):
    pane = open_compare(qtbot, window)
    qtbot.mouseClick(pane.controls.preset_buttons["worldcup"], Qt.MouseButton.LeftButton)
    pane.sampling.max_tokens.setValue(8)
    run_and_wait(qtbot, pane)
    qtbot.mouseClick(pane.controls.tab_buttons["inputs"], Qt.MouseButton.LeftButton)
    assert pane.widgets.details.isVisible() and pane.widgets.details.currentWidget() is pane.widgets.views["inputs"]
    base_view, instruct_view = pane.widgets.views["inputs"].base_view, pane.widgets.views["inputs"].instruct_view
    assert base_view.toPlainText() == "Who won the World Cup?"
    assert instruct_view.toPlainText() == ("<|im_start|>user\nWho won the World Cup?<|im_end|>\n"
                                           "<|im_start|>assistant\n")
    assert instruct_view.highlighted_tokens() == ["<|im_start|>", "<|im_end|>", "<|im_start|>"]
    assert base_view.highlighted_tokens() == []
    # the engine's own rendering is what the view shows
    assert instruct_view.toPlainText() == pane.model["instruct"].handle.render_chat(
        [{"role": "user", "content": "Who won the World Cup?"}])
    qtbot.mouseClick(pane.controls.tab_buttons["inputs"], Qt.MouseButton.LeftButton)
    assert not pane.widgets.details.isVisible()


def test_few_shot_wraps_only_the_base_input(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, "Name a large animal.", tokens=200, seed="3")
    pane.controls.few_shot.setChecked(True)
    assert "Few-shot" in pane.controls.hint.text()
    run_and_wait(qtbot, pane, analysed=False)
    wrapped = wrap_few_shot(DEFAULT_FEW_SHOT_TEMPLATE, "Name a large animal.")
    assert wrapped.endswith("Q: Name a large animal.\nA:")
    assert pane.widgets.views["inputs"].base_view.toPlainText() == wrapped
    assert "<|im_start|>user\nName a large animal.<|im_end|>" in pane.widgets.views["inputs"].instruct_view.toPlainText()
    assert FEW_SHOT_STOP not in pane.columns["base"].output.toPlainText()  # the base run stops at the next "Q:"
    assert FEW_SHOT_STOP not in pane.session.params.stop  # the instruct model's settings are untouched
    # a template without {prompt} is refused with one line, and nothing runs
    pane.widgets.views["template"].edit.setPlainText("Q: nothing here\nA:")
    run_id, shown_before = pane.run_id, pane.columns["base"].output.toPlainText()
    pane.run()
    assert pane.notice.level == "error" and "{prompt}" in pane.notice.text()
    assert not pane.is_running() and pane.run_id == run_id and pane.columns["base"].output.toPlainText() == shown_before


def test_cross_scores_are_finite_and_match_the_engine(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, "Who won the World Cup?", tokens=40, seed="11")
    finals = run_and_wait(qtbot, pane)
    base_handle = pane.model["base"].handle
    instruct_handle = pane.model["instruct"].handle
    prompt = "Who won the World Cup?"
    base_text, instruct_text = finals["base"].text, finals["instruct"].text
    assert base_text and instruct_text
    expected = {
        # the base output scored by the instruct model, as its reply to the user message
        "base": instruct_handle.score(prompt, base_text, as_chat=True),
        # the instruct output scored by the base model, as a continuation of the raw prompt
        "instruct": base_handle.score(prompt, instruct_text),
    }
    for side in ("base", "instruct"):
        got = pane.session.scores[side]["cross"]
        assert [t.token_id for t in got.tokens] == [t.token_id for t in expected[side].tokens]
        assert [t.logprob for t in got.tokens] == pytest.approx([t.logprob for t in expected[side].tokens],
                                                                 abs=1e-4)
        assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in got.tokens)
        assert math.isfinite(got.mean_logprob)
        col = pane.columns[side]
        assert col.cross is got
        assert f"{math.exp(-got.mean_logprob):,.1f}" in col.surprise.text()  # perplexity, shown
        assert f"{got.mean_logprob:.3f}" in col.surprise.toolTip()  # mean logprob, on hover
    # own scores too: each output under its own model
    own_instruct = instruct_handle.score(prompt, instruct_text, as_chat=True)
    assert [t.logprob for t in pane.session.scores["instruct"]["own"].tokens] == pytest.approx(
        [t.logprob for t in own_instruct.tokens], abs=1e-4)
    # colouring by the other model's view: one overlay range per scored token that lies in the text
    pane.controls.colour_mode.setCurrentIndex(pane.controls.colour_mode.findData("cross"))
    for side in ("base", "instruct"):
        col = pane.columns[side]
        spans = align_scored(col.text(), col.cross.tokens)
        selections = col.output.extraSelections()  # runs of tokens in one colour step, covering the text
        assert spans and 0 < len(selections) <= len(spans)
        assert selections[0].cursor.selectionStart() == 0
        assert selections[-1].cursor.selectionEnd() == len(col.output.toPlainText())
        for before, after in zip(selections, selections[1:]):
            assert before.cursor.selectionEnd() >= after.cursor.selectionStart()
        assert col.tracker.mode == "plain"
        # the scored tokens cover the whole text, in order, without gaps (byte tokens of one multi-byte
        # character share that character)
        assert spans[0].start == 0 and spans[-1].end == len(col.text())
        for before, after in zip(spans, spans[1:]):
            assert before.start <= after.start <= before.end <= after.end
            if after.start < before.end:
                assert after.start == before.end - 1 and len(col.text()[after.start].encode()) > 1
        # the hover card finds the scored token under a position
        middle = spans[len(spans) // 2]
        found = col.cross_span_at(len(col.text()[:middle.start].encode("utf-16-le")) // 2)
        assert found is not None and found.start <= middle.start < found.end
    pane.controls.colour_mode.setCurrentIndex(pane.controls.colour_mode.findData("own"))
    assert not pane.columns["base"].output.extraSelections() and pane.columns["base"].tracker.mode == "probability"


def test_first_step_shows_both_distributions_and_their_overlap(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, "Who won the World Cup?", tokens=4, seed="1")
    run_and_wait(qtbot, pane)
    fs = pane.widgets.views["first_step"]
    assert len(fs.base) == 10 and len(fs.instruct) == 10
    direct = pane.model["base"].handle.complete(
        "Who won the World Cup?", SamplingParams(temperature=0, max_tokens=1, logprobs=10))
    top = next(iter(direct)).top
    assert [t.token_id for t in fs.base] == [t.token_id for t in top]
    ov = fs.overlap()
    assert 0.0 <= ov.mass <= 1.0 and len(ov.shared) <= 10
    assert f"{len(ov.shared)} of the top 10" in fs.summary.text()
    assert fs.tables["base"].rowCount() == 10 and fs.tables["instruct"].rowCount() == 10


def test_a_saved_run_reloads_and_exports(qtbot, make_window, tmp_path):
    window = make_window()
    pane = open_compare(qtbot, window)
    short_run(pane, "Explain why the sky is blue.", tokens=30, seed="21")
    finals = run_and_wait(qtbot, pane)
    run_id = pane.run_id
    assert run_id is not None and pane.sidebar.items()[0].id == run_id
    texts = {s: pane.columns[s].text() for s in ("base", "instruct")}
    stats = {s: pane.columns[s].stats.text() for s in ("base", "instruct")}
    surprise = {s: pane.columns[s].surprise.text() for s in ("base", "instruct")}
    templated = pane.widgets.views["inputs"].instruct_view.toPlainText()
    top_base = [t.text for t in pane.widgets.views["first_step"].base]

    # export: both columns, settings, stats
    path = pane.export_markdown(tmp_path / "run.md")
    markdown = path.read_text(encoding="utf-8")
    assert "Explain why the sky is blue." in markdown
    for side in ("base", "instruct"):
        assert finals[side].text in markdown
        assert f"{finals[side].stats.completion_tokens} tokens" in markdown
    assert "| seed | 21 |" in markdown and "| temperature | 0.7 |" in markdown
    assert "<|im_start|>assistant" in markdown and "Under the instruct model" in markdown
    assert "First step" in markdown

    # a new run empties the pane; opening the saved one brings everything back
    pane.new_item()
    assert pane.columns["base"].output.toPlainText() == "" and pane.controls.prompt_input.toPlainText() == ""
    pane.open_run(run_id)
    assert pane.controls.prompt_input.toPlainText() == "Explain why the sky is blue."
    for side in ("base", "instruct"):
        col = pane.columns[side]
        assert col.text() == texts[side] and col.stats.text() == stats[side]
        assert col.surprise.text() == surprise[side]
        assert len(col.tracker.spans) > 0 and all(s.top for s in col.tracker.spans)
    assert pane.widgets.views["inputs"].instruct_view.toPlainText() == templated
    assert [t.text for t in pane.widgets.views["first_step"].base] == top_base
    assert pane.sampling.seed.text() == "21"

    # and after a restart on the same TANDEM_HOME, the pane reopens the last run
    window.close()
    again = make_window()
    again.show_page("compare")
    restored = again.compare_pane
    assert restored.run_id == run_id
    assert {s: restored.columns[s].text() for s in ("base", "instruct")} == texts


def test_keyboard_runs_and_stops(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, LONG_PROMPT, tokens=3000, seed=PINNED_SEED)
    pane.controls.prompt_input.setFocus()
    with qtbot.waitSignal(pane.runEnded, timeout=GEN_TIMEOUT_MS) as ended:
        qtbot.keyClick(pane.controls.prompt_input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert pane.is_running() and pane.controls.prompt_input.toPlainText() == LONG_PROMPT  # no newline typed
        qtbot.waitUntil(lambda: bool(pane.columns["instruct"].events), timeout=GEN_TIMEOUT_MS)  # started
        qtbot.keyClick(pane.controls.prompt_input, Qt.Key.Key_Escape)
    assert {f.finish_reason for f in ended.args[0].values()} == {"cancelled"}


def test_swapped_models_show_the_engines_refusal_and_stay_usable(qtbot, window, tiny_base, tiny_instruct):
    pane = open_compare(qtbot, window)
    # a person puts the instruct model on the base side: the instruct side follows to its sibling, the base
    pane.columns["base"].bar.combo.setCurrentIndex(pane.columns["base"].bar.combo.findData(pane.columns["instruct"].bar.combo.currentData()))
    qtbot.waitUntil(lambda: pane.model.both_loaded(), timeout=LOAD_TIMEOUT_MS)
    assert pane.model["instruct"].handle.info.kind == "base"
    assert pane.notice.level == "warning" and "experiment" in pane.notice.text()
    short_run(pane, "Who won the World Cup?", tokens=16, seed="2")
    finals = run_and_wait(qtbot, pane)
    assert finals["base"].error is None and finals["base"].text  # the instruct model, fed raw text
    assert finals["instruct"].error is not None  # a base model has no chat template
    assert pane.columns["instruct"].stats.text().startswith("failed")
    assert "Not scored" in pane.widgets.analysis_label.text()
    # back to the right pair: the pane works again
    pane.columns["base"].bar.combo.setCurrentIndex(pane.columns["base"].bar.combo.findData(str(pane.columns["instruct"].bar.combo.currentData())))
    qtbot.waitUntil(lambda: pane.model.both_loaded()
                    and pane.model["base"].handle.info.kind == "base", timeout=LOAD_TIMEOUT_MS)
    finals = run_and_wait(qtbot, pane)
    assert finals["base"].error is None and finals["instruct"].error is None


def test_event_loop_keeps_running_while_both_stream_and_score(qtbot, window):
    """Reports the longest GUI stall over a long run (both streams, then cross-scoring); the bound is generous
    because the test machine is shared."""
    import time

    from PySide6.QtCore import QTimer

    pane = open_compare(qtbot, window)
    short_run(pane, LONG_PROMPT, tokens=3000)
    short_run(pane, LONG_PROMPT, tokens=3000, seed=long_seed(pane))
    last, worst = [time.monotonic()], [0.0]

    def tick():
        now = time.monotonic()
        worst[0] = max(worst[0], now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    finals = run_and_wait(qtbot, pane)
    timer.stop()
    assert sum(f.stats.completion_tokens for f in finals.values()) > 2000
    print(f"\nlongest event-loop stall during a compare run: {worst[0] * 1000:.0f} ms")
    assert worst[0] < 1.0
    # the base output (~2,000 tokens) does not fit the instruct model's 2,048-token context after its chat
    # template: its beginning is scored, and the pane says so
    assert "Could not" not in pane.widgets.analysis_label.text(), pane.widgets.analysis_label.text()
    base_text = pane.columns["base"].text()
    chars = pane.session.scored_chars["base"]["cross"]
    assert chars is not None and 0 < chars < len(base_text)
    assert "does not fit" in pane.columns["base"].surprise.text()
    expected = pane.model["instruct"].handle.score(LONG_PROMPT, base_text[:chars], as_chat=True)
    got = pane.session.scores["base"]["cross"]
    assert [t.logprob for t in got.tokens] == pytest.approx([t.logprob for t in expected.tokens], abs=1e-4)
    assert all(pane.session.scores[s][k] is not None for s in ("base", "instruct") for k in ("own", "cross"))


def test_a_run_interrupted_by_new_is_kept_as_stopped(qtbot, window):
    pane = open_compare(qtbot, window)
    short_run(pane, LONG_PROMPT, tokens=3000, seed=PINNED_SEED)
    pane.run()
    qtbot.waitUntil(lambda: all(c.events for c in pane.columns.values()), timeout=GEN_TIMEOUT_MS)  # both started
    pane.new_item()  # Ctrl+N mid-run
    assert not pane.is_running() and pane.columns["base"].output.toPlainText() == ""
    qtbot.waitUntil(lambda: not pane.saving and bool(pane.sidebar.items()), timeout=10_000)
    run = window.context.history.get_compare_run(pane.sidebar.items()[0].id)
    for side in ("base", "instruct"):
        assert run.data[side]["finish_reason"] == "cancelled" and run.data[side]["text"]
    assert pane.run_id is None  # the pane shows the new, empty run


def test_evaluate_opens_on_the_loaded_pair_and_a_question_comes_back_to_the_prompt(qtbot, window):
    """Compare's "Evaluate…" opens the evaluation on the two loaded models; a question the person opens from
    its browser lands in Compare's prompt box."""
    pane = open_compare(qtbot, window)
    qtbot.mouseClick(pane.controls.evaluate_button, Qt.MouseButton.LeftButton)
    dialog = pane.evaluate.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.models == {"base": pane.model["base"].handle, "instruct": pane.model["instruct"].handle}
    dialog.open_in_compare.emit("Which planet is known as the Red Planet?")
    assert pane.controls.prompt_input.toPlainText() == "Which planet is known as the Red Planet?"
    qtbot.mouseClick(pane.controls.evaluate_button, Qt.MouseButton.LeftButton)
    assert pane.evaluate.dialog is dialog  # one at a time
    pane.shutdown()
    assert not dialog.isVisible()
