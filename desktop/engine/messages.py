"""The messages between the app (``client``) and a model's worker process (``worker``), one class per kind.

Each is a small frozen dataclass sent over the ``multiprocessing`` pipe as it is: a request names its
fields, and a reply is matched by type instead of a tuple's first string. Pickling goes through
``__reduce__`` with the fields in order (a slotted dataclass's default pickling costs ~10x more, and a
``Token`` goes by for every generated token).

Requests (client -> worker):  ``Complete``, ``Chat``, ``CompleteTokens`` (streams), ``Render``, ``Tokenize``,
``Detokenize``, ``Score``, ``ScoreTokens``, ``VocabId``, ``Close``.
Replies (worker -> client):
    a stream:       ``Token`` per emitted token, then exactly one ``Final`` (a FinalEvent; its ``error`` is set
                    when the request failed, ``finish_reason="cancelled"`` when it was stopped);
    anything else:  ``Done`` (the value) or ``Failed`` (a ``TandemError`` to raise in the app).
Loading replies ``Done(LoadInfo)`` or ``Failed``; the hardware check ``Done(dict)`` or ``Failed``.
A worker with slots (``batching``) wraps every message after loading in ``Tagged(rid, msg)``, and takes
``Cancel`` for one request.
A new request kind is a new class here plus its branch in ``worker.serve``.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.engine.types import FinalEvent, SamplingParams, TokenEvent, TopToken


class _Message:
    __slots__ = ()

    def __reduce__(self):
        return (type(self), tuple(getattr(self, name) for name in self.__slots__))


# --- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Complete(_Message):
    """Raw completion of ``prompt`` (streams). ``threads``: this request's CPU threads, None = load-time."""

    prompt: str
    params: SamplingParams
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class Chat(_Message):
    """A reply to ``messages`` through the model's chat template (streams)."""

    messages: list[dict]
    system: str | None
    params: SamplingParams
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class CompleteTokens(_Message):
    """Generation after a prompt given as token ids, used exactly as given (streams)."""

    tokens: list[int]
    params: SamplingParams
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class Render(_Message):
    """The templated prompt text for ``messages`` (no generation)."""

    messages: list[dict]
    system: str | None = None


@dataclass(frozen=True, slots=True)
class Tokenize(_Message):
    """Token ids of ``text``; ``special``: parse special-token text; ``add_bos``: None = ``special``."""

    text: str
    special: bool = False
    add_bos: bool | None = None


@dataclass(frozen=True, slots=True)
class Detokenize(_Message):
    """The text of token ids (special tokens as their text)."""

    tokens: list[int]


@dataclass(frozen=True, slots=True)
class Score(_Message):
    """Log-probabilities of ``continuation``'s tokens after ``prompt`` (a user message when ``as_chat``)."""

    prompt: str
    continuation: str | list[int]  # text, or a generation's own token ids
    as_chat: bool = False
    system: str | None = None
    top_k: int = 0  # > 0: each token's rank over the vocabulary and the top-k alternatives


@dataclass(frozen=True, slots=True)
class ScoreTokens(_Message):
    """Every position's logprob of a prompt given as token ids (a ``TokenScores``)."""

    tokens: list[int]
    top_k: int = 0
    next_top_k: int = 0


@dataclass(frozen=True, slots=True)
class VocabId(_Message):
    """The vocabulary's identity: "<token count>:<hash of every token's text>"."""


@dataclass(frozen=True, slots=True)
class Close(_Message):
    """Free the model and end the worker; answered by ``Done(None)``."""


@dataclass(frozen=True, slots=True)
class Cancel(_Message):
    """Stop the tagged request (slots only; one request at a time stops through the shared cancel flag)."""


@dataclass(frozen=True, slots=True)
class Tagged(_Message):
    """The envelope of a worker with slots (``LoadOptions.n_seq`` > 1), both ways: several requests share
    the pipe, so each request, its replies and its ``Cancel`` carry the request's id."""

    rid: int
    msg: object


# --- replies -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token(_Message):
    """One emitted token. ``logprob`` is NaN unless the request asked for logprobs; ``top`` holds
    (text, token_id, logprob) of the top-k alternatives as plain tuples (cheap to pickle)."""

    text: str
    token_id: int
    logprob: float
    top: tuple[tuple[str, int, float], ...] = ()

    def event(self) -> TokenEvent:
        return TokenEvent(self.text, self.token_id, self.logprob, tuple(TopToken(*t) for t in self.top))


@dataclass(frozen=True, slots=True)
class Tokens(_Message):
    """Several emitted tokens in one message (``generation.TokenSender``), in order."""

    tokens: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class Final(_Message):
    """The end of a stream."""

    event: FinalEvent


@dataclass(frozen=True, slots=True)
class Done(_Message):
    """A non-streaming request's result."""

    value: object = None


@dataclass(frozen=True, slots=True)
class Failed(_Message):
    """A request (or loading) failed; ``error`` is raised in the app as it is."""

    error: BaseException


STREAMING = (Complete, Chat, CompleteTokens)
Request = (Complete | Chat | CompleteTokens | Render | Tokenize | Detokenize | Score | ScoreTokens | VocabId
           | Close)
Reply = Token | Final | Done | Failed
