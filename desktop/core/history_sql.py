"""The SQLite side of the history: the schema and its migrations, and the hygiene every value goes through
on its way in and out (lone surrogates made storable, JSON columns, LIKE patterns escaped).

Split from ``history`` so that the store reads as what it keeps (chats, documents, compare runs) and this
module as how SQLite holds it; a schema change is a new entry in ``MIGRATIONS`` here.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from desktop.core.errors import HistoryError

_SCHEMA_V1 = """
CREATE TABLE chats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    system_prompt TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 1,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    UNIQUE (chat_id, seq)
);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE compare_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX messages_by_chat ON messages(chat_id, seq);
CREATE INDEX chats_by_time ON chats(updated_at);
CREATE INDEX documents_by_time ON documents(updated_at);
CREATE INDEX compare_runs_by_time ON compare_runs(updated_at);
"""

# MIGRATIONS[n] upgrades a database at user_version n to n + 1. Version 0 is an empty file.
MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1,)
SCHEMA_VERSION = len(MIGRATIONS)

TABLES: dict[str, str] = {"chat": "chats", "document": "documents", "compare": "compare_runs"}


def table_of(kind: str) -> str:
    try:
        return TABLES[kind]
    except KeyError:
        raise HistoryError(f"Unknown history kind {kind!r}.") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(value: Any) -> Any:
    """Text with lone surrogates (pasted invalid UTF-8, an edited export) can't be stored as UTF-8:
    keep it, with U+FFFD where the broken bytes were, rather than refusing the whole message."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
    return value


def clean_args(args: tuple | dict) -> tuple | dict:
    if isinstance(args, dict):
        return {k: _clean(v) for k, v in args.items()}
    return tuple(_clean(v) for v in args)


class Sanitizing:
    """The connection as a write transaction sees it: every bound value is storable text."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def execute(self, sql: str, args: tuple | dict = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, clean_args(args))


def dumps(value: dict[str, Any] | None) -> str:
    try:
        return json.dumps(value or {}, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"Could not store that in the history ({exc}).") from None


def loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
