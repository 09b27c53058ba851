"""The window and the Completion pane, driven like a person would, over the real tiny models."""

from __future__ import annotations

import html
import os
import signal

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QPushButton, QTextEdit, QWidget
from ui_helpers import pick_model, run_and_wait, shown

from desktop.ui.widgets.token_view import alternatives_html, visible_token


def pin_long_seed(pane):
    """With the pane's default sampling, this seed makes tiny-base write ~2,900 tokens after
    "Once upon a time" before its end-of-text token: long enough to stop or kill it mid-stream."""
    pane.sampling.seed_pin.setChecked(True)
    pane.sampling.seed.setText("5")


def test_window_has_every_page_and_named_widget(window, tiny_base, tiny_instruct):
    for name in ("modelsPage", "completionPane", "chatPane", "comparePane"):
        assert window.findChild(QWidget, name) is not None, name
    completion = window.findChild(QWidget, "completionPane")
    for cls, name in ((QComboBox, "modelPicker"), (QPlainTextEdit, "promptEditor"),
                      (QPushButton, "generateButton"), (QPushButton, "stopButton")):
        assert completion.findChild(cls, name) is not None, name
    chat = window.findChild(QWidget, "chatPane")
    for cls, name in ((QComboBox, "modelPicker"), (QPlainTextEdit, "messageInput"), (QPushButton, "sendButton"),
                      (QPushButton, "stopButton"), (QTextEdit, "transcript")):
        assert chat.findChild(cls, name) is not None, name
    combo = completion.findChild(QComboBox, "modelPicker")
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert any(tiny_base.name in t for t in texts) and any(tiny_instruct.name in t for t in texts)
    # navigation switches pages
    window.nav.setCurrentRow(2)
    assert window.stack.currentWidget() is chat


def test_generate_continues_the_document_and_marks_it(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    handle = pick_model(qtbot, pane, "tiny-base.gguf")
    assert pane.model_bar.badge.text().strip() == "BASE"
    assert "tiny-base.gguf" in window.loaded_label.text()
    assert "CPU" in window.backend_label.text()
    pane.sampling.max_tokens.setValue(40)
    pane.editor.setPlainText("Once upon a time")
    final = run_and_wait(qtbot, pane, lambda: qtbot.mouseClick(pane.generate_button, Qt.MouseButton.LeftButton))
    assert final.error is None and final.finish_reason in ("stop", "length")
    text = pane.editor.toPlainText()
    assert text.startswith("Once upon a time") and text[len("Once upon a time"):] == shown(final.text)
    # every generated token is tracked, and the marks cover exactly the generated part
    spans = pane.tracker.spans
    assert "".join(s.text for s in spans) == final.text
    if final.text:
        assert pane.tracker.marked_ranges() == [(len("Once upon a time"), len(text))]
        assert all(s.logprob is not None and s.top for s in spans)  # alternatives recorded for the token view
    assert pane.stats_label.text().startswith(("finished", "reached the token limit"))
    assert window.context_label.text().startswith("Context ")
    assert handle.info.n_ctx > 0


def test_pinned_seed_reproduces_the_same_text(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    pick_model(qtbot, pane, "tiny-base.gguf")
    pane.sampling.max_tokens.setValue(30)
    pane.sampling.seed_pin.setChecked(True)
    pane.sampling.seed.setText("1234")
    outputs = []
    for _ in range(2):
        pane.editor.setPlainText("The king and the queen")
        outputs.append(run_and_wait(qtbot, pane, pane.generate).text)
    assert outputs[0] == outputs[1]
    pane.sampling.seed_pin.setChecked(False)  # unpinned: the seed used is shown, ready to pin
    final = run_and_wait(qtbot, pane, pane.generate)
    assert pane.sampling.seed.text() == str(final.stats.seed)


def test_stop_keeps_the_text_and_the_editor_is_editable_again(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    pick_model(qtbot, pane, "tiny-base.gguf")
    pane.sampling.max_tokens.setValue(0)  # no limit: runs until stopped
    pin_long_seed(pane)
    pane.editor.setPlainText("Once upon a time")
    with qtbot.waitSignal(pane.generationEnded, timeout=40_000) as ended:
        qtbot.keyClick(pane.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # the shortcut
        assert pane.is_generating() and pane.editor.isReadOnly()
        assert pane.stop_button.isEnabled() and not pane.generate_button.isEnabled()
        qtbot.waitUntil(lambda: len(pane.tracker) > 0 or not pane.is_generating(), timeout=30_000)
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert ended.args[0].finish_reason == "cancelled"
    assert pane.stats_label.text().startswith("stopped")
    kept = pane.editor.toPlainText()
    assert kept.startswith("Once upon a time") and len(kept) > len("Once upon a time")
    assert not pane.editor.isReadOnly() and pane.generate_button.isEnabled()


def test_editing_generated_text_removes_its_mark(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    pick_model(qtbot, pane, "tiny-base.gguf")
    pane.sampling.max_tokens.setValue(40)
    pane.sampling.seed_pin.setChecked(True)
    pane.sampling.seed.setText("7")
    pane.editor.setPlainText("Once")
    run_and_wait(qtbot, pane, pane.generate)
    spans = pane.tracker.spans
    assert len(spans) >= 3, "the pinned seed should give a few tokens"
    victim = spans[1]
    cursor = pane.editor.textCursor()
    cursor.setPosition(victim.start + (1 if victim.end - victim.start > 1 else 0))
    pane.editor.setTextCursor(cursor)
    qtbot.keyClicks(pane.editor, "ZZ")
    qtbot.wait(20)
    after = pane.tracker.spans
    assert all(not (s.start <= cursor.position() - 1 < s.end) for s in after)  # the typed text is not marked
    assert len(after) == len(spans) - 1  # only the edited token lost its mark
    assert after[0] == spans[0]
    assert after[-1].end == spans[-1].end + 2  # later tokens moved with the edit


def test_token_view_alternative_replaces_and_continues(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    pick_model(qtbot, pane, "tiny-base.gguf")
    pane.token_toggle.setChecked(True)
    pane.sampling.max_tokens.setValue(12)
    pane.sampling.seed_pin.setChecked(True)
    pane.sampling.seed.setText("99")
    pane.editor.setPlainText("Hello")
    run_and_wait(qtbot, pane, pane.generate)
    spans = pane.tracker.spans
    assert spans and pane.tracker.mode == "probability"
    index = min(2, len(spans) - 1)
    alternatives = pane.tracker.alternatives(index)
    assert alternatives, "top-k alternatives were recorded"
    card = alternatives_html(spans[index])  # the hover card: each alternative with its probability
    assert all(html.escape(visible_token(a.text)) in card for a in spans[index].top[:5]) and "%" in card
    menu = pane.tracker.show_alternatives_menu(index)
    assert len(menu.actions()) == len(alternatives)
    menu.close()
    prefix = pane.editor.toPlainText()[: spans[index].start]
    choice = alternatives[0].text
    final = run_and_wait(qtbot, pane, lambda: menu.actions()[0].trigger())
    assert final.error is None
    text = pane.editor.toPlainText()
    assert text.startswith(prefix + choice)
    assert pane.tracker.spans[index].text == choice  # the chosen alternative is now that token


def test_instruct_model_in_completion_is_allowed_but_flagged(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    assert pane.model_notice.isVisible() and "instruct model" in pane.model_notice.text()
    pane.sampling.max_tokens.setValue(5)
    pane.editor.setPlainText("Hi")
    assert run_and_wait(qtbot, pane, pane.generate).error is None


def test_worker_killed_mid_stream_shows_the_error_and_the_app_recovers(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    handle = pick_model(qtbot, pane, "tiny-base.gguf")
    pane.sampling.max_tokens.setValue(0)
    pin_long_seed(pane)
    pane.editor.setPlainText("Once upon a time")
    with qtbot.waitSignal(pane.generationEnded, timeout=60_000) as ended:
        pane.generate()
        qtbot.waitUntil(lambda: len(pane.tracker) > 0, timeout=30_000)
        assert pane.is_generating(), "still streaming when the worker is killed"
        os.kill(handle.pid, signal.SIGKILL)
    assert ended.args[0].finish_reason == "error"
    assert pane.notice.level == "error"
    assert "worker process" in pane.notice.text() and "Generate" in pane.notice.text()
    assert not pane.editor.isReadOnly() and pane.generate_button.isEnabled()
    # the same pane generates again: the model comes back in a fresh worker
    before = pane.editor.toPlainText()
    pane.sampling.max_tokens.setValue(10)
    final = run_and_wait(qtbot, pane, pane.generate)
    assert final.error is None, final.error
    assert pane.editor.toPlainText().startswith(before)
    assert pane.notice.level != "error"


def test_undo_after_generation_drops_the_tokens_cleanly(qtbot, window):
    pane = window.completion_pane
    window.show_page("completion")
    pick_model(qtbot, pane, "tiny-base.gguf")
    pane.sampling.max_tokens.setValue(20)
    pane.editor.setPlainText("Once")
    run_and_wait(qtbot, pane, pane.generate)
    pane.editor.moveCursor(QTextCursor.MoveOperation.End)
    while pane.editor.document().isUndoAvailable() and len(pane.editor.toPlainText()) > 4:
        pane.editor.undo()
    qtbot.wait(20)
    assert all(s.end <= len(pane.editor.toPlainText()) for s in pane.tracker.spans)
