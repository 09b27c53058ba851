"""Special tokens in outputs (issue 22 item 6) and the transcript's theme switch (item 10a), on the shared
widgets: a token whose whole text is a marker is styled in every mode, after a reopen, in a streamed and a
finished chat reply; a marker spelled out of ordinary tokens, or typed by a person, stays text."""

from __future__ import annotations

from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import QApplication, QPlainTextEdit

from desktop.engine.types import TokenEvent
from desktop.ui.chat.transcript import ChatTranscript
from desktop.ui.widgets.theme import apply_theme
from desktop.ui.widgets.token_format import SPECIAL_COLOR
from desktop.ui.widgets.token_view import TokenTracker

PINK = QColor(SPECIAL_COLOR)


def fg(doc, position: int) -> QColor:
    cursor = QTextCursor(doc)
    cursor.setPosition(position + 1)
    return cursor.charFormat().foreground().color()


def test_output_tokens_that_are_markers_are_styled_in_every_mode_and_after_a_reopen(qtbot):
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.setPlainText("typed <|im_end|> ")  # a person's text: never styled by the tracker
    tracker = TokenTracker(editor)
    events = [TokenEvent(t, i, -0.5) for i, t in enumerate(["A", "<|im_end|>", "<", "bos", ">", "<start_of_image>"])]
    tracker.append(events)
    doc = editor.document()
    where = {s.text: s.start for s in tracker.spans}
    assert [s.special for s in tracker.spans] == [False, True, False, False, False, True]
    for mode in ("marked", "probability", "plain", "marked"):
        tracker.set_mode(mode)
        assert fg(doc, where["<|im_end|>"]) == PINK and fg(doc, where["<start_of_image>"]) == PINK, mode
        assert fg(doc, where["A"]) != PINK and fg(doc, where["bos"]) != PINK and fg(doc, 6) != PINK, mode
    tracker.set_mode("marked")
    ranges = tracker.marked_ranges()
    text = editor.toPlainText()
    editor.setPlainText(text)  # a reopened document: its marks come back from the saved ranges
    tracker.restore_marks(ranges)
    assert tracker.marked_ranges() == ranges
    # token boundaries are not saved: a reopened text's markers are found by their text alone, so the
    # spelled-out "<bos>" counts too (the person's typed one, outside the generated ranges, still doesn't)
    assert [s.text for s in tracker.spans if s.special] == ["<|im_end|>", "<bos>", "<start_of_image>"]
    assert fg(doc, where["<start_of_image>"]) == PINK and fg(doc, 6) != PINK and fg(doc, where["A"]) != PINK


def test_a_model_specific_marker_is_styled_once_the_pane_names_it(qtbot):
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    tracker = TokenTracker(editor)
    tracker.append([TokenEvent("[EOT]", 1, 0.0)])
    assert not tracker.spans[0].special
    tracker.set_special_tokens(["[EOT]"])
    tracker.append([TokenEvent("[EOT]", 1, 0.0)])
    assert tracker.spans[1].special


def test_chat_reply_markers_are_styled_streamed_and_finished(qtbot):
    transcript = ChatTranscript()
    qtbot.addWidget(transcript)
    transcript.add_message("user", "show <start_of_image> please")
    transcript.begin_reply()
    for piece in ("Here ", "<start_of", "_image>", " it is"):
        transcript.append_reply(piece)
    doc = transcript.document()
    text = transcript.toPlainText()
    assert fg(doc, text.rindex("<start_of_image>")) == PINK  # arrived in two pieces
    assert fg(doc, text.index("<start_of_image>")) != PINK  # the person's own text stays text
    transcript.finish_reply("Here <start_of_image> it is, and **bold**.")
    text = transcript.toPlainText()
    assert fg(doc, text.rindex("<start_of_image>")) == PINK and fg(doc, text.index("bold")) != PINK


def test_transcript_titles_take_the_new_theme_at_once(qtbot):
    app = QApplication.instance()
    transcript = ChatTranscript()
    qtbot.addWidget(transcript)
    transcript.show()
    try:
        apply_theme("light", app)
        transcript.add_message("user", "Hello")
        transcript.add_message("assistant", "Hi <|im_end|>")
        doc = transcript.document()
        you = transcript.toPlainText().index("You")
        light = fg(doc, you)
        apply_theme("dark", app)
        QApplication.processEvents()
        assert fg(doc, you) == QColor("#63c497") != light
        assert fg(doc, transcript.toPlainText().index("<|im_end|>")) == QColor("#f06292")
        apply_theme("light", app)
        QApplication.processEvents()
        assert fg(doc, you) == light
    finally:
        apply_theme("system", app)
