"""A chat reopened from history shows its system prompt in the templated prompt, as sent."""

from __future__ import annotations

from PySide6.QtCore import Qt
from ui_helpers import pick_model, run_and_wait


def test_reopened_chat_renders_its_system_prompt(qtbot, window):
    pane = window.chat_pane
    window.show_page("chat")
    pick_model(qtbot, pane, "tiny-instruct.gguf")
    pane.sampling.max_tokens.setValue(8)
    pane.system_prompt.setPlainText("Answer briefly.")
    pane.input.setPlainText("hello")
    run_and_wait(qtbot, pane, lambda: qtbot.mouseClick(pane.send_button, Qt.MouseButton.LeftButton))
    chat_id = pane.chat_id
    pane.new_item()
    pane.system_prompt.setPlainText("")
    pane.open_chat(chat_id)
    assert pane.system_prompt.toPlainText() == "Answer briefly."
    qtbot.mouseClick(pane.show_prompt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.prompt_view.toPlainText().startswith("<|im_start|>system\nAnswer briefly."),
                    timeout=10_000)
