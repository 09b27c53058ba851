"""The history store: chats, documents, compare runs; search, rename, delete; survives reopening; WAL."""

from __future__ import annotations

import sqlite3

import pytest

from desktop.core import paths
from desktop.core.errors import HistoryError
from desktop.core.history import SCHEMA_VERSION, HistoryStore, title_from_text


@pytest.fixture
def store():
    s = HistoryStore()
    yield s
    s.close()


def test_chat_round_trip_survives_reopen(store):
    chat_id = store.create_chat("Greetings", model="tiny-instruct.gguf", system_prompt="Be brief.")
    store.add_message(chat_id, "user", "hello")
    reply = store.add_message(chat_id, "assistant", "hel", complete=False)
    store.update_message(reply, "hello there", complete=True, meta={"finish_reason": "stop"})
    store.close()

    reopened = HistoryStore()
    chat = reopened.get_chat(chat_id)
    assert chat.title == "Greetings" and chat.system_prompt == "Be brief."
    assert [(m.role, m.content, m.complete) for m in chat.messages] == [
        ("user", "hello", True), ("assistant", "hello there", True)]
    assert chat.messages[1].meta == {"finish_reason": "stop"}
    reopened.close()


def test_unfinished_reply_is_on_disk_before_it_completes(store):
    """A streaming reply saved periodically is readable by another connection (a crash loses little)."""
    chat_id = store.create_chat()
    reply = store.add_message(chat_id, "assistant", "", complete=False)
    store.update_message(reply, "partial text")
    other = sqlite3.connect(paths.history_db_path())
    assert other.execute("SELECT content, complete FROM messages WHERE id = ?", (reply,)).fetchone() == (
        "partial text", 0)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    other.close()


def test_delete_messages_from_for_regenerate(store):
    chat_id = store.create_chat()
    for role, text in [("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")]:
        store.add_message(chat_id, role, text)
    assert store.delete_messages_from(chat_id, 3) == 1
    store.add_message(chat_id, "assistant", "e")
    assert [m.content for m in store.get_chat(chat_id).messages] == ["a", "b", "c", "e"]


def test_documents_and_compare_runs(store):
    doc = store.save_document("Once upon a time", model="tiny-base.gguf")
    assert store.get_document(doc).title == "Once upon a time"
    assert store.save_document("Once upon a time there was", document_id=doc) == doc
    assert store.get_document(doc).text == "Once upon a time there was"
    run = store.save_compare_run({"prompt": "Who won the World Cup?", "base": {"text": "x"}})
    assert store.get_compare_run(run).data["base"] == {"text": "x"}
    assert store.get_compare_run(run).title == "Who won the World Cup?"
    assert store.save_compare_run({"prompt": "p"}, title="Mine", run_id=run) == run
    assert [i.title for i in store.list_compare_runs()] == ["Mine"]


def test_list_search_rename_delete(store):
    a = store.create_chat("About football")
    store.add_message(a, "user", "Who won the World Cup?")
    b = store.create_chat("Cooking")
    store.add_message(b, "user", "A recipe with 100% butter_please")
    doc = store.save_document("The cup of tea", title="Tea")

    assert [i.id for i in store.list_items("chat")] == [b, a]  # newest first
    assert [i.id for i in store.list_items("chat", "world cup")] == [a]  # content, case-insensitive
    assert [i.id for i in store.list_items("chat", "100% butter_")] == [b]  # LIKE wildcards are literal
    assert store.list_items("chat", "100%x") == []
    assert {(i.kind, i.id) for i in store.search("cup")} == {("chat", a), ("document", doc)}

    store.rename("chat", a, "  World   Cup  ")
    assert store.get_chat(a).title == "World Cup"
    with pytest.raises(HistoryError):
        store.rename("chat", a, "   ")
    store.delete("chat", a)
    with pytest.raises(HistoryError, match="not in the history"):
        store.get_chat(a)
    # the messages went with the chat (foreign key cascade)
    assert store._query("SELECT COUNT(*) FROM messages WHERE chat_id = ?", (a,))[0][0] == 0


def test_bad_role_and_unknown_kind_are_clean_errors(store):
    chat_id = store.create_chat()
    with pytest.raises(HistoryError, match="role"):
        store.add_message(chat_id, "robot", "x")
    with pytest.raises(HistoryError, match="kind"):
        store.list_items("nope")  # type: ignore[arg-type]


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer Tandem"):
        HistoryStore(path)


def test_not_a_database_is_a_clean_error(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(HistoryError, match="can't be opened"):
        HistoryStore(path)


def test_title_from_text():
    assert title_from_text("  Hello\n  world ") == "Hello world"
    assert title_from_text("") == "Untitled"
    long = title_from_text("word " * 40, limit=20)
    assert len(long) <= 20 and long.endswith("…")
