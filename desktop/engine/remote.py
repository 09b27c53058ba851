"""A model on a remote inference server (vLLM, SGLang, llama-server, Ollama, any OpenAI-compatible one),
behind the same ``Model`` interface as a local GGUF.

``connect()`` asks the server what it is (``/v1/models`` plus each engine's own routes, through the registry
in ``remote_registry``), picks the model,
and checks the server's numbers before trusting them: the logprob the server gives a token it *generated*
must equal the logprob it gives the same token when that text is scored. A server that fails (llama-cpp-python
0.3.36's echo logprobs are shifted by one position) gets scoring turned off, with the reason in one line in
``capabilities.scoring_note``; everything else keeps working.

Generation runs on a background thread per request that reads the server's SSE/NDJSON stream; the caller
iterates the stream's events. ``cancel()`` ends the stream at once (within the 50 ms poll) and shuts the
socket down so a stalled server cannot hold it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from desktop.core.errors import (
    ChatTemplateError,
    EngineError,
    ScoringUnavailable,
    ServerProtocolError,
    UnknownModel,
)
from desktop.engine.model import Capabilities
from desktop.engine.remote_engines import Dialect, Request, ServerFacts, ServerModel
from desktop.engine.remote_http import Transport
from desktop.engine.remote_registry import detect, dialect
from desktop.engine.remote_stream import RemoteStream
from desktop.engine.types import (
    FinalEvent,
    SamplingParams,
    ScoredToken,
    ScoreResult,
)

VERIFY_PROMPT = "The capital of France is"
VERIFY_TOKENS = 4
# Generated-vs-scored logprobs of the same token agree to ~1e-3 on a correct server (batched prefill vs
# one-token decode); a shifted or otherwise wrong server is off by whole nats.
VERIFY_ABS_TOL = 0.1
VERIFY_REL_TOL = 0.02


@dataclass(frozen=True)
class RemoteInfo:
    """``ModelInfo`` for a remote model (what the server told us; 0 / "" where it doesn't say)."""

    name: str
    n_ctx: int
    n_vocab: int
    backend: str  # "vLLM @ gpu-box:8000"
    chat_template: str | None
    bos_text: str = ""
    eos_text: str = ""
    engine: str = Dialect.kind  # ServerFacts.engine
    endpoint: str = ""  # the endpoint's name or URL, for the status bar

    @property
    def kind(self) -> Literal["base", "instruct"]:
        return "instruct" if self.chat_template else "base"


class RemoteModel:
    """A ``Model`` served by a remote engine. Build it with ``connect()``; blocking calls, no Qt."""

    def __init__(self, transport: Transport, facts: ServerFacts, model_id: str, *, endpoint: str = "",
                 verify: bool = True):
        self._t = transport
        self.facts = facts
        self.model_id = model_id
        self._dialect: Dialect = dialect(facts.engine)
        self._label = self._dialect.label
        entry = next((m for m in facts.models if m.id == model_id), ServerModel(model_id))
        texts = self._dialect.model_texts(transport, facts, model_id)
        self._info = RemoteInfo(name=model_id, n_ctx=entry.n_ctx, n_vocab=entry.n_vocab,
                                backend=f"{self._label} @ {transport.host}", chat_template=texts.chat_template,
                                bos_text=texts.bos_text, eos_text=texts.eos_text,
                                engine=facts.engine, endpoint=endpoint or transport.base_url)
        self._caps = self._base_capabilities()
        if verify and self._caps.scoring:
            ok, note = self.verify_scoring()
            if not ok:
                self._caps = replace(self._caps, scoring=False, scoring_note=note)

    # -- what the server can do ----------------------------------------------------------------------------
    def _base_capabilities(self) -> Capabilities:
        d, label = self._dialect, self._label
        scoring = d.can_score
        scoring_note = "" if scoring else (
            f"cross-scoring needs a server that scores given text (vLLM, SGLang); this {label} can't")
        template_note = "" if d.can_render else (
            f"this {label} applies the chat template itself and can't show the exact prompt")
        return Capabilities(top_logprobs=d.max_top, scoring=scoring, scoring_note=scoring_note,
                            server_template=d.can_render, template_note=template_note, tokenizer=d.can_tokenize,
                            queues=True, score_ranks=False, remote=True, token_ids=False,
                            token_ids_note=f"prompts as token ids are served by local models only, not by this {label}")

    def verify_scoring(self) -> tuple[bool, str]:
        """Generate a few greedy tokens, score the same text, and compare the two logprobs of each token."""
        label = self._label
        params = SamplingParams(temperature=0.0, top_k=1, max_tokens=VERIFY_TOKENS, logprobs=1, seed=0,
                                repeat_penalty=1.0)
        try:
            events = []
            for ev in self.complete(VERIFY_PROMPT, params):
                if isinstance(ev, FinalEvent):
                    if ev.error is not None:
                        raise ev.error
                else:
                    events.append(ev)
            generated = "".join(e.text for e in events)
            if not generated.strip():
                return False, f"this {label} generated nothing to check its logprobs against"
            scored = self._score_text(VERIFY_PROMPT, generated, 0)
        except (EngineError, ValueError) as exc:
            return False, f"checking this {label}'s logprobs failed ({exc})"
        pairs = [(g, s) for g, s in zip(events, scored.tokens) if g.text == s.text]
        if not pairs:
            return False, (f"this {label} tokenized its own reply differently when scoring it, "
                           "so its numbers can't be checked")
        for g, s in pairs:
            if not math.isclose(g.logprob, s.logprob, abs_tol=VERIFY_ABS_TOL, rel_tol=VERIFY_REL_TOL):
                return False, (f"this {label} gave {g.text!r} logprob {g.logprob:.2f} when it "
                               f"generated it but {s.logprob:.2f} when scoring the same text, so its scores are not trustworthy")
        return True, ""

    # -- Model protocol ------------------------------------------------------------------------------------
    @property
    def info(self) -> RemoteInfo:
        return self._info

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def vocab_id(self) -> str:
        return ""  # a server does not publish its vocabulary; token shift needs local models

    def complete(self, prompt: str, params: SamplingParams | None = None, *,
                 threads: int | None = None) -> RemoteStream:
        params = (params or SamplingParams()).validate()
        return RemoteStream(self, self._dialect.complete_request(self.model_id, prompt, params))

    def chat(self, messages: Sequence[Mapping[str, str]], params: SamplingParams | None = None, *,
             system: str | None = None, threads: int | None = None) -> RemoteStream:
        params = (params or SamplingParams()).validate()
        msgs = _messages(messages, system)
        if self._dialect.chat_through_template:
            return self.complete(self.render_chat(messages, system=system), params)
        return RemoteStream(self, self._dialect.chat_request(self.model_id, msgs, params))

    def render_chat(self, messages: Sequence[Mapping[str, str]], system: str | None = None) -> str:
        if not self._caps.server_template:
            raise ChatTemplateError(f"Can't show the prompt: {self._caps.template_note}.")
        return self._dialect.render_chat(self._post, self._t.where, self.model_id, _messages(messages, system))

    def _post(self, req: Request):
        return self._t.post_json(req.path, req.body, model=self.model_id)

    def complete_tokens(self, tokens: Sequence[int], params: SamplingParams | None = None, *,
                        threads: int | None = None) -> RemoteStream:
        raise EngineError(f"Can't generate from token ids: {self._caps.token_ids_note}.")

    def score_tokens(self, tokens: Sequence[int], *, top_k: int = 0, next_top_k: int = 0):
        raise EngineError(f"Can't score token ids: {self._caps.token_ids_note}.")

    def detokenize(self, tokens: Sequence[int]) -> str:
        raise EngineError(f"Can't detokenize: {self._caps.token_ids_note}.")

    def tokenize(self, text: str, special: bool = False, *, add_bos: bool | None = None) -> list[int]:
        if not self._caps.tokenizer:
            raise EngineError(f"Can't count tokens: this {self._label} has no tokenizer route.")
        req = self._dialect.tokenize_request(self.model_id, text)
        try:
            return self._dialect.parse_tokens(self._post(req))
        except (KeyError, TypeError, ValueError):
            raise ServerProtocolError(f"{self._t.where} sent a tokenize reply without a token list.") from None

    def count_tokens(self, text: str, special: bool = False) -> int:
        return len(self.tokenize(text, special))

    def score(self, prompt: str, continuation: str, *, as_chat: bool = False,
              system: str | None = None, top_k: int = 0) -> ScoreResult:
        if not self._caps.scoring:
            note = self._caps.scoring_note
            raise ScoringUnavailable(note, f"Can't score on {self._info.backend}: {note}.")
        if as_chat:
            prompt = self.render_chat([{"role": "user", "content": prompt}], system=system)
        return self._score_text(prompt, continuation, top_k)

    def _score_text(self, prompt: str, continuation: str, top_k: int) -> ScoreResult:
        if not continuation:
            return ScoreResult(())
        req = self._dialect.score_request(self.model_id, prompt + continuation, min(top_k, self._dialect.max_top))
        reply = self._post(req)
        if not isinstance(reply, Mapping):
            raise ServerProtocolError(f"{self._t.where} sent a scoring reply that is not a JSON object.")
        rows = self._dialect.parse_score(reply, len(prompt), len(continuation))
        if not rows:
            raise ServerProtocolError(f"{self._t.where} sent no logprobs for the given text.")
        tokens = []
        for text, tid, lp, top in rows:
            rank = next((i + 1 for i, t in enumerate(top) if t.text == text), None) if top_k else None
            tokens.append(ScoredToken(text, tid, lp, rank, top[:top_k] if top_k else ()))
        return ScoreResult(tuple(tokens))

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _messages(messages: Sequence[Mapping[str, str]], system: str | None) -> list[dict]:
    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if system:
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def pick_model(facts: ServerFacts, model: str | None, where: str) -> str:
    ids = [m.id for m in facts.models]
    if model:
        if ids and model not in ids:
            raise UnknownModel(f"{where} does not serve a model {model!r}; it serves: {', '.join(ids)}.")
        return model
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise UnknownModel(f"{where} serves no models right now.")
    raise UnknownModel(f"{where} serves several models; pick one with --model: {', '.join(ids)}.")


def connect(url: str, model: str | None = None, *, api_key: str | None = None, endpoint: str = "",
            offline: bool | None = None, verify: bool = True, read_timeout: float | None = None) -> RemoteModel:
    """Open ``model`` (or the server's only model) at ``url``; offline mode refuses non-loopback first."""
    kwargs = {"read_timeout": read_timeout} if read_timeout else {}
    t = Transport(url, api_key, offline=offline, **kwargs)
    try:
        facts = detect(t)
        return RemoteModel(t, facts, pick_model(facts, model, t.where), endpoint=endpoint, verify=verify)
    except BaseException:
        t.close()
        raise


def open_endpoint(name_or_url: str, model: str | None = None, *, store=None) -> RemoteModel:
    """``model`` (or the server's only model) on a saved endpoint or a URL: what a picker or ``--endpoint``
    opens. The key comes from the keyring (or the endpoint's env var); offline mode is read now."""
    from desktop.core.endpoints import EndpointStore

    url, key, label = (store or EndpointStore()).resolve(name_or_url)
    return connect(url, model or None, api_key=key, endpoint=label)


def describe(url: str, *, api_key: str | None = None, offline: bool | None = None) -> dict:
    """What ``tandem endpoints test`` prints: the engine, its models and what each can do (checked)."""
    t = Transport(url, api_key, offline=offline)
    try:
        facts = detect(t)
        out = {"url": t.base_url, "engine": facts.engine, "engine_label": dialect(facts.engine).label,
               "version": facts.version, "models": []}
        for m in facts.models:
            rm = RemoteModel(t, facts, m.id, verify=True)
            c = rm.capabilities
            out["models"].append({
                "id": m.id, "n_ctx": rm.info.n_ctx, "kind": rm.info.kind,
                "capabilities": {"top_logprobs": c.top_logprobs, "scoring": c.scoring, "scoring_note": c.scoring_note,
                                 "server_template": c.server_template, "template_note": c.template_note,
                                 "tokenizer": c.tokenizer}})
        return out
    finally:
        t.close()
