"""``/v1/chat/completions``: a conversation through the model's own chat template, apart from HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

from desktop.engine.model import Model
from desktop.engine.types import FinalEvent, TokenEvent
from desktop.serve.errors import ApiError
from desktop.serve.protocol import ChatMessage, ChatRequest, ChatTokenLogprob, TopLogprob
from desktop.serve.work import Cancel, cancelled_error, logprob, sampling


@dataclass
class ChatOutcome:
    generated: list[TokenEvent] = field(default_factory=list)
    text: str = ""
    finish: str = "length"
    prompt_tokens: int = 0
    capped_to: int | None = None


def messages_of(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """Messages as the engine takes them: content parts of type "text" joined (images aren't served)."""
    out = []
    for m in messages:
        content = m.content
        if isinstance(content, list):
            if any(p.get("type") not in (None, "text") for p in content):
                raise ApiError(400, "Only text content parts are supported.", "unsupported_content")
            content = "".join(str(p.get("text") or "") for p in content)
        out.append({"role": m.role, "content": content or ""})
    return out


def run_chat(model: Model, req: ChatRequest, emit, cancel: Cancel) -> ChatOutcome:
    """Blocking: the reply, each token given to ``emit`` as it comes. ``max_tokens`` left out means up to
    the end of the context."""
    n_ctx = int(model.info.n_ctx)
    asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    k = (req.top_logprobs or 0) if req.logprobs else 0
    params = sampling(req, n_ctx if asked is None else min(asked, n_ctx),
                      max(k, 1) if req.logprobs else 0, emit_eog=False)
    stream = model.chat(messages_of(req.messages), params)
    cancel.attach(stream)
    out = ChatOutcome()
    final = None
    for event in stream:
        if isinstance(event, FinalEvent):
            final = event
            break
        out.generated.append(event)
        emit(event)
    if final.error is not None:
        raise final.error
    if final.finish_reason == "cancelled":
        raise cancelled_error(cancel.reason)
    out.text, out.finish = final.text, final.finish_reason
    out.prompt_tokens = final.stats.prompt_tokens
    room = n_ctx - out.prompt_tokens
    if asked is not None and asked > room:
        out.capped_to = room
    return out


def token_logprobs(events: list[TokenEvent], k: int) -> list[ChatTokenLogprob]:
    return [ChatTokenLogprob(token=e.text, logprob=logprob(e.logprob) or 0.0, bytes=list(e.text.encode()),
                             top_logprobs=[TopLogprob(token=t.text, logprob=logprob(t.logprob) or 0.0,
                                                      bytes=list(t.text.encode())) for t in e.top[:k]])
            for e in events]
