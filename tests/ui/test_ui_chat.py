"""The Chat pane over the real tiny instruct model (ChatML) and the base model it must refuse."""

from __future__ import annotations

from PySide6.QtCore import Qt
from ui_helpers import pick_model, run_and_wait

from desktop.core.chat_template import BASE_MODEL_MESSAGE
from desktop.core.settings import load_settings, save_settings


def send(qtbot, pane, text: str):
    pane.input.setPlainText(text)
    return run_and_wait(qtbot, pane, lambda: qtbot.mouseClick(pane.send_button, Qt.MouseButton.LeftButton))


def test_chat_send_regenerate_and_history(qtbot, window):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    assert pane.model_bar.badge.text().strip() == "INSTRUCT"
    pane.sampling.max_tokens.setValue(24)
    final = send(qtbot, pane, "hello there")
    assert final.error is None
    transcript = pane.transcript.toPlainText()
    assert transcript.startswith("You\nhello there\nAssistant")
    assert pane.input.toPlainText() == ""
    assert [t.role for t in pane.turns] == ["user", "assistant"]
    # what was shown is what was stored, and marked complete
    chat = window.context.history.get_chat(pane.chat_id)
    assert [(m.role, m.complete) for m in chat.messages] == [("user", True), ("assistant", True)]
    assert chat.messages[1].content == pane.turns[1].content == final.text
    assert chat.title == "hello there"
    assert chat.messages[1].meta["finish_reason"] == final.finish_reason

    # Regenerate replaces the reply (pin a different seed so the new one is known to differ in the store)
    pane.sampling.seed_pin.setChecked(True)
    pane.sampling.seed.setText("3")
    first_reply_id = pane.turns[1].message_id
    final2 = run_and_wait(qtbot, pane, lambda: qtbot.mouseClick(pane.regenerate_button, Qt.MouseButton.LeftButton))
    assert final2.error is None
    chat = window.context.history.get_chat(pane.chat_id)
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    assert chat.messages[1].id != first_reply_id and chat.messages[1].content == final2.text
    assert pane.transcript.toPlainText().count("Assistant") == 1

    # a second turn: the prompt view shows the whole templated conversation, special tokens highlighted
    send(qtbot, pane, "who won the world cup")
    qtbot.mouseClick(pane.show_prompt_button, Qt.MouseButton.LeftButton)
    assert pane.prompt_box.isVisible()
    expected = pane.model.handle.render_chat([{"role": t.role, "content": t.content} for t in pane.turns])
    qtbot.waitUntil(lambda: pane.prompt_view.toPlainText() == expected, timeout=10_000)
    prompt = pane.prompt_view.toPlainText()
    assert "who won the world cup" in prompt and pane.turns[-1].content in prompt
    assert prompt.startswith("<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    tokens = pane.prompt_view.highlighted_tokens()
    assert tokens.count("<|im_start|>") == 5 and tokens.count("<|im_end|>") == 4
    # the prompt follows the conversation: a system prompt appears in it
    pane.system_prompt.setPlainText("Answer briefly.")
    qtbot.waitUntil(lambda: "<|im_start|>system\nAnswer briefly.<|im_end|>" in pane.prompt_view.toPlainText(),
                    timeout=10_000)
    assert "Context " in window.context_label.text()


def test_stop_keeps_the_partial_reply(qtbot, window):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    pane.sampling.max_tokens.setValue(0)
    pane.sampling.seed_pin.setChecked(True)
    pane.sampling.seed.setText("32")  # tiny-instruct then replies to "hello" with ~2,700 tokens
    pane.input.setPlainText("hello")
    with qtbot.waitSignal(pane.generationEnded, timeout=40_000) as ended:
        qtbot.keyClick(pane.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: len("".join(pane._reply_parts)) > 0, timeout=30_000)
        assert pane.stop_button.isEnabled()
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert ended.args[0].finish_reason == "cancelled"
    assert pane.turns[-1].role == "assistant" and pane.turns[-1].content
    assert "(stopped)" in pane.transcript.toPlainText()
    stored = window.context.history.get_chat(pane.chat_id).messages[-1]
    assert stored.content == pane.turns[-1].content and stored.meta["finish_reason"] == "cancelled"


def test_edit_last_takes_the_message_back(qtbot, window):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    pane.sampling.max_tokens.setValue(8)
    send(qtbot, pane, "first question")
    send(qtbot, pane, "second question with a typo")
    qtbot.mouseClick(pane.edit_button, Qt.MouseButton.LeftButton)
    assert pane.input.toPlainText() == "second question with a typo"
    assert [t.content for t in pane.turns if t.role == "user"] == ["first question"]
    assert "typo" not in pane.transcript.toPlainText()
    assert len(window.context.history.get_chat(pane.chat_id).messages) == 2
    pane.input.setPlainText("second question, fixed")
    run_and_wait(qtbot, pane, pane.send)
    users = [m.content for m in window.context.history.get_chat(pane.chat_id).messages if m.role == "user"]
    assert users == ["first question", "second question, fixed"]


def test_base_model_in_chat_shows_the_engines_refusal(qtbot, window):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-base.gguf")
    qtbot.waitUntil(lambda: pane.model_notice.level == "error", timeout=10_000)  # said as soon as it loads
    assert "base model" in pane.model_notice.text()
    final = send(qtbot, pane, "hello")
    assert final.finish_reason == "error"
    assert pane.notice.level == "error" and pane.notice.text() == BASE_MODEL_MESSAGE
    assert "Completion" in pane.notice.text()
    # nothing half-made is left behind: the message is there, no empty reply
    assert [t.role for t in pane.turns] == ["user"]
    assert [m.role for m in window.context.history.get_chat(pane.chat_id).messages] == ["user"]


def test_oldest_turns_are_dropped_when_the_context_is_full(qtbot, make_window):
    settings = load_settings()
    save_settings(settings.__class__(**{**settings.__dict__, "default_ctx": 256}))
    window = make_window()
    pane = window.chat_pane
    window.show_page("chat")
    handle = pick_model(qtbot, pane, "tiny-instruct.gguf")
    assert handle.info.n_ctx == 256
    pane.sampling.max_tokens.setValue(16)
    pane.system_prompt.setPlainText("Be brief.")
    long_text = " ".join(["the king and the queen of the world"] * 8)  # ~70 tokens each
    for i in range(4):
        final = send(qtbot, pane, f"{i} {long_text}")
        assert final.error is None, final.error
    assert pane.notice.level == "warning"
    assert "oldest" in pane.notice.text() and "system prompt is kept" in pane.notice.text()
    seen = pane.prompt_view.toPlainText()  # the prompt the model actually got
    assert "<|im_start|>system\nBe brief.<|im_end|>" in seen
    assert f"3 {long_text}" in seen and f"0 {long_text}" not in seen
    assert handle.count_tokens(seen, special=True) <= 256 - 16


def test_new_chat_and_ctrl_n(qtbot, window):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    pane.sampling.max_tokens.setValue(4)
    send(qtbot, pane, "one")
    first = pane.chat_id
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert pane.chat_id is None and pane.transcript.toPlainText() == "" and pane.turns == []
    send(qtbot, pane, "two")
    assert pane.chat_id != first
    assert [i.title for i in pane.sidebar.items()] == ["two", "one"]
    pane.sidebar.opened.emit(first)
    assert pane.transcript.toPlainText().startswith("You\none\nAssistant")
