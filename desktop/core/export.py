"""Export a chat, a completion document or a compare run as Markdown or JSON, and import the JSON back.

Markdown is for people (a readable transcript); JSON is for Tandem (every field, so an import restores the
item exactly: roles, texts, model, system prompt, the pane's settings). The JSON carries a format marker and
a version so a file from another program, or from a newer Tandem, is refused with a clear message instead of
half-imported.

Special tokens a model wrote (``<start_of_image>``, ``<|im_end|>``: ``core.special_tokens``) are marked, not
lost: in Markdown a reply's are code spans (a renderer would take them for HTML tags and hide them) and a text
shown verbatim gets a line naming them; in JSON each text carries ``special_tokens``, its [start, end, text]
spans in code points (an import ignores them: they are found again from the text).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from desktop.core.errors import HistoryError
from desktop.core.history import ROLES, Chat, CompareRun, Document, HistoryItem, HistoryStore, Kind
from desktop.core.settings import atomic_write_text
from desktop.core.special_tokens import mark_in_markdown, special_spans, summary_line

FORMAT = "tandem-history"
FORMAT_VERSION = 1
_ROLE_TITLES = {"system": "System", "user": "You", "assistant": "Assistant"}


# --- Markdown -----------------------------------------------------------------------------------


def chat_to_markdown(chat: Chat) -> str:
    lines = [f"# {chat.title}", "", _byline(chat.model, chat.updated_at), ""]
    if chat.system_prompt.strip():
        lines += ["## System prompt", "", chat.system_prompt.strip(), ""]
    for message in chat.messages:
        heading = _ROLE_TITLES.get(message.role, message.role.title())
        if not message.complete:
            heading += " (unfinished)"
        content = message.content.strip()
        if message.role == "assistant":
            content = mark_in_markdown(content)
        lines += [f"## {heading}", "", content or "_(empty)_", ""]
    return "\n".join(lines).rstrip() + "\n"


def document_to_markdown(document: Document) -> str:
    """The document's exact text in a fence, so whitespace and stray Markdown survive a round trip."""
    return "\n".join([f"# {document.title}", "", _byline(document.model, document.updated_at), "",
                      _fenced(document.text), *_special_note(document.text)]) + "\n"


def compare_run_to_markdown(run: CompareRun) -> str:
    """A generic rendering of a compare run: its prompt and each side's output, in the order stored."""
    data = run.data
    lines = [f"# {run.title}", "", _byline("", run.updated_at), ""]
    if "prompt" in data:
        lines += ["## Prompt", "", _fenced(str(data["prompt"])), ""]
    for side in ("base", "instruct"):
        part = data.get(side)
        if isinstance(part, dict):
            text = str(part.get("text", ""))
            lines += [f"## {side.title()}: {part.get('model', '')}".rstrip(": "), "",
                      _fenced(text), *_special_note(text), ""]
    return "\n".join(lines).rstrip() + "\n"


def _byline(model: str, when: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    return f"_{'Model: `' + model + '` · ' if model else ''}{stamp} · exported from Tandem_"


def _special_note(text: str) -> list[str]:
    line = summary_line(text)
    return ["", line] if line else []


def _spans(text: str) -> list[list]:
    return [[start, end, token] for start, end, token in special_spans(text)]


def _fenced(text: str) -> str:
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


# --- JSON ---------------------------------------------------------------------------------------


def chat_to_json(chat: Chat) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": FORMAT_VERSION, "kind": "chat",
        "title": chat.title, "model": chat.model, "system_prompt": chat.system_prompt,
        "created_at": chat.created_at, "updated_at": chat.updated_at, "meta": chat.meta,
        "messages": [{"role": m.role, "content": m.content, "complete": m.complete, "meta": m.meta,
                      **({"special_tokens": _spans(m.content)} if m.role == "assistant" and _spans(m.content)
                         else {})}
                     for m in chat.messages],
    }


def document_to_json(document: Document) -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": "document", "title": document.title,
            "model": document.model, "text": document.text, "special_tokens": _spans(document.text),
            "created_at": document.created_at, "updated_at": document.updated_at, "meta": document.meta}


def compare_run_to_json(run: CompareRun) -> dict[str, Any]:
    sides = {side: _spans(str(run.data[side].get("text", ""))) for side in ("base", "instruct")
             if isinstance(run.data.get(side), dict)}
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": "compare", "title": run.title,
            "data": run.data, "special_tokens": {side: spans for side, spans in sides.items() if spans},
            "created_at": run.created_at, "updated_at": run.updated_at}


# --- from the store -----------------------------------------------------------------------------


def export_markdown(store: HistoryStore, kind: Kind, item_id: int) -> str:
    if kind == "chat":
        return chat_to_markdown(store.get_chat(item_id))
    if kind == "document":
        return document_to_markdown(store.get_document(item_id))
    if kind == "compare":
        return compare_run_to_markdown(store.get_compare_run(item_id))
    raise HistoryError(f"Unknown history kind {kind!r}.")


def export_json(store: HistoryStore, kind: Kind, item_id: int) -> str:
    if kind == "chat":
        data = chat_to_json(store.get_chat(item_id))
    elif kind == "document":
        data = document_to_json(store.get_document(item_id))
    elif kind == "compare":
        data = compare_run_to_json(store.get_compare_run(item_id))
    else:
        raise HistoryError(f"Unknown history kind {kind!r}.")
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def write_export(path: Path, text: str) -> None:
    """Write an export file atomically; a failure is a HistoryError with the path in it."""
    try:
        atomic_write_text(Path(path), text)
    except OSError as exc:
        raise HistoryError(f"Could not write {path}: {exc.strerror or exc}.") from None


def import_json(store: HistoryStore, source: str | bytes | Path | dict[str, Any]) -> HistoryItem:
    """Add an exported item to the history as a new entry; returns its sidebar row.

    ``source`` is the JSON text, a path to the file, or the parsed object. Anything that is not a Tandem
    export is refused with a HistoryError saying what is wrong; nothing is written in that case.
    """
    data = _parse(source)
    kind = data.get("kind")
    title = _text(data, "title", required=False) or "Imported"
    if kind == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise HistoryError("This chat export has no list of messages.")
        checked = []
        for i, m in enumerate(messages, 1):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise HistoryError(f"Message {i} of this chat export needs a role (system/user/assistant) "
                                   "and a text content.")
            checked.append(m)
        chat_id = store.create_chat(title, model=_text(data, "model"), system_prompt=_text(data, "system_prompt"),
                                    meta=_dict(data, "meta"))
        for m in checked:
            store.add_message(chat_id, m["role"], m["content"], complete=bool(m.get("complete", True)),
                              meta=m.get("meta") if isinstance(m.get("meta"), dict) else None)
        new_id, preview = chat_id, checked[0]["content"] if checked else ""
    elif kind == "document":
        text = data.get("text")
        if not isinstance(text, str):
            raise HistoryError("This document export has no text.")
        new_id = store.save_document(text, title=title, model=_text(data, "model"), meta=_dict(data, "meta"))
        preview = text
    elif kind == "compare":
        run = data.get("data")
        if not isinstance(run, dict):
            raise HistoryError("This compare export has no run data.")
        new_id, preview = store.save_compare_run(run, title=title), ""
    else:
        raise HistoryError(f"This export holds a {kind!r}; Tandem can import a chat, a document or a "
                           "compare run.")
    return HistoryItem(kind=kind, id=new_id, title=title, updated_at=time.time(), preview=preview[:120])


def _parse(source: str | bytes | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, Path):
        try:
            source = source.read_bytes()
        except OSError as exc:
            raise HistoryError(f"Could not read {source}: {exc.strerror or exc}.") from None
    if isinstance(source, (str, bytes)):
        try:
            data = json.loads(source)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HistoryError(f"This is not a JSON file ({exc}).") from None
    else:
        data = source
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise HistoryError("This JSON file is not a Tandem export (use a file made with Export ▸ JSON).")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise HistoryError(f"This export was made by a newer Tandem (format {version}); update Tandem "
                           "to import it.")
    return data


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise HistoryError(f"The export's {key!r} must be text.")
    if required and not value:
        raise HistoryError(f"The export has no {key!r}.")
    return value


def _dict(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None
