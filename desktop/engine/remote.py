"""A model on a remote inference server (vLLM, SGLang, llama-server, Ollama, any OpenAI-compatible one),
behind the same ``Model`` interface as a local GGUF.

``connect()`` asks the server what it is (``/v1/models`` plus each engine's own routes), picks the model,
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
    RemoteError,
    ScoringUnavailable,
    ServerProtocolError,
    UnknownModel,
)
from desktop.engine.model import Capabilities
from desktop.engine.remote_engines import LABELS, Dialect
from desktop.engine.remote_http import Transport
from desktop.engine.remote_native import DIALECTS
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
    engine: str = "openai"
    endpoint: str = ""  # the endpoint's name or URL, for the status bar

    @property
    def kind(self) -> Literal["base", "instruct"]:
        return "instruct" if self.chat_template else "base"


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


def detect(t: Transport) -> ServerFacts:
    """Which engine answers at ``t`` and which models it serves. Raises RemoteError (down, 401/403...)."""
    listing = t.get_json("/v1/models", quiet_404=True)  # every engine has it; 401/403/down raise here
    models = []
    if isinstance(listing, Mapping) and isinstance(listing.get("data"), list):
        for m in listing["data"]:
            if isinstance(m, Mapping) and m.get("id"):
                meta = m.get("meta") if isinstance(m.get("meta"), Mapping) else {}
                models.append(ServerModel(str(m["id"]), int(m.get("max_model_len") or meta.get("n_ctx_train") or 0),
                                          int(meta.get("n_vocab") or 0)))
    elif listing is not None:
        raise ServerProtocolError(f"{t.where} answered /v1/models with something that is not a model list.")
    props = t.probe("GET", "/props")
    if isinstance(props, Mapping) and "default_generation_settings" in props:
        n_ctx = int((props.get("default_generation_settings") or {}).get("n_ctx") or 0)
        models = [replace(m, n_ctx=n_ctx or m.n_ctx) for m in models]
        return ServerFacts("llama-server", str(props.get("build_info", "")), tuple(models), props)
    info = t.probe("GET", "/get_model_info")
    if isinstance(info, Mapping) and "model_path" in info:
        ver = t.probe("GET", "/version") or {}
        if not models:
            models = [ServerModel(str(info["model_path"]))]
        return ServerFacts("sglang", str(ver.get("version", "")), tuple(models))
    tags = t.probe("GET", "/api/tags")
    if isinstance(tags, Mapping) and isinstance(tags.get("models"), list):
        ver = t.probe("GET", "/api/version") or {}
        names = [str(m.get("name") or m.get("model")) for m in tags["models"] if isinstance(m, Mapping)]
        return ServerFacts("ollama", str(ver.get("version", "")), tuple(ServerModel(n) for n in names))
    if listing is None:
        raise RemoteError(f"{t.where} is not an inference server Tandem knows (no /v1/models, /props or /api/tags).")
    ver = t.probe("GET", "/version")
    if isinstance(ver, Mapping) and "version" in ver:
        return ServerFacts("vllm", str(ver["version"]), tuple(models))
    if listing.get("data") and all(isinstance(m, Mapping) and m.get("owned_by") == "me" for m in listing["data"]):
        return ServerFacts("llama-cpp-python", "", tuple(models))  # llama_cpp/server/app.py get_models
    return ServerFacts("openai", "", tuple(models))


class RemoteModel:
    """A ``Model`` served by a remote engine. Build it with ``connect()``; blocking calls, no Qt."""

    def __init__(self, transport: Transport, facts: ServerFacts, model_id: str, *, endpoint: str = "",
                 verify: bool = True):
        self._t = transport
        self.facts = facts
        self.model_id = model_id
        self._dialect: Dialect = DIALECTS[facts.engine]()
        entry = next((m for m in facts.models if m.id == model_id), ServerModel(model_id))
        props = facts.props or {}
        template = props.get("chat_template") or None
        if facts.engine == "vllm":
            template = self._vllm_template_probe()
        self._info = RemoteInfo(name=model_id, n_ctx=entry.n_ctx, n_vocab=entry.n_vocab,
                                backend=f"{LABELS[facts.engine]} @ {transport.host}", chat_template=template,
                                bos_text=str(props.get("bos_token") or ""), eos_text=str(props.get("eos_token") or ""),
                                engine=facts.engine, endpoint=endpoint or transport.base_url)
        self._caps = self._base_capabilities()
        if verify and self._caps.scoring:
            ok, note = self.verify_scoring()
            if not ok:
                self._caps = replace(self._caps, scoring=False, scoring_note=note)

    # -- what the server can do ----------------------------------------------------------------------------
    def _vllm_template_probe(self) -> str | None:
        """vLLM renders chat only when the model has a template; a base model's /tokenize with messages fails."""
        ok = self._t.probe("POST", "/tokenize", {"model": self.model_id, "messages": [{"role": "user", "content": "hi"}],
                                                 "add_generation_prompt": True})
        return "(applied by the vLLM server)" if isinstance(ok, Mapping) and "tokens" in ok else None

    def _base_capabilities(self) -> Capabilities:
        d, label = self._dialect, LABELS[self.facts.engine]
        scoring = d.score_request(self.model_id, "x", 0) is not None
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
        label = LABELS[self.facts.engine]
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
        if self.facts.engine == "llama-server":  # its own template, then /completion: token ids and top-k as raw
            return self.complete(self.render_chat(messages, system=system), params)
        return RemoteStream(self, self._dialect.chat_request(self.model_id, msgs, params))

    def render_chat(self, messages: Sequence[Mapping[str, str]], system: str | None = None) -> str:
        if not self._caps.server_template:
            raise ChatTemplateError(f"Can't show the prompt: {self._caps.template_note}.")
        msgs = _messages(messages, system)
        req = self._dialect.render_requests(self.model_id, msgs)
        reply = self._t.post_json(req.path, req.body, model=self.model_id)
        if self.facts.engine == "llama-server":
            if not isinstance(reply, Mapping) or not isinstance(reply.get("prompt"), str):
                raise ServerProtocolError(f"{self._t.where} sent no prompt from /apply-template.")
            return reply["prompt"]
        tokens = self._dialect.parse_tokens(reply)
        req = self._dialect.detokenize_request(self.model_id, tokens)
        out = self._t.post_json(req.path, req.body, model=self.model_id)
        if not isinstance(out, Mapping) or not isinstance(out.get("prompt"), str):
            raise ServerProtocolError(f"{self._t.where} sent no prompt from /detokenize.")
        return out["prompt"]

    def complete_tokens(self, tokens: Sequence[int], params: SamplingParams | None = None, *,
                        threads: int | None = None) -> RemoteStream:
        raise EngineError(f"Can't generate from token ids: {self._caps.token_ids_note}.")

    def score_tokens(self, tokens: Sequence[int], *, top_k: int = 0, next_top_k: int = 0):
        raise EngineError(f"Can't score token ids: {self._caps.token_ids_note}.")

    def detokenize(self, tokens: Sequence[int]) -> str:
        raise EngineError(f"Can't detokenize: {self._caps.token_ids_note}.")

    def tokenize(self, text: str, special: bool = False, *, add_bos: bool | None = None) -> list[int]:
        if not self._caps.tokenizer:
            raise EngineError(f"Can't count tokens: this {LABELS[self.facts.engine]} has no tokenizer route.")
        req = self._dialect.tokenize_request(self.model_id, text)
        try:
            return self._dialect.parse_tokens(self._t.post_json(req.path, req.body, model=self.model_id))
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
        reply = self._t.post_json(req.path, req.body, model=self.model_id)
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
        out = {"url": t.base_url, "engine": facts.engine, "engine_label": LABELS[facts.engine],
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
