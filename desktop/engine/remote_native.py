"""The engines with their own native APIs: SGLang's ``/generate``, llama.cpp's ``llama-server`` and Ollama.

One ``Dialect`` class each (see ``remote_engines`` for what a class carries), from the engine's own
documentation or source, cited per class; ``remote_registry`` lists them with the OpenAI-shaped ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from desktop.core.errors import EngineError, ServerProtocolError
from desktop.engine.remote_engines import (
    Dialect,
    ModelTexts,
    ParseState,
    Post,
    Request,
    ServerFacts,
    ServerModel,
    _no_grammar,
    _offsets,
    _reconcile,
    _top_from_pairs,
)
from desktop.engine.remote_http import finite
from desktop.engine.types import SamplingParams, TokenEvent, TopToken

if TYPE_CHECKING:
    from desktop.engine.remote_http import Transport


class SGLang(Dialect):
    """SGLang's native ``/generate`` (python/sglang/srt/managers/io_struct.py, GenerateReqInput; the reply's
    ``meta_info`` carries ``[logprob, token_id, text]`` triples). Streamed text is cumulative."""

    kind = "sglang"
    label = "SGLang"
    max_top = 20

    @classmethod
    def detect(cls, t: Transport, listing: Mapping | None, models: tuple[ServerModel, ...]) -> ServerFacts | None:
        info = t.probe("GET", "/get_model_info")
        if not (isinstance(info, Mapping) and "model_path" in info):
            return None
        ver = t.probe("GET", "/version") or {}
        return ServerFacts(cls.kind, str(ver.get("version", "")), models or (ServerModel(str(info["model_path"])),))

    def complete_request(self, model: str, prompt: str, params: SamplingParams) -> Request:
        _no_grammar(params, self.label)
        sp = {"max_new_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p,
              "top_k": params.top_k or -1, "min_p": params.min_p, "repetition_penalty": params.repeat_penalty,
              "presence_penalty": params.presence_penalty, "frequency_penalty": params.frequency_penalty}
        if params.stop:
            sp["stop"] = list(params.stop)
        if params.seed is not None:
            sp["sampling_seed"] = params.seed
        return Request("/generate", {"text": prompt, "sampling_params": sp, "stream": True, "return_logprob": True,
                                     "top_logprobs_num": params.logprobs, "return_text_in_logprobs": True})

    def parse_chunk(self, obj: dict, state: ParseState) -> list[TokenEvent]:
        if "choices" in obj:  # the OpenAI chat route
            return super().parse_chunk(obj, state)
        meta = obj.get("meta_info")
        if not isinstance(meta, Mapping) or "text" not in obj:
            raise ServerProtocolError("the SGLang stream chunk has no text or meta_info.")
        text = str(obj["text"])
        cumulative = text.startswith(state.seen_text)
        new_text = text[len(state.seen_text):] if cumulative else text
        triples = meta.get("output_token_logprobs") or []
        tops = meta.get("output_top_logprobs") or []
        if cumulative and len(triples) >= state.seen_tokens:
            triples, tops = triples[state.seen_tokens:], tops[state.seen_tokens:]
        state.seen_text = text if cumulative else state.seen_text + text
        state.seen_tokens += len(triples)
        fin = meta.get("finish_reason")
        if isinstance(fin, Mapping):
            state.finish = "length" if fin.get("type") == "length" else "stop"
        state.prompt_tokens = int(meta.get("prompt_tokens") or 0)
        state.completion_tokens = int(meta.get("completion_tokens") or 0)
        events = []
        for i, t in enumerate(triples):
            top = tops[i] if i < len(tops) and tops[i] else []
            events.append(TokenEvent(str(t[2] or ""), int(t[1]), finite(t[0], "logprob"),
                                     tuple(sorted((TopToken(str(a[2] or ""), int(a[1]), finite(a[0], "top logprob"))
                                                   for a in top), key=lambda x: -x.logprob))))
        if not events and new_text:
            raise ServerProtocolError("SGLang sent text without the logprobs Tandem asked for.")
        return _reconcile(events, new_text)

    def score_request(self, model: str, text: str, top_k: int) -> Request:
        return Request("/generate", {"text": text, "sampling_params": {"max_new_tokens": 0}, "return_logprob": True,
                                     "logprob_start_len": 0, "top_logprobs_num": top_k,
                                     "return_text_in_logprobs": True})

    def parse_score(self, obj: dict, prompt_chars: int, cont_chars: int) -> list[tuple[str, int, float, tuple]]:
        try:
            triples = obj["meta_info"]["input_token_logprobs"]
            tops = obj["meta_info"].get("input_top_logprobs") or [None] * len(triples)
        except (KeyError, TypeError):
            raise ServerProtocolError("SGLang's reply has no input_token_logprobs.") from None
        texts = [str(t[2] or "") for t in triples]
        offsets = _offsets(texts)
        end = offsets[-1] + len(texts[-1]) if texts else 0
        out = []
        for (value, tid, _), tok, off, top in zip(triples, texts, offsets, tops):
            if end - cont_chars <= off < end and value is not None:
                top_t = tuple(sorted((TopToken(str(a[2] or ""), int(a[1]), finite(a[0], "top logprob"))
                                      for a in (top or [])), key=lambda x: -x.logprob))
                out.append((tok, int(tid), finite(value, "prompt logprob"), top_t))
        return out


class LlamaServer(Dialect):
    """llama.cpp's ``llama-server`` (tools/server/README.md: /completion, /tokenize, /apply-template, /props)."""

    kind = "llama-server"
    label = "llama-server"
    can_render = True
    can_tokenize = True
    can_score = False  # no route returns the logprobs of given text
    chat_through_template = True  # its own template, then /completion: token ids and top-k as raw
    max_top = 20

    @classmethod
    def detect(cls, t: Transport, listing: Mapping | None, models: tuple[ServerModel, ...]) -> ServerFacts | None:
        props = t.probe("GET", "/props")
        if not (isinstance(props, Mapping) and "default_generation_settings" in props):
            return None
        n_ctx = int((props.get("default_generation_settings") or {}).get("n_ctx") or 0)
        return ServerFacts(cls.kind, str(props.get("build_info", "")),
                           tuple(replace(m, n_ctx=n_ctx or m.n_ctx) for m in models), props)

    def model_texts(self, t: Transport, facts: ServerFacts, model_id: str) -> ModelTexts:
        props = facts.props or {}
        return ModelTexts(props.get("chat_template") or None, str(props.get("bos_token") or ""),
                          str(props.get("eos_token") or ""))

    def render_chat(self, post: Post, where: str, model_id: str, messages: list[dict]) -> str:
        reply = post(self.render_requests(model_id, messages))
        if not isinstance(reply, Mapping) or not isinstance(reply.get("prompt"), str):
            raise ServerProtocolError(f"{where} sent no prompt from /apply-template.")
        return reply["prompt"]

    def complete_request(self, model: str, prompt: str, params: SamplingParams) -> Request:
        body = {"prompt": prompt, "n_predict": params.max_tokens, "stream": True, "n_probs": max(1, params.logprobs),
                "temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p,
                "min_p": params.min_p, "repeat_penalty": params.repeat_penalty,
                "repeat_last_n": params.repeat_last_n, "presence_penalty": params.presence_penalty,
                "frequency_penalty": params.frequency_penalty, "stop": list(params.stop),
                "seed": -1 if params.seed is None else params.seed, "return_tokens": True,
                "cache_prompt": True}
        if params.grammar:
            body["grammar"] = params.grammar
        if params.json_schema:
            try:
                body["json_schema"] = json.loads(params.json_schema)
            except ValueError:
                raise EngineError("The JSON schema is not valid JSON.") from None
        return Request("/completion", body)

    def chat_request(self, model: str, messages: list[dict], params: SamplingParams) -> Request:
        raise NotImplementedError  # chat_through_template: /apply-template then /completion

    def parse_chunk(self, obj: dict, state: ParseState) -> list[TokenEvent]:
        if "content" not in obj:
            raise ServerProtocolError("llama-server sent a stream chunk without content.")
        if obj.get("stop"):
            state.finish = "length" if obj.get("stop_type") == "limit" else "stop"
            timings = obj.get("timings") or {}
            state.prompt_tokens = int(timings.get("prompt_n") or obj.get("tokens_evaluated") or 0)
            state.completion_tokens = int(timings.get("predicted_n") or obj.get("tokens_predicted") or 0)
            state.prefill_s = float(timings.get("prompt_ms") or 0) / 1000
            state.decode_s = float(timings.get("predicted_ms") or 0) / 1000
        probs = obj.get("completion_probabilities")
        text = str(obj.get("content") or "")
        if probs is None:
            if text:
                raise ServerProtocolError("llama-server sent text without the logprobs Tandem asked for.")
            return []
        events = [TokenEvent(str(p.get("token", "")), int(p.get("id", -1)), finite(p.get("logprob"), "logprob"),
                             _top_from_pairs(p.get("top_logprobs") or ())) for p in probs]
        return _reconcile(events, text)

    def tokenize_request(self, model: str, text: str) -> Request:
        return Request("/tokenize", {"content": text, "add_special": False, "parse_special": False})

    def parse_tokens(self, obj: dict) -> list[int]:
        return [int(t["id"]) if isinstance(t, Mapping) else int(t) for t in obj["tokens"]]

    def render_requests(self, model: str, messages: list[dict]) -> Request:
        return Request("/apply-template", {"messages": messages})


class Ollama(Dialect):
    """Ollama's native API (docs/api.md): ``/api/generate`` with ``raw: true`` (no template), ``logprobs`` and
    ``top_logprobs``; NDJSON stream; ``/api/chat`` for messages; ``/api/tags`` lists models."""

    kind = "ollama"
    label = "Ollama"
    can_score = False  # Ollama returns logprobs of generated tokens only
    max_top = 20

    @classmethod
    def detect(cls, t: Transport, listing: Mapping | None, models: tuple[ServerModel, ...]) -> ServerFacts | None:
        tags = t.probe("GET", "/api/tags")
        if not (isinstance(tags, Mapping) and isinstance(tags.get("models"), list)):
            return None
        ver = t.probe("GET", "/api/version") or {}
        names = [str(m.get("name") or m.get("model")) for m in tags["models"] if isinstance(m, Mapping)]
        return ServerFacts(cls.kind, str(ver.get("version", "")), tuple(ServerModel(n) for n in names))

    def _options(self, params: SamplingParams) -> dict:
        opts = {"num_predict": params.max_tokens, "temperature": params.temperature, "top_k": params.top_k,
                "top_p": params.top_p, "min_p": params.min_p, "repeat_penalty": params.repeat_penalty,
                "repeat_last_n": params.repeat_last_n, "presence_penalty": params.presence_penalty,
                "frequency_penalty": params.frequency_penalty, "seed": params.seed}
        if params.stop:
            opts["stop"] = list(params.stop)
        return {k: v for k, v in opts.items() if v is not None}

    def _common(self, params: SamplingParams) -> dict:
        if params.grammar:
            raise EngineError("Ollama takes JSON schemas but not GBNF grammars.")
        body = {"stream": True, "options": self._options(params), "logprobs": True,
                "top_logprobs": min(params.logprobs, self.max_top)}
        if params.json_schema:
            try:
                body["format"] = json.loads(params.json_schema)
            except ValueError:
                raise EngineError("The JSON schema is not valid JSON.") from None
        return body

    def complete_request(self, model: str, prompt: str, params: SamplingParams) -> Request:
        return Request("/api/generate", {"model": model, "prompt": prompt, "raw": True, **self._common(params)},
                       ndjson=True)

    def chat_request(self, model: str, messages: list[dict], params: SamplingParams) -> Request:
        return Request("/api/chat", {"model": model, "messages": messages, **self._common(params)}, ndjson=True)

    def parse_chunk(self, obj: dict, state: ParseState) -> list[TokenEvent]:
        if "response" in obj:
            text = str(obj.get("response") or "")
        elif isinstance(obj.get("message"), Mapping):
            text = str(obj["message"].get("content") or "")
        else:
            raise ServerProtocolError("Ollama sent a stream line without response or message.")
        if obj.get("done"):
            state.finish = "length" if obj.get("done_reason") == "length" else "stop"
            state.prompt_tokens = int(obj.get("prompt_eval_count") or 0)
            state.completion_tokens = int(obj.get("eval_count") or 0)
            state.prefill_s = float(obj.get("prompt_eval_duration") or 0) / 1e9
            state.decode_s = float(obj.get("eval_duration") or 0) / 1e9
        logprobs = obj.get("logprobs")
        if logprobs is None:
            if text:
                raise ServerProtocolError("Ollama sent text without logprobs (an Ollama release older than its logprobs support?).")
            return []
        events = [TokenEvent(str(p.get("token", "")), -1, finite(p.get("logprob"), "logprob"),
                             _top_from_pairs(p.get("top_logprobs") or ())) for p in logprobs]
        return _reconcile(events, text)
