"""Export to Markdown and JSON, and import of the JSON back into the history."""

from __future__ import annotations

import json

import pytest

from desktop.core.errors import HistoryError
from desktop.core.export import (
    export_json,
    export_markdown,
    import_json,
    write_export,
)
from desktop.core.history import HistoryStore


@pytest.fixture
def store():
    s = HistoryStore()
    yield s
    s.close()


def _chat(store):
    chat_id = store.create_chat("Capitals", model="tiny-instruct.gguf", system_prompt="Answer briefly.",
                                meta={"sampling": {"temperature": 0.2}})
    store.add_message(chat_id, "user", "What is the capital of **France**?")
    store.add_message(chat_id, "assistant", "Paris.\n\n- a list item", meta={"finish_reason": "stop"})
    return chat_id


def test_chat_markdown_is_a_readable_transcript(store):
    md = export_markdown(store, "chat", _chat(store))
    assert md.startswith("# Capitals\n")
    assert "tiny-instruct.gguf" in md
    assert md.index("## System prompt") < md.index("## You") < md.index("## Assistant")
    assert "What is the capital of **France**?" in md and "- a list item" in md


def test_chat_json_round_trip(store, tmp_path):
    chat_id = _chat(store)
    path = tmp_path / "chat.json"
    write_export(path, export_json(store, "chat", chat_id))
    item = import_json(store, path)
    assert item.kind == "chat" and item.id != chat_id and item.title == "Capitals"
    original, copy = store.get_chat(chat_id), store.get_chat(item.id)
    assert [(m.role, m.content, m.meta) for m in copy.messages] == [
        (m.role, m.content, m.meta) for m in original.messages]
    assert (copy.model, copy.system_prompt, copy.meta) == (original.model, original.system_prompt, original.meta)


def test_document_round_trip_keeps_exact_text(store):
    text = "Code:\n```py\nprint(1)\n```\n  trailing spaces  \n"
    doc = store.save_document(text, title="Snippet", model="tiny-base.gguf")
    md = export_markdown(store, "document", doc)
    assert "````text\n" + text + "\n````" in md  # a fence longer than any inside the text
    item = import_json(store, export_json(store, "document", doc))
    assert store.get_document(item.id).text == text and item.title == "Snippet"


def test_compare_run_round_trip(store):
    run = store.save_compare_run({"prompt": "Who won?", "base": {"model": "b.gguf", "text": "Many teams"},
                                  "instruct": {"model": "i.gguf", "text": "France"}})
    md = export_markdown(store, "compare", run)
    assert "Many teams" in md and "France" in md and "i.gguf" in md
    item = import_json(store, json.loads(export_json(store, "compare", run)))
    assert store.get_compare_run(item.id).data == store.get_compare_run(run).data


@pytest.mark.parametrize("payload, message", [
    ("not json", "not a JSON file"),
    ('{"a": 1}', "not a Tandem export"),
    ('{"format": "tandem-history", "version": 99, "kind": "chat"}', "newer Tandem"),
    ('{"format": "tandem-history", "version": 1, "kind": "chat", "messages": [{"role": "x", "content": ""}]}',
     "Message 1"),
    ('{"format": "tandem-history", "version": 1, "kind": "spreadsheet"}', "can import a chat"),
    ('{"format": "tandem-history", "version": 1, "kind": "document"}', "no text"),
])
def test_bad_imports_are_refused_and_write_nothing(store, payload, message):
    with pytest.raises(HistoryError, match=message):
        import_json(store, payload)
    assert store.search("") == []


def test_unreadable_file_is_a_clean_error(store, tmp_path):
    with pytest.raises(HistoryError, match="Could not read"):
        import_json(store, tmp_path / "missing.json")


def test_special_tokens_a_model_wrote_are_marked_not_lost(store):
    """Markdown would read "<start_of_image>" as an HTML tag and hide it: a reply's are code spans (not
    inside its own code blocks), a verbatim text gets a line naming them, and JSON lists their spans."""
    chat_id = store.create_chat("Markers", model="gemma")
    store.add_message(chat_id, "user", "Say <bos>")
    reply = "A photo <start_of_image> here.\n```\nraw <|im_end|>\n```\n<|im_end|>"
    store.add_message(chat_id, "assistant", reply)
    md = export_markdown(store, "chat", chat_id)
    assert "Say <bos>" in md  # the person's text is theirs
    assert "A photo `<start_of_image>` here." in md and "\nraw <|im_end|>\n" in md and "\n`<|im_end|>`" in md
    data = json.loads(export_json(store, "chat", chat_id))
    assert "special_tokens" not in data["messages"][0]
    first, last = reply.index("<|im_end|>"), reply.rindex("<|im_end|>")
    assert data["messages"][1]["special_tokens"] == [[8, 24, "<start_of_image>"], [first, first + 10, "<|im_end|>"],
                                                      [last, last + 10, "<|im_end|>"]]
    item = import_json(store, data)  # the spans don't get in the way of an import
    assert store.get_chat(item.id).messages[1].content == store.get_chat(chat_id).messages[1].content

    doc = store.save_document("Once<start_of_image> upon<start_of_image>", title="Doc")
    md = export_markdown(store, "document", doc)
    assert md.rstrip().endswith("_Special tokens in this text (model markers, not words): `<start_of_image>` ×2._")
    assert json.loads(export_json(store, "document", doc))["special_tokens"] == [
        [4, 20, "<start_of_image>"], [25, 41, "<start_of_image>"]]
    run = store.save_compare_run({"prompt": "p", "base": {"model": "b", "text": "x<eos>"},
                                  "instruct": {"model": "i", "text": "fine"}})
    assert json.loads(export_json(store, "compare", run))["special_tokens"] == {"base": [[1, 6, "<eos>"]]}
    assert "`<eos>`" in export_markdown(store, "compare", run)


def test_compare_panes_own_markdown_names_the_special_tokens_of_each_output():
    from desktop.compare.record import run_to_markdown

    md = run_to_markdown({"prompt": "p", "base": {"model": "b.gguf", "text": "Photo<start_of_image>"},
                          "instruct": {"model": "i.gguf", "text": "fine"}}, "Run")
    assert "```text\nPhoto<start_of_image>\n```" in md  # verbatim, not lost
    assert md.count("_Special tokens in this text (model markers, not words): `<start_of_image>`._") == 1
