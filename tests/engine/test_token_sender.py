"""Tokens reach the app's process at most every 30 ms, in order, none lost, each still its own event."""

from __future__ import annotations

import ctypes

from desktop.engine import generation, worker
from desktop.engine.messages import Token, Tokens
from desktop.engine.types import LoadOptions, SamplingParams
from tests.engine.sampler_check import tokens_of


def tok(i: int) -> Token:
    return Token(f"t{i}", i, -0.5)


def test_the_first_token_goes_at_once_and_the_next_ones_of_the_same_30_ms_together(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(generation.time, "perf_counter", lambda: now[0])
    sent: list = []
    sender = generation.TokenSender(sent.append)
    sender(tok(0))
    assert sent == [tok(0)]  # the first token: no waiting
    for i, t in ((1, 100.010), (2, 100.020)):
        now[0] = t
        sender(tok(i))
    assert sent == [tok(0)]  # held: less than 30 ms since the last message
    now[0] = 100.031
    sender(tok(3))
    assert sent == [tok(0), Tokens((tok(1), tok(2), tok(3)))]
    now[0] = 100.200  # a slow token goes alone, at once
    sender(tok(4))
    assert sent[-1] == tok(4)
    now[0] = 100.201
    sender(tok(5))
    sender.flush()
    sender.flush()  # nothing left: nothing sent
    assert sent[-1] == tok(5) and len(sent) == 4


def test_a_generation_sends_every_token_in_order_before_the_final_event(tiny_base):
    worker._import_llama()
    runner = worker.Runner(str(tiny_base), LoadOptions(threads=1, n_ctx=512), (ctypes.c_uint8 * 2)(), None)
    try:
        messages: list = []
        final = runner.generate(runner.completion_tokens("Once upon a time"), SamplingParams(max_tokens=60, seed=3),
                                messages.append)
    finally:
        runner.close()
    tokens = [t for m in messages for t in tokens_of(m)]
    assert len(tokens) == final.stats.completion_tokens == 60
    assert "".join(t.text for t in tokens) == final.text
    # a tiny model makes tokens far faster than 30 ms apart: they travel together
    assert any(isinstance(m, Tokens) for m in messages) and len(messages) < len(tokens)
