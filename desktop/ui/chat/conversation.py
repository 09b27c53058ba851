"""A conversation as the Chat pane holds it, and how it is trimmed to fit the model's context.

No Qt here: ``fit_conversation`` asks the model (it runs on a worker thread), ``Turn`` is one message.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.engine.model import Model


@dataclass
class Turn:
    role: str
    content: str
    message_id: int | None = None
    note: str = ""


def note_for(finish_reason: str) -> str:
    """The small italic line under a reply that did not end on its own."""
    return {"cancelled": "(stopped)", "length": "(reached the token limit)",
            "error": "(cut off: the reply broke off with an error)"}.get(finish_reason, "")


def fit_conversation(handle: Model, messages: list[dict], system: str | None,
                     reserve: int) -> tuple[list[dict], int, str, int]:
    """Drop the oldest turns until the templated prompt leaves ``reserve`` tokens for the reply.

    Returns (messages kept, how many were dropped, the rendered prompt, its token count). The system prompt
    is never dropped, nor the last message. A remote model that can't render its template (or count tokens)
    gets the conversation whole: its server reports an overflow. Runs on a worker thread (it asks the engine).
    """
    caps = handle.capabilities
    if not caps.server_template:  # a server that applies its template itself: it is sent as it stands
        return list(messages), 0, "", 0
    n_ctx = handle.info.n_ctx
    budget = max(1, n_ctx - reserve)
    kept, dropped = list(messages), 0
    while True:
        rendered = handle.render_chat(kept, system=system)  # a busy model answers when it is free
        if not caps.tokenizer or not n_ctx:  # nothing to count with: the server says if it overflows
            return kept, dropped, rendered, 0
        count = handle.count_tokens(rendered, special=True)
        if count <= budget or len(kept) <= 1:
            return kept, dropped, rendered, count
        step = 2 if len(kept) > 2 and kept[0]["role"] == "user" and kept[1]["role"] == "assistant" else 1
        kept, dropped = kept[step:], dropped + step
