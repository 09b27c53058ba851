"""lm-eval's model class for ``tandem eval``, registered through lm-eval's own extension point as ``tandem``.

It is ``local-completions`` (token-id prompts to ``/v1/completions``, the server's own tokenizer through
``/tokenize``) plus the two things lm-eval's API path lacks:

- **BOS.** lm-eval's API backends send token ids with no BOS, so a model whose tokenizer puts BOS first
  (Gemma, Llama) is scored on text it never saw in training; its Hugging Face backend adds it. Here each
  context gets the model's BOS by llama.cpp's rule (``llama_vocab_get_add_bos``, served as
  ``/tokenizer_info``'s ``add_bos_token``); the server still scores ids exactly as given.
- **The chat template for loglikelihood tasks.** ``local-completions`` with ``apply_chat_template`` hands a
  message list to ``_encode_pair`` and crashes, and ``local-chat-completions`` can't score. Here the messages
  are rendered to text through the server's template (``/tokenize`` with ``messages``, then
  ``/detokenize``), and the choices are scored as the assistant's reply after it.

This module imports lm_eval: import it only when an evaluation runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests
from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalCompletionsAPI

# progress(kind, done, total): requests answered so far in this call to the model, of the total it was given
Progress = Callable[[str, int, int], None]


@register_model("tandem")
class TandemLM(LocalCompletionsAPI):
    """``local-completions`` against a Tandem (or vLLM-like) server, with the model's BOS and chat template."""

    def __init__(self, base_url: str, add_bos: bool | str = "auto", chat: bool = False,
                 api_key: str | None = None, progress: Progress | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("tokenizer_backend", "remote")
        kwargs.setdefault("tokenized_requests", True)
        super().__init__(base_url=base_url, auth_token=api_key, **kwargs)
        self._key = api_key or ""
        self.root = base_url.removesuffix("/completions").removesuffix("/v1").rstrip("/")
        info = self.tokenizer.tokenizer_info
        bos_id = info.get("bos_token_id")
        if bos_id is None and info.get("bos_token"):
            bos_id = self.tokenizer.bos_token_id
        if add_bos == "auto":
            add_bos = bool(info.get("add_bos_token"))
        self.bos_id: int | None = bos_id
        self.add_bos = bool(add_bos) and bos_id is not None
        self.add_bos_token = self.add_bos  # generate_until encodes its contexts with this flag
        self.chat = chat
        self.truncated: list[dict] = []  # requests cut to fit max_length: what lm-eval only logs
        self._progress = progress
        self._kind = ""
        self._done = 0
        self._total = 0
        self._rendered: dict[str, str] = {}
        # where the time went: seconds and calls of scoring/generation requests, /tokenize, template renders
        self.timing = {"requests_s": 0.0, "requests": 0, "tokenize_s": 0.0, "tokenize": 0,
                       "render_s": 0.0, "render": 0}

    # ----- the key -------------------------------------------------------------------------------------
    @property
    def api_key(self) -> str:  # LocalCompletionsAPI reads OPENAI_API_KEY; ours is per server
        return self._key

    @property
    def tokenizer_name(self) -> str:
        return self.root

    # ----- BOS -----------------------------------------------------------------------------------------
    def _with_bos(self, ids: list[int]) -> list[int]:
        if self.add_bos and (not ids or ids[0] != self.bos_id):
            return [self.bos_id, *ids]
        return ids

    def tok_encode(self, string, left_truncate_len=None, add_special_tokens=False, **kwargs):
        """lm-eval's encoding; with ``add_special_tokens`` (generate_until passes ``add_bos_token``) the
        model's BOS goes first, as the Hugging Face backend's tokenizer would put it."""
        t0 = time.perf_counter()
        enc = super().tok_encode(string, add_special_tokens=add_special_tokens, **kwargs)
        self.timing["tokenize_s"] += time.perf_counter() - t0
        self.timing["tokenize"] += 1 if isinstance(string, str) else len(string)
        if add_special_tokens and self.add_bos:
            enc = self._with_bos(enc) if isinstance(string, str) else [self._with_bos(e) for e in enc]
        if left_truncate_len:
            enc = enc[-left_truncate_len:] if isinstance(string, str) else [e[-left_truncate_len:] for e in enc]
        return enc

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return super().loglikelihood(requests, disable_tqdm=True)  # our own progress lines instead

    def _loglikelihood_tokens(self, requests, **kwargs):
        """Each context gets the BOS (an empty context already has lm-eval's prefix token)."""
        with_bos = [(key, self._with_bos(list(ctx)), cont) for key, ctx, cont in requests]
        self._start("loglikelihood", len(with_bos))
        return super()._loglikelihood_tokens(with_bos, **kwargs)

    def batch_loglikelihood_requests(self, chunks):
        chunks = [list(c) for c in chunks]
        for chunk in chunks:
            for key, ctx, cont in chunk:
                if len(ctx) + len(cont) > self.max_length:
                    self._truncated(key, len(ctx) + len(cont))
        return super().batch_loglikelihood_requests(chunks)

    # ----- generation ----------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False):
        self._start("generate_until", len(requests))
        for req in requests:
            context, gen_kwargs = req.args[0], req.args[1]
            budget = int(gen_kwargs.get("max_gen_toks", self._max_gen_toks))
            n = len(self.tok_encode(context, add_special_tokens=self.add_bos))
            if n + budget > self.max_length:
                self._truncated((context, ""), n + budget)
        return super().generate_until(requests, disable_tqdm=disable_tqdm)

    # ----- the chat template ---------------------------------------------------------------------------
    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation as the model's template writes it, rendered by the server, as text that lm-eval
        then encodes and scores like any context. With ``add_generation_prompt`` off (a task's gen_prefix)
        the last assistant message is continued: the template's reply opening, then its text."""
        key = json.dumps([chat_history, add_generation_prompt], sort_keys=True)
        if key in self._rendered:
            return self._rendered[key]
        t0 = time.perf_counter()
        messages, tail = list(chat_history), ""
        if not add_generation_prompt and messages and messages[-1].get("role") == "assistant":
            tail = messages.pop()["content"]
        ids = self._post("/tokenize", {"messages": messages, "add_special_tokens": False})["tokens"]
        text = self._post("/detokenize", {"tokens": ids})["prompt"] + tail
        self._rendered[key] = text
        self.timing["render_s"] += time.perf_counter() - t0
        self.timing["render"] += 1
        return text

    def _post(self, route: str, body: dict) -> dict:
        resp = requests.post(self.root + route, json=body, headers=self.header, timeout=self.timeout)
        resp.raise_for_status()
        return resp.json()

    # ----- progress ------------------------------------------------------------------------------------
    def _start(self, kind: str, total: int) -> None:
        self._kind, self._done, self._total = kind, 0, total
        if self._progress is not None:
            self._progress(kind, 0, total)

    def model_call(self, messages, *, generate: bool = True, gen_kwargs: dict | None = None, **kwargs):
        t0 = time.perf_counter()
        out = super().model_call(messages, generate=generate, gen_kwargs=gen_kwargs, **kwargs)
        self.timing["requests_s"] += time.perf_counter() - t0
        self.timing["requests"] += 1
        self._done += len(messages) if isinstance(messages, list) else 1
        if self._progress is not None:
            self._progress(self._kind, min(self._done, self._total), self._total)
        return out

    def _truncated(self, key, n_tokens: int) -> None:
        context = key[0] if isinstance(key, tuple) and key else ""
        self.truncated.append({"tokens": n_tokens, "max_length": self.max_length + 1,
                               "context_start": str(context)[:80], "at": time.time()})
