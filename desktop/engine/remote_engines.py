"""What each inference server is: one ``Dialect`` class per engine, carrying its label, its ``detect()``, its
routes (request bodies out, token events in) and its quirks, in the style of simonw/llm's model classes.

Each class is built from the engine's own documentation and source (cited per class), so request building and
reply parsing can be tested against the documented shapes without the server. A class does I/O only through
what it is handed: ``detect()`` and ``model_texts()`` a ``Transport``, ``render_chat()`` a ``post`` callable.
This module holds the base (any OpenAI-compatible server), vLLM and llama-cpp-python; the engines with native
APIs (SGLang, llama-server, Ollama) are in ``remote_native``; ``remote_registry`` lists them all, in the order
detection tries them. A new engine is one class here or there plus one line in that list:

- ``llama-server`` (llama.cpp tools/server/README.md): ``/completion`` with ``n_probs``, ``/tokenize``,
  ``/apply-template``, ``/props``; it can't score given text.
- ``vllm`` (vllm/entrypoints/openai/protocol.py): OpenAI ``/v1/completions`` with ``logprobs`` and ``echo``,
  ``/tokenize`` (``prompt`` or ``messages``), ``/detokenize``, ``/version``.
- ``sglang`` (python/sglang/srt/managers/io_struct.py ``GenerateReqInput``): ``/generate`` with
  ``return_logprob``, ``top_logprobs_num``, ``logprob_start_len``; ``/get_model_info``.
- ``ollama`` (ollama docs/api.md): ``/api/generate`` with ``raw`` and ``logprobs``/``top_logprobs``, NDJSON.
- ``llama-cpp-python`` (llama_cpp/server/app.py) and any other ``openai`` server: ``/v1/completions``,
  ``/v1/chat/completions``; llama-cpp-python adds ``/extras/tokenize``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from desktop.core.errors import EngineError, ServerProtocolError
from desktop.engine.remote_http import finite
from desktop.engine.types import SamplingParams, TokenEvent, TopToken

if TYPE_CHECKING:
    from desktop.engine.remote_http import Transport

Post = Callable[["Request"], Any]
"""Sends one request to the model's server and returns its JSON reply (``RemoteModel`` binds the model)."""


@dataclass(frozen=True)
class ServerModel:
    id: str
    n_ctx: int = 0
    n_vocab: int = 0


@dataclass(frozen=True)
class ServerFacts:
    """What detection found: the engine, its version, the models and the llama-server props."""

    engine: str
    version: str
    models: tuple[ServerModel, ...]
    props: Mapping | None = None


@dataclass(frozen=True)
class ModelTexts:
    """What a server tells of one model's chat template and special tokens ("" / None where it doesn't)."""

    chat_template: str | None = None
    bos_text: str = ""
    eos_text: str = ""


@dataclass(frozen=True)
class Request:
    path: str
    body: dict
    ndjson: bool = False


@dataclass
class ParseState:
    """What a stream parser carries between chunks (cumulative engines send the whole text each time)."""

    seen_text: str = ""
    seen_tokens: int = 0
    finish: str | None = None  # "stop" | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    extra: dict = field(default_factory=dict)


def _top_from_pairs(pairs: Any) -> tuple[TopToken, ...]:
    """[{"token"/"text", "logprob", "id"?}, ...] or {"tok": lp, ...} -> TopTokens, best first."""
    if isinstance(pairs, Mapping):
        items = [TopToken(str(t), -1, finite(lp, "top logprob")) for t, lp in pairs.items()]
    elif isinstance(pairs, Sequence):
        items = []
        for p in pairs:
            if not isinstance(p, Mapping):
                raise ServerProtocolError(f"the server sent a top-logprob entry that is not an object ({p!r}).")
            items.append(TopToken(str(p.get("token", p.get("text", ""))), int(p.get("id", -1)),
                                  finite(p.get("logprob"), "top logprob")))
    else:
        return ()
    return tuple(sorted(items, key=lambda t: -t.logprob))


def _common_sampling(params: SamplingParams) -> dict:
    out = {"temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
           "presence_penalty": params.presence_penalty, "frequency_penalty": params.frequency_penalty}
    if params.stop:
        out["stop"] = list(params.stop)
    return {k: v for k, v in out.items() if v is not None}


def _no_grammar(params: SamplingParams, label: str) -> None:
    if params.grammar or params.json_schema:
        raise EngineError(f"Grammars and JSON schemas are sent only to llama-server and Ollama endpoints; "
                          f"this {label} gets neither.")


class Dialect:
    """Any OpenAI-compatible server (``/v1/completions``, ``/v1/chat/completions``); a subclass is one engine
    and overrides what its server does differently. The class attributes are what ``RemoteModel`` reads
    instead of asking which engine it talks to."""

    kind = "openai"
    label = "OpenAI-compatible server"
    can_render = False  # render_chat() shows the exact prompt the server's template makes
    can_tokenize = False  # tokenize_request() exists
    can_score = True  # score_request() returns the logprobs of given text
    chat_through_template = False  # chat = render_chat() then complete_request() (the raw completion route)
    max_top = 5  # OpenAI's documented maximum for completions `logprobs`

    # -- what the server is -------------------------------------------------------------------------------
    @classmethod
    def detect(cls, t: Transport, listing: Mapping | None, models: tuple[ServerModel, ...]) -> ServerFacts | None:
        """This engine's facts if the server at ``t`` is this engine, else None. ``listing`` is the server's
        /v1/models reply (None where it has none) and ``models`` what it lists. The base matches any server
        with a model list, so it comes last in the registry."""
        return None if listing is None else ServerFacts(cls.kind, "", models)

    def model_texts(self, t: Transport, facts: ServerFacts, model_id: str) -> ModelTexts:
        """The model's chat template and special tokens, as far as this server says."""
        return ModelTexts()

    def render_chat(self, post: Post, where: str, model_id: str, messages: list[dict]) -> str:
        """The exact prompt the server's template makes of ``messages`` (only where ``can_render``)."""
        raise NotImplementedError

    # -- generation -------------------------------------------------------------------------------------
    def complete_request(self, model: str, prompt: str, params: SamplingParams) -> Request:
        _no_grammar(params, self.label)
        body = {"model": model, "prompt": prompt, "max_tokens": params.max_tokens, "stream": True,
                "logprobs": max(1, min(params.logprobs, self.max_top)), **_common_sampling(params),
                "stream_options": {"include_usage": True}}
        body.update(self.extra_sampling(params))
        return Request("/v1/completions", body)

    def chat_request(self, model: str, messages: list[dict], params: SamplingParams) -> Request:
        _no_grammar(params, self.label)
        body = {"model": model, "messages": messages, "max_tokens": params.max_tokens, "stream": True,
                "logprobs": True, "top_logprobs": min(params.logprobs, self.max_top), **_common_sampling(params),
                "stream_options": {"include_usage": True}}
        body.update(self.extra_sampling(params))
        return Request("/v1/chat/completions", body)

    def extra_sampling(self, params: SamplingParams) -> dict:
        return {}

    def parse_chunk(self, obj: dict, state: ParseState) -> list[TokenEvent]:
        """One SSE chunk of /v1/completions or /v1/chat/completions -> its tokens."""
        usage = obj.get("usage")
        if isinstance(usage, Mapping):
            state.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            state.completion_tokens = int(usage.get("completion_tokens") or 0)
        choices = obj.get("choices")
        if not choices:
            if usage is None:
                raise ServerProtocolError("the server sent a stream chunk without choices.")
            return []
        choice = choices[0]
        if choice.get("finish_reason"):
            state.finish = "length" if choice["finish_reason"] == "length" else "stop"
        logprobs = choice.get("logprobs")
        if "delta" in choice:  # chat
            text = (choice.get("delta") or {}).get("content") or ""
            content = (logprobs or {}).get("content") if isinstance(logprobs, Mapping) else None
            if content is None:
                return self._untracked(text, state)
            events = [TokenEvent(str(c.get("token", "")), int(c.get("id", -1)),
                                 finite(c.get("logprob"), "logprob"), _top_from_pairs(c.get("top_logprobs") or ()))
                      for c in content]
            return _reconcile(events, text)
        text = choice.get("text") or ""
        if not isinstance(logprobs, Mapping) or logprobs.get("tokens") is None:
            return self._untracked(text, state)
        tokens, lps = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
        tops = logprobs.get("top_logprobs") or [None] * len(tokens)
        if len(lps) != len(tokens):
            raise ServerProtocolError("the server sent a different number of tokens and logprobs.")
        events = [TokenEvent(str(t), -1, finite(lp, "logprob"), _top_from_pairs(top or ()))
                  for t, lp, top in zip(tokens, lps, tops)]
        return _reconcile(events, text)

    def _untracked(self, text: str, state: ParseState) -> list[TokenEvent]:
        if not text:
            return []
        raise ServerProtocolError("the server sent text without the logprobs Tandem asked for.")

    # -- scoring (echo) -----------------------------------------------------------------------------------
    def score_request(self, model: str, text: str, top_k: int) -> Request:
        return Request("/v1/completions", {"model": model, "prompt": text, "max_tokens": 1, "echo": True,
                                           "logprobs": max(1, min(top_k, self.max_top)), "temperature": 0})

    def parse_score(self, obj: dict, prompt_chars: int, cont_chars: int) -> list[tuple[str, int, float, tuple]]:
        """The echoed tokens that spell the continuation. Aligned from the end of the echo (a BOS token's
        text may shift every offset at the start), less what the server generated after it."""
        try:
            choice = obj["choices"][0]
            lp = choice["logprobs"]
            tokens, lps = lp["tokens"], lp["token_logprobs"]
            offsets = lp.get("text_offset") or _offsets(tokens)
            tops = lp.get("top_logprobs") or [None] * len(tokens)
        except (KeyError, IndexError, TypeError):
            raise ServerProtocolError("the server's echo reply has no prompt logprobs.") from None
        if not tokens or len(lps) != len(tokens) or len(offsets) != len(tokens):
            raise ServerProtocolError("the server's echo reply has mismatched token and logprob lists.")
        generated = max(0, len(choice.get("text") or "") - prompt_chars - cont_chars)
        end = offsets[-1] + len(str(tokens[-1])) - generated
        return [(str(tok), -1, finite(value, "prompt logprob"), _top_from_pairs(top or ()))
                for tok, value, off, top in zip(tokens, lps, offsets, tops) if end - cont_chars <= off < end]


def _offsets(texts: Sequence[str]) -> list[int]:
    out, at = [], 0
    for t in texts:
        out.append(at)
        at += len(str(t))
    return out


def _reconcile(events: list[TokenEvent], text: str) -> list[TokenEvent]:
    """Token texts that add up to the chunk's text; if they don't (a server detail), the text wins."""
    if not events:
        return []
    if "".join(e.text for e in events) == text:
        return events
    return [TokenEvent(text if i == 0 else "", e.token_id, e.logprob, e.top) for i, e in enumerate(events)]


class LlamaCppPython(Dialect):
    """llama-cpp-python's ``python -m llama_cpp.server`` (llama_cpp/server/app.py, types.py)."""

    kind = "llama-cpp-python"
    label = "llama-cpp-python server"
    can_tokenize = True
    max_top = 20

    @classmethod
    def detect(cls, t: Transport, listing: Mapping | None, models: tuple[ServerModel, ...]) -> ServerFacts | None:
        data = (listing or {}).get("data")
        if data and all(isinstance(m, Mapping) and m.get("owned_by") == "me" for m in data):
            return ServerFacts(cls.kind, "", models)  # llama_cpp/server/app.py get_models
        return None

    def extra_sampling(self, params: SamplingParams) -> dict:
        return {"top_k": params.top_k, "min_p": params.min_p, "repeat_penalty": params.repeat_penalty}

    def complete_request(self, model: str, prompt: str, params: SamplingParams) -> Request:
        req = super().complete_request(model, prompt, params)
        req.body.pop("stream_options", None)
        return req

    def chat_request(self, model: str, messages: list[dict], params: SamplingParams) -> Request:
        req = super().chat_request(model, messages, params)
        req.body.pop("stream_options", None)
        return req

    def tokenize_request(self, model: str, text: str) -> Request:
        return Request("/extras/tokenize", {"model": model, "input": text})

    def parse_tokens(self, obj: dict) -> list[int]:
        return [int(t) for t in obj["tokens"]]


class VLLM(Dialect):
    """vLLM's OpenAI server: vllm/entrypoints/openai/protocol.py (CompletionRequest, TokenizeCompletionRequest,
    TokenizeChatRequest, TokenizeResponse, DetokenizeResponse)."""

    kind = "vllm"
    label = "vLLM"
    can_render = True
    can_tokenize = True
    max_top = 20  # vLLM's default --max-logprobs

    @classmethod
    def detect(cls, t: Transport, listing: Mapping | None, models: tuple[ServerModel, ...]) -> ServerFacts | None:
        if listing is None:
            return None
        ver = t.probe("GET", "/version")
        if isinstance(ver, Mapping) and "version" in ver:
            return ServerFacts(cls.kind, str(ver["version"]), models)
        return None

    def model_texts(self, t: Transport, facts: ServerFacts, model_id: str) -> ModelTexts:
        """vLLM renders chat only when the model has a template; a base model's /tokenize with messages fails."""
        ok = t.probe("POST", "/tokenize", {"model": model_id, "messages": [{"role": "user", "content": "hi"}],
                                           "add_generation_prompt": True})
        return ModelTexts("(applied by the vLLM server)" if isinstance(ok, Mapping) and "tokens" in ok else None)

    def render_chat(self, post: Post, where: str, model_id: str, messages: list[dict]) -> str:
        """The server's template as token ids (/tokenize with messages), spelt back out by /detokenize."""
        tokens = self.parse_tokens(post(self.render_requests(model_id, messages)))
        out = post(self.detokenize_request(model_id, tokens))
        if not isinstance(out, Mapping) or not isinstance(out.get("prompt"), str):
            raise ServerProtocolError(f"{where} sent no prompt from /detokenize.")
        return out["prompt"]

    def extra_sampling(self, params: SamplingParams) -> dict:
        return {"top_k": params.top_k or -1, "min_p": params.min_p, "repetition_penalty": params.repeat_penalty}

    def tokenize_request(self, model: str, text: str) -> Request:
        return Request("/tokenize", {"model": model, "prompt": text, "add_special_tokens": False})

    def render_requests(self, model: str, messages: list[dict]) -> Request:
        return Request("/tokenize", {"model": model, "messages": messages, "add_generation_prompt": True})

    def parse_tokens(self, obj: dict) -> list[int]:
        return [int(t) for t in obj["tokens"]]

    def detokenize_request(self, model: str, tokens: list[int]) -> Request:
        return Request("/detokenize", {"model": model, "tokens": tokens})
