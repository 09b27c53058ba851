"""A reference with no Tandem code: llama-cpp-python's high-level ``Llama`` with ``logits_all=True``.

The proof that ``tandem serve`` scores right must not lean on Tandem itself, so this module loads the same GGUF
through llama-cpp-python directly (tests may import ``llama_cpp``; ``desktop`` may not, outside the engine),
evaluates token ids and reads every position's logits. A choice's loglikelihood is the sum over its tokens of
log-softmax(logits before the token)[token], and it is greedy when every token is its position's argmax:
what lm-eval computes from a server's echo logprobs, here from the logits themselves.

``encode_pair`` rebuilds the token ids lm-eval sends (``TemplateLM._encode_pair`` for causal models, with the
remote tokenizer's ``/tokenize`` that adds no BOS), from this model's own tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import llama_cpp.llama_cpp as llama_low
import numpy as np

from bench.serve_refs import amx_usable


@dataclass(frozen=True)
class Scored:
    loglikelihood: float
    is_greedy: bool


@contextmanager
def repack_off():
    """Load with llama.cpp's extra buffer types (AMX weight repacking) off where the engine turns them off
    (``bench.serve_refs.amx_usable``): on this project's test VMs ggml's AMX kernels die with SIGILL. ``Llama``
    has no argument for it, so its default model parameters are patched while it loads."""
    if amx_usable():
        yield
        return
    original = llama_low.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    llama_low.llama_model_default_params = params
    try:
        yield
    finally:
        llama_low.llama_model_default_params = original


class LlamaReference:
    """One GGUF loaded by llama-cpp-python with every position's logits kept (CPU, one thread)."""

    def __init__(self, path: Path, *, n_ctx: int = 256, threads: int = 1, flash_attn: bool = True) -> None:
        """``flash_attn``: Tandem's engine leaves it to llama.cpp (``auto``: on for the CPU), and on/off moves
        SmolLM2's logprobs by up to 0.1 nats (see tests/remote/conftest.py), so the reference for Tandem has
        it on; llama_cpp.server runs with it off."""
        # The logits buffer is n_ctx × n_vocab float32 (256 × 262,144 for Gemma: 256 MB): keep n_ctx small.
        with repack_off():
            self.llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_threads=threads,
                                       n_threads_batch=threads, n_ctx=n_ctx, n_gpu_layers=0,
                                       flash_attn=flash_attn, verbose=False)
        self.n_ctx = self.llm.n_ctx()
        self._evaluated: list[int] = []

    def close(self) -> None:
        self.llm.close()

    @property
    def add_bos(self) -> bool:
        """Whether the model's tokenizer puts BOS first (llama.cpp's rule, with its default)."""
        return bool(self.llm._model.add_bos_token())

    @property
    def bos_id(self) -> int:
        return int(self.llm.token_bos())

    def tokenize(self, text: str) -> list[int]:
        """What an OpenAI-style ``/tokenize`` with ``add_special_tokens: false`` gives: no BOS, special-token
        text parsed into the special token."""
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _eval(self, ids: Sequence[int], *, reuse: bool = False) -> np.ndarray:
        """Logits for every position of ``ids`` (row j: the distribution after token j).

        Scoring evaluates every sequence whole (``reuse=False``): evaluating only the tokens after a prefix kept
        from the last call moved Gemma's loglikelihood of " the Pacific Ocean" by 0.016 nats (kernels differ with
        the batch's size), more than the proof's tolerance, and a reference should take one path. Generation
        (``reuse=True``) extends the last sequence a token at a time, as a server decodes."""
        ids = list(ids)
        if len(ids) > self.n_ctx:
            raise ValueError(f"{len(ids)} tokens do not fit the reference's context of {self.n_ctx}")
        keep = 0
        if reuse and self._evaluated == ids[: len(self._evaluated)]:
            keep = min(len(self._evaluated), len(ids) - 1)  # evaluate at least one token
        self.llm.n_tokens = keep  # Llama.eval drops the KV cache past n_tokens before it decodes
        self.llm.eval(ids[keep:])
        self._evaluated = ids
        return self.llm.scores[: len(ids)]

    def score(self, ids: Sequence[int], start: int) -> Scored:
        """Loglikelihood of ``ids[start:]`` given ``ids[:start]`` (``start`` >= 1), and whether it is greedy."""
        if not 1 <= start < len(ids):
            raise ValueError(f"start {start} must leave a context and a continuation in {len(ids)} tokens")
        logits = self._eval(ids)
        total, greedy = 0.0, True
        for j in range(start, len(ids)):
            row = logits[j - 1].astype(np.float64)
            top = float(row.max())
            total += float(row[ids[j]]) - (top + math.log(float(np.exp(row - top).sum())))
            greedy = greedy and int(row.argmax()) == ids[j]
        return Scored(total, greedy)

    def position_logprobs(self, ids: Sequence[int]) -> list[float]:
        """log P(token j | tokens before j) for j >= 1 (what echo's ``token_logprobs[1:]`` must hold)."""
        logits = self._eval(ids).astype(np.float64)
        rows = logits[:-1]
        top = rows.max(axis=1, keepdims=True)
        norm = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
        return [float(rows[j, ids[j + 1]] - norm[j]) for j in range(len(ids) - 1)]

    def greedy(self, ids: Sequence[int], max_tokens: int, stop: Sequence[str] = ()) -> str:
        """Greedy continuation text of ``ids`` (argmax each step), cut at the first stop string or an end
        token: what a server at temperature 0 must return."""
        ids = list(ids)
        out: list[int] = []
        text = ""
        for _ in range(max_tokens):
            nxt = int(self._eval(ids + out, reuse=True)[-1].argmax())
            if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, nxt):
                break
            out.append(nxt)
            text = self.llm.detokenize(out, prev_tokens=ids).decode("utf-8", "replace")
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                return text[:cut]
        return text


def encode_pair(tokenize: Callable[[str], list[int]], context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval 0.4.13's ``TemplateLM._encode_pair`` for a causal model: the context's trailing spaces move to
    the continuation, the whole text is tokenized once and the continuation is what follows the context's
    tokens."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenize(context + continuation)
    context_ids = tokenize(context)
    return context_ids, whole[len(context_ids):]


def choice_accuracy(lls: Sequence[Sequence[float]], choices: Sequence[Sequence[str]], gold: Sequence[int]) -> tuple[float, float]:
    """acc and acc_norm as lm-eval's multiple_choice computes them (acc_norm divides by the choice's length
    in characters)."""
    acc = norm = 0
    for row, texts, right in zip(lls, choices, gold):
        acc += int(np.argmax(row)) == right
        norm += int(np.argmax(np.array(row) / np.array([float(len(t)) for t in texts]))) == right
    return acc / len(gold), norm / len(gold)
