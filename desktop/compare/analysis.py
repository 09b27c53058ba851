"""Looking inside a compare run, without Qt: how surprising each model finds the other's text, where in
the text that surprise sits, and how the two models' very first next-token distributions overlap.

The blocking helpers (``model_view``, ``score_fitting``, ``first_step``) call the engine and are meant for
a worker thread. A model that is still busy with another request queues them (the model does that, see
``desktop.engine.model.Capabilities.queues``); a ``cancelled()`` callable, checked before each request, drops
an analysis a new run made stale.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from desktop.core.errors import ContextOverflow, ScoringUnavailable
from desktop.engine.model import Model
from desktop.engine.types import FinalEvent, SamplingParams, ScoredToken, ScoreResult, TokenEvent, TopToken

FIRST_STEP_K = 10
_BYTE_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


# --- surprise: one number per text -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Surprise:
    """How a model found a text: mean log-probability per token and its perplexity (exp of minus it)."""

    mean_logprob: float
    n_tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_logprob) if self.n_tokens else float("nan")

    @classmethod
    def of(cls, result: ScoreResult) -> Surprise:
        return cls(result.mean_logprob, len(result.tokens))


def describe_ratio(own: Surprise, other: Surprise) -> str:
    """'3.2× more surprising' — the perplexity ratio in words (other relative to own)."""
    if not (own.n_tokens and other.n_tokens):
        return ""
    ratio = other.perplexity / own.perplexity if own.perplexity > 0 else float("inf")
    if not math.isfinite(ratio):
        return ""
    if 0.91 <= ratio <= 1.1:
        return "about as surprising"
    if ratio > 1:
        return f"{ratio:.1f}\u00d7 more surprising"
    return f"{1 / ratio:.1f}\u00d7 less surprising"


# --- where the surprise sits: scored tokens on the characters of the text ----------------------------


@dataclass(frozen=True, slots=True)
class ScoredSpan:
    """A scored token's place in the output text, in Python character offsets."""

    start: int
    end: int
    text: str
    token_id: int
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob) if math.isfinite(self.logprob) else 0.0


def piece_bytes(piece: str) -> bytes:
    """A scored token's bytes. The engine shows the bytes of a token that ends inside a UTF-8 character
    as ``\\xNN`` escapes; turn them back into bytes so pieces join into the text again."""
    if "\\x" not in piece:
        return piece.encode("utf-8")
    out = bytearray()
    pos = 0
    for m in _BYTE_ESCAPE.finditer(piece):
        out += piece[pos:m.start()].encode("utf-8")
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += piece[pos:].encode("utf-8")
    return bytes(out)


def align_scored(text: str, tokens: Sequence[ScoredToken]) -> list[ScoredSpan]:
    """Lay scored tokens over ``text``, which they were scored as.

    The scorer re-tokenizes: its tokens may start with bytes that are not in the text (a tokenizer's
    leading space, or the tail of the prompt merged into the first token), and their boundaries need not
    match the generated tokens'. Aligning on the right, in bytes, handles both; a token that covers part of
    a multi-byte character colours the whole character.
    """
    data = text.encode("utf-8")
    pieces = [piece_bytes(t.text) for t in tokens]
    joined = b"".join(pieces)
    skip = len(joined) - len(data) if joined.endswith(data) else 0
    starts = []  # byte offset of each character
    offset = 0
    for ch in text:
        starts.append(offset)
        offset += len(ch.encode("utf-8"))
    spans: list[ScoredSpan] = []
    pos = -skip
    for token, piece in zip(tokens, pieces, strict=True):
        lo, hi = max(pos, 0), min(pos + len(piece), len(data))
        pos += len(piece)
        if hi <= lo:
            continue
        c0 = bisect.bisect_right(starts, lo) - 1
        c1 = bisect.bisect_left(starts, hi)
        spans.append(ScoredSpan(c0, c1, token.text, token.token_id, token.logprob))
    return spans


# --- the first step: two next-token distributions ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overlap:
    """How much the two top-k lists agree: shared token texts and the probability mass they share."""

    shared: frozenset[str]
    mass: float  # sum over shared tokens of min(p_base, p_instruct): 1 = the same bet, 0 = disjoint
    same_top: bool
    k: int


def overlap(base: Sequence[TopToken], instruct: Sequence[TopToken]) -> Overlap:
    pa = {t.text: math.exp(t.logprob) for t in base}
    pb = {t.text: math.exp(t.logprob) for t in instruct}
    shared = frozenset(pa) & frozenset(pb)
    same_top = bool(base and instruct and max(base, key=lambda t: t.logprob).text
                    == max(instruct, key=lambda t: t.logprob).text)
    return Overlap(shared, sum(min(pa[t], pb[t]) for t in shared), same_top, max(len(base), len(instruct)))


# --- blocking engine calls (worker thread) -----------------------------------------------------------


class Cancelled(Exception):
    """The analysis was superseded (a new run started): drop it quietly."""


def unless_cancelled(call: Callable[[], object], cancelled: Callable[[], bool]):
    """Run ``call()`` (which waits while its model is busy), unless the analysis was superseded."""
    if cancelled():
        raise Cancelled()
    return call()


def score_fitting(handle: Model, prompt: str, text: str, *, as_chat: bool,
                  cancelled: Callable[[], bool]) -> tuple[ScoreResult, int]:
    """Score ``text`` after ``prompt``; returns the result and how many characters of ``text`` it covers.

    A long output may not fit the *other* model's context together with its prompt (a chat template adds
    tokens): then as much of the text's beginning as fits is scored, rather than nothing.
    """
    if not text:
        return ScoreResult(()), 0
    cut = len(text)
    for _ in range(6):
        part = text[:cut]
        try:
            return unless_cancelled(lambda part=part: handle.score(prompt, part, as_chat=as_chat), cancelled), cut
        except ContextOverflow as exc:
            if not (exc.n_ctx and exc.prompt_tokens):
                raise
            n_part = unless_cancelled(lambda part=part: handle.count_tokens(part), cancelled)
            keep = n_part - (exc.prompt_tokens - exc.n_ctx + 1) - 8
            if keep <= 0:  # the prompt alone fills the context: nothing of the text can be scored
                raise
            cut = max(1, min(cut - 1, int(cut * keep / max(n_part, 1))))
    raise ContextOverflow("The text does not fit the model's context for scoring.")


def first_step(handle: Model, prompt: str, *, as_chat: bool, cancelled: Callable[[], bool],
               k: int = FIRST_STEP_K) -> tuple[TopToken, ...]:
    """The model's top-k next tokens for this input: one greedy step with logprobs. Empty if the model
    would end its text at once (the end token is not reported as a token)."""
    params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=k, seed=0)
    if as_chat:
        begin = lambda: handle.chat([{"role": "user", "content": prompt}], params)  # noqa: E731
    else:
        begin = lambda: handle.complete(prompt, params)  # noqa: E731
    stream = unless_cancelled(begin, cancelled)
    top: tuple[TopToken, ...] = ()
    for event in stream:
        if isinstance(event, TokenEvent) and not top:
            top = event.top
        elif isinstance(event, FinalEvent) and event.error is not None:
            raise event.error
    return top


@dataclass(frozen=True)
class Scored:
    """A text's score under a model; ``chars`` < ``of_chars`` when only its beginning fit the context."""

    result: ScoreResult
    chars: int
    of_chars: int

    @property
    def partial(self) -> bool:
        return self.chars < self.of_chars


@dataclass(frozen=True)
class ModelView:
    """What one model makes of a run: its own output, the other model's output, its first step. Each part
    is its value or the exception that stopped it, so one failure doesn't hide the rest."""

    own: Scored | BaseException
    cross: Scored | BaseException
    first: tuple[TopToken, ...] | BaseException


def model_view(handle: Model, model_input: str, own_text: str, other_text: str, *, as_chat: bool,
               cancelled: Callable[[], bool]) -> ModelView:
    """Score both outputs under ``handle``'s model given its own input, then take its first step.
    ``model_input`` is what this model was given: the raw (or few-shot) prompt for the base model, the
    user message for the instruct model (``as_chat``). Raises Cancelled when superseded."""
    caps = handle.capabilities
    if not caps.scoring:  # say why once, and spare the server two requests that can only fail
        unavailable = ScoringUnavailable(caps.scoring_note)
        first = _or_error(lambda: first_step(handle, model_input, as_chat=as_chat, cancelled=cancelled))
        return ModelView(unavailable, unavailable, first)
    parts: list = []
    for step in (lambda: score_fitting(handle, model_input, own_text, as_chat=as_chat, cancelled=cancelled),
                 lambda: score_fitting(handle, model_input, other_text, as_chat=as_chat, cancelled=cancelled),
                 lambda: first_step(handle, model_input, as_chat=as_chat, cancelled=cancelled)):
        try:
            parts.append(step())
        except Cancelled:
            raise
        except Exception as exc:  # shown where it belongs; the other parts still count
            parts.append(exc)
    own, cross, first = parts
    texts = (own_text, other_text)
    scored = [Scored(p[0], p[1], len(t)) if isinstance(p, tuple) else p for p, t in zip((own, cross), texts,
                                                                                       strict=True)]
    return ModelView(scored[0], scored[1], first)


def _or_error(step: Callable[[], object]):
    try:
        return step()
    except Cancelled:
        raise
    except Exception as exc:  # shown where it belongs
        return exc
