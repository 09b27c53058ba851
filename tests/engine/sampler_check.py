"""Shared by the sampler tests: one model, generations through the short candidate array and through
llama.cpp's full chain (``llama_sampler_sample`` over the whole vocabulary), token by token."""

from __future__ import annotations

import ctypes
from pathlib import Path

from desktop.engine import worker
from desktop.engine.messages import Token, Tokens
from desktop.engine.types import LoadOptions, SamplingParams

# Default chain with several seeds, greedy (with and without penalties), a hot wide chain with every penalty,
# top-k 1, no penalties, no top-p/min-p, and top-5 logprobs (their ids must match too).
SETTINGS = (
    *(SamplingParams(max_tokens=40, seed=s) for s in (1, 2, 3, 4)),
    SamplingParams(max_tokens=40, seed=5, logprobs=5),
    SamplingParams(max_tokens=40, temperature=0),
    SamplingParams(max_tokens=40, temperature=0, repeat_penalty=1.5, repeat_last_n=8),
    SamplingParams(max_tokens=40, seed=6, temperature=1.5, top_k=100, top_p=0.99, min_p=0.0, repeat_penalty=1.3,
                   frequency_penalty=0.5, presence_penalty=0.2),
    SamplingParams(max_tokens=40, seed=7, top_k=1),
    SamplingParams(max_tokens=40, seed=8, repeat_penalty=1.0),
    SamplingParams(max_tokens=40, seed=9, top_p=1.0, min_p=0.0, repeat_last_n=0),
)


def tokens_of(message) -> tuple[Token, ...]:
    """The tokens a worker message carries (the worker puts tokens of the same 30 ms in one message)."""
    if isinstance(message, Tokens):
        return message.tokens
    return (message,) if isinstance(message, Token) else ()


def generations(path: Path, prompt: str, settings=SETTINGS) -> list[tuple[list, list]]:
    """For each setting: (tokens with their top ids) through the short array, then through the full chain."""
    worker._import_llama()
    runner = worker.Runner(str(path), LoadOptions(threads=1, n_ctx=512), (ctypes.c_uint8 * 2)(), None)
    try:
        out = []
        for params in settings:
            pair = []
            for full in (False, True):
                runner.full_chain_sampling = full
                # The same evaluation each time: a prompt evaluated whole and one re-evaluated after a kept
                # prefix give logits that differ in the last bits, which a draw can notice.
                worker.L.llama_memory_clear(runner.memory, True)
                runner.tokens.clear()
                got: list = []
                runner.generate(runner.completion_tokens(prompt), params, lambda m, got=got: got.extend(
                    (t.token_id, [x[1] for x in t.top]) for t in tokens_of(m)))
                pair.append(got)
            out.append(tuple(pair))
        return out
    finally:
        runner.close()
