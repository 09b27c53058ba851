"""Issue 22 item 6 on the real Gemma 3 base model: a special token it writes (``<start_of_image>``, a
marker in its vocabulary) is shown styled in the shared token view and the Chat transcript, and the
Markdown/JSON exports mark it instead of losing it."""

from __future__ import annotations

import json

from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

from desktop.core.export import export_json, export_markdown
from desktop.core.history import HistoryStore
from desktop.engine import SamplingParams
from desktop.engine.types import TokenEvent
from desktop.ui.chat.transcript import ChatTranscript
from desktop.ui.widgets.token_format import SPECIAL_COLOR
from desktop.ui.widgets.token_view import TokenTracker

# Two photos, each followed by Gemma's image marker (one token, id 255999): greedy, the model writes the
# marker itself after "Photo 3:".
PROMPT = "Photo 1:<start_of_image>\nPhoto 2:<start_of_image>\nPhoto 3:"
MARKER = "<start_of_image>"


def _foreground_at(doc, position: int) -> QColor:
    cursor = QTextCursor(doc)
    cursor.setPosition(position + 1)  # the format of the character before the cursor
    return cursor.charFormat().foreground().color()


def test_a_special_token_gemma_writes_is_styled_and_exported_marked(qtbot, gemma):
    params = SamplingParams(temperature=0.0, max_tokens=8, repeat_penalty=1.0, logprobs=3, seed=0)
    events = [e for e in gemma.complete(PROMPT, params) if isinstance(e, TokenEvent)]
    marker_id = gemma.tokenize(MARKER, special=True, add_bos=False)
    assert marker_id == [events[0].token_id] and events[0].text == MARKER  # the model wrote the marker

    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.setPlainText(PROMPT)
    tracker = TokenTracker(editor)
    tracker.append(events)
    start = len(PROMPT)
    assert tracker.spans[0].special and not any(s.special for s in tracker.spans[1:] if s.text != MARKER)
    assert _foreground_at(editor.document(), start) == QColor(SPECIAL_COLOR)
    assert _foreground_at(editor.document(), start - 1) != QColor(SPECIAL_COLOR)  # the prompt's own is text
    tracker.set_mode("probability")
    assert _foreground_at(editor.document(), start) == QColor(SPECIAL_COLOR)
    after = tracker.spans[1].start
    assert _foreground_at(editor.document(), after) != QColor(SPECIAL_COLOR)

    output = "".join(e.text for e in events)
    transcript = ChatTranscript()
    qtbot.addWidget(transcript)
    transcript.add_message("assistant", "Here:" + output)
    text = transcript.toPlainText()
    assert _foreground_at(transcript.document(), text.index(MARKER)) == QColor(SPECIAL_COLOR)

    store = HistoryStore()
    try:
        doc = store.save_document(PROMPT + output, title="Photos", model="gemma")
        md = export_markdown(store, "document", doc)
        assert "_Special tokens in this text (model markers, not words): `<start_of_image>` ×" in md
        data = json.loads(export_json(store, "document", doc))
        assert [start, start + len(MARKER), MARKER] in data["special_tokens"]
        chat = store.create_chat("Photos", model="gemma")
        store.add_message(chat, "assistant", output)
        md = export_markdown(store, "chat", chat)
        assert f"`{MARKER}`" in md and f" {MARKER}" not in md.replace(f"`{MARKER}`", "")
        message = json.loads(export_json(store, "chat", chat))["messages"][0]
        assert message["special_tokens"][0] == [0, len(MARKER), MARKER]
    finally:
        store.close()
