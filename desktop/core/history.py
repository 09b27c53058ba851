"""History: chats with their messages, completion documents and compare runs, in one SQLite file (WAL).

Why SQLite in WAL mode: every write is a small transaction that survives a crash of the app (or of the
machine, up to the last checkpoint), readers never block the writer, and one file is easy to back up.
A chat message is written when it is complete; a reply that is still streaming is written periodically
by the caller (``update_message``), so a crash loses at most the last moments of a reply.

The schema is versioned with ``PRAGMA user_version``; ``history_sql.MIGRATIONS[n]`` takes a database from
version n to n + 1. All access goes through one connection guarded by a lock, so the store may be shared between the
GUI thread and worker threads.

Kinds of item (``HistoryItem.kind``): ``"chat"``, ``"document"``, ``"compare"``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from desktop.core import paths
from desktop.core.errors import HistoryError
from desktop.core.history_sql import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    Sanitizing,
    clean_args,
    dumps,
    escape_like,
    loads,
    table_of,
)

Kind = Literal["chat", "document", "compare"]
KINDS: tuple[Kind, ...] = ("chat", "document", "compare")
ROLES = ("system", "user", "assistant")



@dataclass(frozen=True)
class Message:
    id: int
    chat_id: int
    seq: int
    role: str
    content: str
    complete: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True)
class Chat:
    id: int
    title: str
    model: str
    system_prompt: str
    created_at: float
    updated_at: float
    messages: tuple[Message, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Document:
    id: int
    title: str
    model: str
    text: str
    created_at: float
    updated_at: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareRun:
    """A saved compare run; ``data`` is whatever the Compare pane stores (JSON values only)."""

    id: int
    title: str
    data: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class HistoryItem:
    """One row of the history sidebar."""

    kind: Kind
    id: int
    title: str
    updated_at: float
    preview: str = ""




def title_from_text(text: str, limit: int = 60) -> str:
    """A sidebar title from the first line of some text: what a person would call it at a glance."""
    line = " ".join(text.strip().split())
    if not line:
        return "Untitled"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class HistoryStore:
    """The history database. Open once per process; ``close()`` at exit (a crash is fine too)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else paths.history_db_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                       timeout=5.0)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"The history file {self.path} can't be opened ({exc}). "
                               "Move it aside to start a fresh history.") from None

    # --- plumbing -------------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(f"The history file {self.path} was written by a newer Tandem "
                               f"(schema {version}, this one knows {SCHEMA_VERSION}). Update Tandem.")
        while version < SCHEMA_VERSION:
            with self._tx():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                version += 1
                self._db.execute(f"PRAGMA user_version={version}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield Sanitizing(self._db)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise HistoryError(f"Could not write the history ({exc}).") from None
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise

    def _query(self, sql: str, args: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, clean_args(args)).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"Could not read the history ({exc}).") from None

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # --- chats ----------------------------------------------------------------------------------

    def create_chat(self, title: str = "New chat", model: str = "", system_prompt: str = "",
                    meta: dict[str, Any] | None = None) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO chats (title, model, system_prompt, meta, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, model, system_prompt, dumps(meta), now, now))
            return int(cur.lastrowid)

    def update_chat(self, chat_id: int, *, title: str | None = None, model: str | None = None,
                    system_prompt: str | None = None, meta: dict[str, Any] | None = None) -> None:
        sets, args = ["updated_at = ?"], [time.time()]
        for column, value in (("title", title), ("model", model), ("system_prompt", system_prompt)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if meta is not None:
            sets.append("meta = ?")
            args.append(dumps(meta))
        with self._tx() as db:
            db.execute(f"UPDATE chats SET {', '.join(sets)} WHERE id = ?", (*args, chat_id))

    def add_message(self, chat_id: int, role: str, content: str, *, complete: bool = True,
                    meta: dict[str, Any] | None = None) -> int:
        """Append a message to a chat; returns its id. ``complete=False`` for a reply still streaming."""
        if role not in ROLES:
            raise HistoryError(f"Unknown message role {role!r}.")
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE chat_id = ?",
                             (chat_id,)).fetchone()
            cur = db.execute(
                "INSERT INTO messages (chat_id, seq, role, content, complete, meta, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (chat_id, row[0], role, content, int(complete), dumps(meta), now))
            db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
            return int(cur.lastrowid)

    def update_message(self, message_id: int, content: str, *, complete: bool | None = None,
                       meta: dict[str, Any] | None = None) -> None:
        """Rewrite a message's text (a streaming reply's periodic save, or its final text)."""
        sets, args = ["content = ?"], [content]
        if complete is not None:
            sets.append("complete = ?")
            args.append(int(complete))
        if meta is not None:
            sets.append("meta = ?")
            args.append(dumps(meta))
        with self._tx() as db:
            db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*args, message_id))
            db.execute("UPDATE chats SET updated_at = ? WHERE id ="
                       " (SELECT chat_id FROM messages WHERE id = ?)", (time.time(), message_id))

    def delete_messages_from(self, chat_id: int, seq: int) -> int:
        """Delete a chat's messages from ``seq`` on (regenerate, edit-and-resend); returns how many."""
        with self._tx() as db:
            cur = db.execute("DELETE FROM messages WHERE chat_id = ? AND seq >= ?", (chat_id, seq))
            db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (time.time(), chat_id))
            return cur.rowcount

    def truncate_chat_at(self, message_id: int) -> int:
        """Delete a message and every later one in its chat; returns how many were deleted."""
        with self._tx() as db:
            row = db.execute("SELECT chat_id, seq FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return 0
            cur = db.execute("DELETE FROM messages WHERE chat_id = ? AND seq >= ?", (row[0], row[1]))
            db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (time.time(), row[0]))
            return cur.rowcount

    def get_chat(self, chat_id: int) -> Chat:
        rows = self._query("SELECT * FROM chats WHERE id = ?", (chat_id,))
        if not rows:
            raise HistoryError(f"Chat {chat_id} is not in the history (it may have been deleted).")
        messages = tuple(
            Message(id=m["id"], chat_id=m["chat_id"], seq=m["seq"], role=m["role"], content=m["content"],
                    complete=bool(m["complete"]), meta=loads(m["meta"]), created_at=m["created_at"])
            for m in self._query("SELECT * FROM messages WHERE chat_id = ? ORDER BY seq", (chat_id,)))
        r = rows[0]
        return Chat(id=r["id"], title=r["title"], model=r["model"], system_prompt=r["system_prompt"],
                    created_at=r["created_at"], updated_at=r["updated_at"], messages=messages,
                    meta=loads(r["meta"]))

    # --- completion documents -------------------------------------------------------------------

    def save_document(self, text: str, *, document_id: int | None = None, title: str | None = None,
                      model: str = "", meta: dict[str, Any] | None = None) -> int:
        """Insert (``document_id=None``) or overwrite a document; returns its id."""
        now = time.time()
        with self._tx() as db:
            if document_id is not None:
                sets, args = ["text = ?", "model = ?", "updated_at = ?"], [text, model, now]
                if title is not None:
                    sets.append("title = ?")
                    args.append(title)
                if meta is not None:
                    sets.append("meta = ?")
                    args.append(dumps(meta))
                cur = db.execute(f"UPDATE documents SET {', '.join(sets)} WHERE id = ?", (*args, document_id))
                if cur.rowcount:
                    return document_id
            cur = db.execute(
                "INSERT INTO documents (title, model, text, meta, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title or title_from_text(text), model, text, dumps(meta), now, now))
            return int(cur.lastrowid)

    def get_document(self, document_id: int) -> Document:
        rows = self._query("SELECT * FROM documents WHERE id = ?", (document_id,))
        if not rows:
            raise HistoryError(f"Document {document_id} is not in the history (it may have been deleted).")
        r = rows[0]
        return Document(id=r["id"], title=r["title"], model=r["model"], text=r["text"],
                        created_at=r["created_at"], updated_at=r["updated_at"], meta=loads(r["meta"]))

    # --- compare runs (the Compare pane's own data) --------------------------------------------

    def save_compare_run(self, data: dict[str, Any], *, title: str | None = None,
                         run_id: int | None = None) -> int:
        """Insert or overwrite a compare run; ``data`` must be JSON-serialisable. Returns its id."""
        now = time.time()
        if title is None:
            title = title_from_text(str(data.get("prompt", "")))
        with self._tx() as db:
            if run_id is not None:
                cur = db.execute("UPDATE compare_runs SET data = ?, title = ?, updated_at = ? WHERE id = ?",
                                 (dumps(data), title, now, run_id))
                if cur.rowcount:
                    return run_id
            cur = db.execute("INSERT INTO compare_runs (title, data, created_at, updated_at)"
                             " VALUES (?, ?, ?, ?)", (title, dumps(data), now, now))
            return int(cur.lastrowid)

    def get_compare_run(self, run_id: int) -> CompareRun:
        rows = self._query("SELECT * FROM compare_runs WHERE id = ?", (run_id,))
        if not rows:
            raise HistoryError(f"Compare run {run_id} is not in the history (it may have been deleted).")
        r = rows[0]
        return CompareRun(id=r["id"], title=r["title"], data=loads(r["data"]), created_at=r["created_at"],
                          updated_at=r["updated_at"])

    def list_compare_runs(self, query: str = "", limit: int = 500) -> list[HistoryItem]:
        return self.list_items("compare", query, limit)

    # --- the sidebar: list, search, rename, delete ---------------------------------------------

    def list_items(self, kind: Kind, query: str = "", limit: int = 500) -> list[HistoryItem]:
        """Newest first. ``query`` matches titles and contents, case-insensitively, as plain text."""
        if kind not in TABLES:
            raise HistoryError(f"Unknown history kind {kind!r}.")
        like = f"%{escape_like(query.strip())}%" if query.strip() else None
        if kind == "chat":
            sql = ("SELECT c.id, c.title, c.updated_at, (SELECT content FROM messages m WHERE m.chat_id = c.id"
                   " ORDER BY seq LIMIT 1) AS preview FROM chats c")
            if like:
                sql += (" WHERE c.title LIKE :q ESCAPE '\\' OR c.system_prompt LIKE :q ESCAPE '\\' OR EXISTS"
                        " (SELECT 1 FROM messages m WHERE m.chat_id = c.id AND m.content LIKE :q ESCAPE '\\')")
        elif kind == "document":
            sql = "SELECT id, title, updated_at, substr(text, 1, 200) AS preview FROM documents"
            if like:
                sql += " WHERE title LIKE :q ESCAPE '\\' OR text LIKE :q ESCAPE '\\'"
        else:
            sql = "SELECT id, title, updated_at, '' AS preview FROM compare_runs"
            if like:
                sql += " WHERE title LIKE :q ESCAPE '\\' OR data LIKE :q ESCAPE '\\'"
        sql += " ORDER BY updated_at DESC, id DESC LIMIT :limit"
        rows = self._query(sql, {"q": like, "limit": limit})
        return [HistoryItem(kind=kind, id=r["id"], title=r["title"], updated_at=r["updated_at"],
                            preview=title_from_text(r["preview"] or "", 120) if r["preview"] else "")
                for r in rows]

    def search(self, query: str, limit: int = 500) -> list[HistoryItem]:
        """Every kind at once, newest first."""
        items = [item for kind in KINDS for item in self.list_items(kind, query, limit)]
        return sorted(items, key=lambda i: i.updated_at, reverse=True)[:limit]

    def rename(self, kind: Kind, item_id: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise HistoryError("A title can't be empty.")
        with self._tx() as db:
            cur = db.execute(f"UPDATE {table_of(kind)} SET title = ? WHERE id = ?", (title, item_id))
            if not cur.rowcount:
                raise HistoryError(f"That {kind} is no longer in the history.")

    def delete(self, kind: Kind, item_id: int) -> None:
        with self._tx() as db:
            db.execute(f"DELETE FROM {table_of(kind)} WHERE id = ?", (item_id,))
