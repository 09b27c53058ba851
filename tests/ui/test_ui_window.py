"""The window as a whole: history and state restored after a restart, export/import, settings, the event
loop's responsiveness while two generations stream, and a cold start without the heavy libraries."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtGui import QTextCursor
from ui_helpers import pick_model, run_and_wait

from desktop.core import paths
from desktop.core.history import title_from_text
from desktop.core.settings import load_settings, save_settings
from desktop.ui.widgets.theme import is_dark


def test_history_and_state_are_restored_after_a_restart(qtbot, make_window, ui_models):
    window = make_window()
    window.show_page("completion")
    completion = window.completion_pane
    pick_model(qtbot, completion, "tiny-base.gguf")
    completion.sampling.max_tokens.setValue(12)
    completion.sampling.temperature.setValue(0.35)
    completion.editor.setPlainText("The first document")
    run_and_wait(qtbot, completion, completion.generate)
    document_text = completion.editor.toPlainText()
    marks = completion.tracker.marked_ranges()

    window.show_page("chat")
    chat = window.chat_pane
    pick_model(qtbot, chat, "tiny-instruct.gguf")
    chat.sampling.max_tokens.setValue(8)
    chat.system_prompt.setPlainText("Be kind.")
    chat.input.setPlainText("hello from before the restart")
    run_and_wait(qtbot, chat, chat.send)
    transcript = chat.transcript.toPlainText()
    window.resize(window.minimumSizeHint().width() + 37, 745)
    qtbot.wait(50)
    size = (window.width(), window.height())
    window.close()
    assert not window.context.models.loaded_models()  # closing unloads the models

    again = make_window()
    assert again.stack.currentWidget() is again.chat_pane  # the page that was open
    # (the offscreen screen is 800x600, so Qt clamps a restored width to it; the height shows the restore)
    assert again.height() == size[1] and again.context.ui_state("window")["geometry"]
    assert again.completion_pane.editor.toPlainText() == document_text
    assert again.completion_pane.tracker.marked_ranges() == marks  # generated text still marked
    assert abs(again.completion_pane.sampling.temperature.value() - 0.35) < 1e-9
    assert again.chat_pane.transcript.toPlainText() == transcript
    assert again.chat_pane.system_prompt.toPlainText() == "Be kind."
    assert [i.title for i in again.chat_pane.sidebar.items()] == ["hello from before the restart"]
    assert [i.title for i in again.completion_pane.sidebar.items()] == [title_from_text(document_text)]
    # the last-used models come back: the visible pane's at once, the other's when it is shown
    qtbot.waitUntil(lambda: again.chat_pane.model.handle is not None, timeout=60_000)
    assert again.chat_pane.model_bar.current_path().endswith("tiny-instruct.gguf")
    again.show_page("completion")
    qtbot.waitUntil(lambda: again.completion_pane.model.handle is not None, timeout=60_000)
    assert again.completion_pane.model_bar.current_path().endswith("tiny-base.gguf")


def test_sidebar_search_rename_delete(qtbot, window):
    pane = window.completion_pane
    store = window.context.history
    a = store.save_document("A story about the sea")
    b = store.save_document("Notes on football")
    pane.sidebar.refresh()
    assert [i.id for i in pane.sidebar.items()] == [b, a]
    pane.sidebar.search.setText("SEA")
    qtbot.waitUntil(lambda: [i.id for i in pane.sidebar.items()] == [a], timeout=2000)
    pane.sidebar.search.clear()
    qtbot.waitUntil(lambda: len(pane.sidebar.items()) == 2, timeout=2000)
    pane.sidebar.opened.emit(a)
    assert pane.editor.toPlainText() == "A story about the sea"
    assert pane.sidebar.rename_item(a, "Sea story")
    assert store.get_document(a).title == "Sea story"
    pane.editor.appendPlainText("More.")
    pane.save_document()
    assert store.get_document(a).title == "Sea story"  # a renamed document keeps its name as it changes
    assert pane.sidebar.delete_item(a, confirm=False)
    assert [i.id for i in pane.sidebar.items()] == [b]
    assert pane.document_id is None and pane.editor.toPlainText() == ""


def test_export_and_import_a_chat(qtbot, window, tmp_path):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    pane.sampling.max_tokens.setValue(8)
    pane.input.setPlainText("export me")
    final = run_and_wait(qtbot, pane, pane.send)
    md = pane.sidebar.export_item(pane.chat_id, "md", tmp_path / "chat.md")
    js = pane.sidebar.export_item(pane.chat_id, "json", tmp_path / "chat.json")
    text = md.read_text(encoding="utf-8")
    assert "## You\n\nexport me" in text and "## Assistant" in text and "tiny-instruct.gguf" in text
    data = json.loads(js.read_text(encoding="utf-8"))
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["content"] == final.text
    old = pane.chat_id
    item = pane.sidebar.import_file(js)
    assert item is not None and item.id != old and pane.chat_id == item.id  # the import opens
    assert pane.transcript.toPlainText().startswith("You\nexport me\nAssistant")
    assert len(pane.sidebar.items()) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    assert pane.sidebar.import_file(bad) is None
    assert pane.notice.level == "info" and "not a Tandem export" in pane.notice.text()


def test_settings_dialog_saves_and_the_next_start_reads_them(qtbot, make_window, tmp_path):
    window = make_window()
    dialog = window.open_settings()
    qtbot.addWidget(dialog)
    new_models = tmp_path / "elsewhere"
    dialog.models_dir.setText(str(new_models))
    dialog.threads.setValue(3)
    dialog.gpu_auto.setChecked(False)
    dialog.gpu_layers.setValue(7)
    dialog.default_ctx.setValue(2048)
    dialog.offline.setChecked(True)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    if dialog.auth is not None:
        dialog.token.setText("hf_testtoken123")
    assert dialog.save()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    saved = load_settings()
    assert (saved.models_dir, saved.threads, saved.gpu_layers, saved.default_ctx, saved.offline, saved.theme) == (
        str(new_models), 3, "7", 2048, True, "dark")
    assert new_models.is_dir()
    assert is_dark()
    # the navigation follows a theme switched with the window open (its style sheet took palette() colours
    # once, so it stayed light), and the chat's role titles are light enough to read
    qtbot.waitUntil(lambda: window.nav.grab().toImage().pixelColor(4, window.nav.height() - 4).lightness() < 128,
                    timeout=5_000)
    transcript = window.chat_pane.transcript
    transcript.clear_all()
    transcript.add_message("user", "hello")
    cursor = QTextCursor(transcript.document())
    cursor.setPosition(1)  # inside "You"
    assert cursor.charFormat().foreground().color().lightness() > 128  # light on the dark page
    assert "hf_testtoken123" not in paths.settings_path().read_text(encoding="utf-8")
    if dialog.auth is not None:  # offline: stored without a network check, in the hub's token store
        assert dialog.auth.token_status().present
    window.close()

    again = make_window()
    dialog2 = again.open_settings()
    qtbot.addWidget(dialog2)
    assert dialog2.threads.value() == 3 and dialog2.gpu_layers.value() == 7 and not dialog2.gpu_auto.isChecked()
    assert dialog2.theme.currentData() == "dark" and dialog2.offline.isChecked()
    opts = again.context.load_options()
    assert (opts.threads, opts.gpu_layers, opts.n_ctx) == (3, 7, 2048)
    dialog2.reject()
    again.context.update_settings(theme="system")  # back to the system theme for the other tests
    assert not is_dark()


def test_settings_dialog_rejects_a_bad_models_folder(qtbot, window, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    dialog = window.open_settings()
    qtbot.addWidget(dialog)
    dialog.models_dir.setText(str(blocker / "models"))
    assert not dialog.save()
    assert dialog.error.isVisible() and "models folder" in dialog.error.text()
    assert load_settings().models_dir != str(blocker / "models")
    dialog.reject()


def test_event_loop_never_stalls_while_two_generations_stream(qtbot, make_window, capsys):
    """Completion streams 5,000+ tokens (with top-5 alternatives each) while Chat streams a long reply;
    a 5 ms timer measures the longest gap the event loop leaves."""
    save_settings(dataclasses.replace(load_settings(), default_ctx=8192))
    window = make_window()
    completion, chat = window.completion_pane, window.chat_pane
    window.show_page("completion")
    pick_model(qtbot, completion, "tiny-base.gguf")
    pick_model(qtbot, chat, "tiny-instruct.gguf")
    for pane, seed in ((completion, "5"), (chat, "7")):  # seeds that give long outputs (with flash attention auto)
        pane.sampling.max_tokens.setValue(0)
        pane.sampling.seed_pin.setChecked(True)
        pane.sampling.seed.setText(seed)
    completion.editor.setPlainText("Once upon a time")

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    # the machine's own jitter first (a shared CI box can deschedule us), with nothing streaming
    timer.start()
    qtbot.wait(1500)
    timer.stop()
    baseline = max(gaps) * 1000
    gaps.clear()
    rates = set()
    replies: list = []
    chat.generationEnded.connect(replies.append)
    completion.generate()
    chat.input.setPlainText("hello")
    chat.send()
    last[0] = time.perf_counter()
    timer.start()
    started = time.perf_counter()
    rounds = 0
    while len(completion.tracker) < 5000 and time.perf_counter() - started < 120:
        qtbot.wait(20)
        if window.rate_label.text():
            rates.add(window.rate_label.text())
        if not completion.is_generating():
            rounds += 1
            completion.sampling.seed.setText(str(100 + rounds))
            completion.generate()  # keep streaming: continue the document again
        if not chat.is_generating() and replies:
            chat.regenerate()
    timer.stop()
    completion.stop()
    chat.stop()
    tokens = len(completion.tracker)
    worst = max(gaps) * 1000
    p99 = sorted(gaps)[int(len(gaps) * 0.99)] * 1000
    with capsys.disabled():
        print(f"\n[event loop] longest gap {worst:.1f} ms (99th percentile {p99:.1f} ms; idle baseline "
              f"{baseline:.1f} ms) over {len(gaps)} ticks while streaming {tokens} completion tokens "
              f"+ a chat reply ({time.perf_counter() - started:.1f} s)")
    assert tokens >= 5000
    assert any("Completion" in r and "Chat" in r for r in rates), rates  # both rates in the status bar
    assert worst < 500 + baseline, f"the event loop stalled for {worst:.0f} ms"


def test_cold_start_imports_neither_llama_cpp_nor_huggingface_hub(tandem_home):
    code = ("import sys, time; t = time.perf_counter();"
            "from PySide6.QtWidgets import QApplication; app = QApplication([]);"
            "from desktop.app import create_main_window; w = create_main_window(); w.show(); app.processEvents();"
            "print(round(time.perf_counter() - t, 3));"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('llama_cpp', 'huggingface_hub')));"
            "w.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    seconds, modules = out.stdout.strip().splitlines()[-2:]
    assert modules == "[]"
    assert float(seconds) < 5.0  # generous for a shared CI machine; the target is 1 s on a desktop
