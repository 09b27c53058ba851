"""What a pane, the CLI or an analysis may ask of a loaded model, and nothing about how it runs.

``Model`` is the one interface every backend implements: the local llama.cpp worker
(``desktop.engine.client.ModelHandle``) first, a model on a remote inference server second. Callers read
``capabilities`` to decide what to offer, never ``isinstance`` (simonw/llm's ``Model`` is the pattern).

Every generating call returns a ``GenerationStream``: zero or more ``TokenEvent`` then exactly one
``FinalEvent`` (see ``desktop.engine.types``). A backend that can't do something raises
``desktop.core.errors.EngineError`` (or a subclass) with a one-line reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from desktop.engine.types import FinalEvent, SamplingParams, ScoreResult, TokenEvent, TokenScores


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model can do, as flags the ui reads. ``*_note`` says in one line why a feature is off."""

    top_logprobs: int = 20  # the most top-k alternatives per token it reports; 0 = none
    scoring: bool = True  # logprobs of given text (cross-scoring, perplexity, token shift)
    scoring_note: str = ""
    server_template: bool = True  # render_chat returns the exact templated prompt
    template_note: str = ""
    tokenizer: bool = True  # tokenize / count_tokens work
    queues: bool = False  # a second request waits for the first instead of replacing it
    score_ranks: bool = True  # score(..., top_k=N) reports each given token's rank and the top alternatives
    remote: bool = False  # requests leave this process for a server (the status bar names it)
    token_ids: bool = True  # complete_tokens / score_tokens / detokenize: prompts given as token ids
    token_ids_note: str = ""
    slots: int = 1  # requests decoded together (LoadOptions.n_seq); more wait their turn


@runtime_checkable
class ModelInfo(Protocol):
    """The facts about a loaded model a view shows. ``LoadInfo`` satisfies it for local models."""

    name: str
    n_ctx: int
    n_vocab: int
    backend: str  # "CPU", "CUDA", ... or "vLLM @ host:port"
    chat_template: str | None
    bos_text: str
    eos_text: str

    @property
    def kind(self) -> Literal["base", "instruct"]: ...


@runtime_checkable
class GenerationStream(Protocol):
    """Iterate for TokenEvents then one FinalEvent. ``cancel()`` may be called from any thread and
    ends the stream within 200 ms; ``final`` is the FinalEvent once the stream has ended."""

    final: FinalEvent | None

    @property
    def done(self) -> bool: ...

    @property
    def waiting(self) -> bool:
        """True while the request waits for the model to finish another one (``Capabilities.queues``);
        always False for a backend that doesn't queue."""
        ...

    def cancel(self) -> None: ...

    def __iter__(self) -> Iterator[TokenEvent | FinalEvent]: ...

    def next_event(self) -> TokenEvent | FinalEvent: ...

    def text(self) -> str: ...


class StreamLoop:
    """What every backend's stream does the same way on top of its own ``next_event``: iteration up to the
    final event, and ``text()``, which runs to the end and raises the stream's error, if any."""

    def next_event(self) -> TokenEvent | FinalEvent:
        raise NotImplementedError

    def __iter__(self) -> Iterator[TokenEvent | FinalEvent]:
        while True:
            event = self.next_event()
            yield event
            if isinstance(event, FinalEvent):
                return

    def text(self) -> str:
        """Run to the end and return the text; raises the stream's error, if any."""
        final = None
        for event in self:
            final = event
        assert isinstance(final, FinalEvent)
        if final.error is not None:
            raise final.error
        return final.text


@runtime_checkable
class Model(Protocol):
    """A loaded model, local or remote. Blocking calls are for a background thread; none touches Qt."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def vocab_id(self) -> str:
        """Identity of the vocabulary: token count and a hash of every token string. Two models whose
        ``vocab_id`` match tokenize alike (token shift needs this); "" when the backend can't tell."""
        ...

    def complete(self, prompt: str, params: SamplingParams | None = None, *,
                 threads: int | None = None) -> GenerationStream: ...

    def chat(self, messages: Sequence[Mapping[str, str]], params: SamplingParams | None = None, *,
             system: str | None = None, threads: int | None = None) -> GenerationStream: ...

    def render_chat(self, messages: Sequence[Mapping[str, str]], system: str | None = None) -> str: ...

    def tokenize(self, text: str, special: bool = False, *, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text``. ``special``: special-token text ("<|im_end|>") becomes the special token;
        ``add_bos``: put BOS first where the model's tokenizer adds one (None: the same as ``special``)."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of these token ids, special tokens written as their text."""
        ...

    def complete_tokens(self, tokens: Sequence[int], params: SamplingParams | None = None, *,
                        threads: int | None = None) -> GenerationStream:
        """Generation after a prompt given as token ids, used exactly as given (no BOS added)."""
        ...

    def score_tokens(self, tokens: Sequence[int], *, top_k: int = 0, next_top_k: int = 0) -> TokenScores:
        """Every position's log-probability of a prompt given as token ids (no BOS added): see
        ``TokenScores``. With ``top_k`` each position also carries its rank and top-k alternatives."""
        ...

    def count_tokens(self, text: str, special: bool = False) -> int: ...

    def score(self, prompt: str, continuation: str | Sequence[int], *, as_chat: bool = False,
              system: str | None = None, top_k: int = 0) -> ScoreResult:
        """Logprobs of ``continuation`` (text, or token ids scored as given) after ``prompt``; with
        ``top_k`` > 0 each token's rank over the vocabulary (1 = first choice, ties to the lower id) and
        the top-k alternatives."""
        ...

    def close(self) -> None: ...
