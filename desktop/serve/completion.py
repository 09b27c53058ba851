"""``/v1/completions``: a prompt (text or token ids) continued, echoed and scored, apart from HTTP.

The scoring semantics (docs/serve.md): token-id prompts are used exactly as given (no BOS); text prompts get
BOS the way llama.cpp's tokenizer adds it (``tokenize(text, special=True, add_bos=True)``). With ``echo`` and
``logprobs`` the prompt's rows come from one ``score_tokens`` pass: entry j is log P(token j | tokens before
j), the first is null. The generated part comes from ``complete_tokens`` with ``emit_eog``, so an end token
is returned as the last entry (finish "stop"). lm-eval's loglikelihood request (echo, logprobs, temperature 0,
max_tokens 1) is answered from that same pass: its generated entry is the distribution's first choice,
``next_top[0]``, so ``top_logprobs`` and the greedy check use the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from desktop.core.errors import ContextOverflow
from desktop.engine.model import Model
from desktop.engine.types import FinalEvent, ScoredToken, TokenEvent, TopToken
from desktop.serve.errors import ApiError
from desktop.serve.protocol import CompletionLogprobs, CompletionRequest
from desktop.serve.work import Cancel, cancelled_error, is_plain_greedy, logprob, sampling, stops


@dataclass
class Outcome:
    """One prompt's answer, filled as it runs."""

    ids: list[int]
    echo_text: str = ""  # the prompt as echoed: the text given, or the ids' text
    added_bos: bool = False  # the tokenizer put BOS before a text prompt (zero width in text_offset)
    rows: tuple[ScoredToken, ...] | None = None  # the prompt's per-position logprobs (echo + logprobs)
    generated: list[TokenEvent] = field(default_factory=list)
    text: str = ""
    finish: str = "length"
    capped_to: int | None = None  # max_tokens as allowed when the request asked for more than fits


def prompts_of(req: CompletionRequest) -> list[str | list[int]]:
    """The request's prompts: a text, texts, token ids, or lists of token ids (a batch)."""
    p = req.prompt
    if isinstance(p, str):
        return [p]
    if not p:
        raise ApiError(400, "The prompt is empty.", "empty_prompt")
    if all(isinstance(x, int) for x in p):
        return [list(p)]
    return list(p)


def run_prompt(model: Model, prompt: str | list[int], req: CompletionRequest, emit, cancel: Cancel) -> Outcome:
    """Blocking: answer one prompt. ``emit`` gets ("prompt", Outcome) once the prompt is scored, then
    ("token", TokenEvent) per generated token (a stream sends each as it comes)."""
    info = model.info
    eos_id = getattr(info, "eos_id", -1)
    if isinstance(prompt, str):
        ids = model.tokenize(prompt, True, add_bos=True)
        out = Outcome(ids, prompt if req.echo else "",
                      bool(getattr(info, "add_bos", False)) and ids[:1] == [getattr(info, "bos_id", -1)])
    else:
        ids = list(prompt)
        out = Outcome(ids)
        if req.echo and ids:
            out.echo_text = model.detokenize(ids)
    if not ids:
        raise ApiError(400, "The prompt is empty: give some text or at least one token id.", "empty_prompt")
    n_ctx = int(info.n_ctx)
    if len(ids) >= n_ctx:
        raise ContextOverflow("prompt too long", len(ids), n_ctx)
    asked = 16 if req.max_tokens is None else req.max_tokens
    room = n_ctx - len(ids)
    max_tokens = min(asked, room)
    if asked > room:
        out.capped_to = room
    k = req.logprobs
    fast = req.echo and k is not None and max_tokens == 1 and is_plain_greedy(req)
    scores = None
    if req.echo and k is not None:
        scores = model.score_tokens(ids, top_k=k, next_top_k=max(k, 1) if fast else 0)
        out.rows = scores.tokens
    cancel.check()
    emit(("prompt", out))
    if max_tokens == 0:
        return out
    if fast:
        best = scores.next_top[0]
        is_eos = best.token_id == eos_id
        text, finish = ("", "stop") if is_eos else (best.text, "length")
        for s in stops(req):
            at = text.find(s)
            if s and at >= 0:
                text, finish = text[:at], "stop"
        event = TokenEvent(text, best.token_id, best.logprob, scores.next_top[:k])
        out.generated.append(event)
        out.text, out.finish = text, finish
        emit(("token", event))
        return out
    params = sampling(req, max_tokens, max(k, 1) if k is not None else 0, emit_eog=True)
    stream = model.complete_tokens(ids, params)
    cancel.attach(stream)
    final = None
    for event in stream:
        if isinstance(event, FinalEvent):
            final = event
            break
        out.generated.append(event)
        emit(("token", event))
    if final.error is not None:
        raise final.error
    if final.finish_reason == "cancelled":
        raise cancelled_error(cancel.reason)
    out.text, out.finish = final.text, final.finish_reason
    return out


def token_text(event: TokenEvent | ScoredToken, eos_id: int, eos_text: str) -> str:
    """A token as the logprobs' ``tokens`` list shows it: its text, or the end token's own text."""
    if not event.text and event.token_id == eos_id:
        return eos_text
    return event.text


def top_dict(top: tuple[TopToken, ...], k: int, chosen: TokenEvent | ScoredToken, chosen_text: str) -> dict:
    """vLLM's top_logprobs entry: the top k by text, and the chosen token's own."""
    entry = {t.text: logprob(t.logprob) for t in top[:k]}
    entry.setdefault(chosen_text, logprob(chosen.logprob))
    return entry


class LogprobsBuilder:
    """The ``logprobs`` object, built whole or a piece per stream chunk (``text_offset`` runs on)."""

    def __init__(self, model: Model, k: int):
        info = model.info
        self.k = k
        self.eos_id = getattr(info, "eos_id", -1)
        self.eos_text = info.eos_text
        self.offset = 0

    def prompt_part(self, out: Outcome) -> CompletionLogprobs:
        part = CompletionLogprobs()
        for j, row in enumerate(out.rows or ()):
            text = row.text
            part.tokens.append(text)
            part.text_offset.append(self.offset)
            if j == 0:
                part.token_logprobs.append(None)
                part.top_logprobs.append(None)
            else:
                part.token_logprobs.append(logprob(row.logprob))
                part.top_logprobs.append(top_dict(row.top, self.k, row, text))
            self.offset += 0 if (j == 0 and out.added_bos) else len(text)
        self.offset = len(out.echo_text)
        return part

    def token_part(self, events: list[TokenEvent]) -> CompletionLogprobs:
        part = CompletionLogprobs()
        for event in events:
            text = token_text(event, self.eos_id, self.eos_text)
            part.tokens.append(text)
            part.token_logprobs.append(logprob(event.logprob))
            part.top_logprobs.append(top_dict(event.top, self.k, event, text))
            part.text_offset.append(self.offset)
            self.offset += len(event.text)
        return part


def merged(a: CompletionLogprobs, b: CompletionLogprobs) -> CompletionLogprobs:
    return CompletionLogprobs(tokens=a.tokens + b.tokens, token_logprobs=a.token_logprobs + b.token_logprobs,
                              top_logprobs=a.top_logprobs + b.top_logprobs, text_offset=a.text_offset + b.text_offset)
