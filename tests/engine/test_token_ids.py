"""Prompts given as token ids (what the server's scoring rests on): complete_tokens, score_tokens with its
cache of per-position rows, detokenize, tokenize's add_bos, and emitting the end token on request."""

from __future__ import annotations

import math

import pytest

from desktop.core.errors import EngineError
from desktop.engine import LoadOptions, load_model
from desktop.engine.types import FinalEvent, SamplingParams, TokenEvent

THREADS = 1
TEXT = "The quick brown fox jumps over the lazy dog, and the dog sleeps on."


@pytest.fixture(scope="module")
def base(tiny_base):
    with load_model(tiny_base, LoadOptions(threads=THREADS, n_ctx=512)) as m:
        yield m


def _fresh_rows(path, ids, top_k=0):
    """The same scores from a model that has never seen anything (no cached rows, no KV prefix)."""
    with load_model(path, LoadOptions(threads=THREADS, n_ctx=512)) as m:
        return m.score_tokens(ids, top_k=top_k, next_top_k=3)


def test_score_tokens_matches_score_of_the_same_ids(base):
    head = base.tokenize("The quick brown fox", special=True, add_bos=True)
    tail = base.tokenize(" jumps over the lazy dog, and the dog sleeps on.", special=False)
    ids = head + tail
    assert ids[0] == base.info.bos_id and base.info.add_bos
    rows = base.score_tokens(ids, top_k=3)
    assert len(rows.tokens) == len(ids)
    assert math.isnan(rows.tokens[0].logprob) and rows.tokens[0].top == ()
    assert [t.token_id for t in rows.tokens] == ids
    scored = base.score("The quick brown fox", tail, top_k=3)  # score() puts BOS before a text prompt
    assert len(scored.tokens) == len(tail)
    for a, b in zip(rows.tokens[len(head):], scored.tokens):
        assert a.token_id == b.token_id
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert a.rank == b.rank
        assert [t.token_id for t in a.top] == [t.token_id for t in b.top]
    for t in rows.tokens[1:]:  # the top list and the rank agree with the token's own logprob
        assert t.top[0].logprob >= t.logprob - 1e-6
        assert (t.rank == 1) == (t.top[0].token_id == t.token_id)


def test_scores_do_not_depend_on_what_was_scored_before(base, tiny_base):
    """Every prompt is evaluated whole: a choice scored after others sharing its context gets the numbers a
    model that has seen nothing gives (a reused prefix changed them by up to 0.47 nats on Gemma)."""
    context = base.tokenize("Question: which animal jumps? Answer:", special=True, add_bos=True)
    choices = [base.tokenize(c, special=False, add_bos=False) for c in (" the fox", " a dog that sleeps", " none")]
    warm = [base.score_tokens(context + c, top_k=1, next_top_k=3) for c in choices]
    for c, w in zip(choices, warm):
        cold = _fresh_rows(tiny_base, context + c, top_k=1)
        assert [t.token_id for t in w.tokens] == [t.token_id for t in cold.tokens]
        for a, b in zip(w.tokens[1:], cold.tokens[1:]):
            assert a.logprob == b.logprob
            assert a.top[0].token_id == b.top[0].token_id
        assert [t.token_id for t in w.next_top] == [t.token_id for t in cold.next_top]
    more = base.score_tokens(context + choices[0], top_k=4)
    assert all(len(t.top) == 4 for t in more.tokens[1:])


def test_next_top_is_the_greedy_token(base):
    ids = base.tokenize(TEXT, special=True, add_bos=True)
    scores = base.score_tokens(ids, next_top_k=2)
    assert len(scores.next_top) == 2 and scores.next_top[0].logprob >= scores.next_top[1].logprob
    events = list(base.complete_tokens(ids, SamplingParams(temperature=0, max_tokens=1, logprobs=2, seed=1)))
    first = events[0]
    assert isinstance(first, TokenEvent)
    assert first.token_id == scores.next_top[0].token_id
    assert first.logprob == pytest.approx(scores.next_top[0].logprob, abs=1e-3)


def test_complete_tokens_uses_the_ids_as_given(base):
    text_ids = base.tokenize(TEXT, special=True, add_bos=True)
    params = SamplingParams(temperature=0, max_tokens=6, seed=3)
    by_text = base.complete(TEXT, params).text()
    by_ids = base.complete_tokens(text_ids, params).text()
    assert by_ids == by_text  # complete() adds BOS the same way
    without_bos = base.complete_tokens(text_ids[1:], SamplingParams(temperature=0, max_tokens=6, logprobs=1))
    final = list(without_bos)[-1]
    assert isinstance(final, FinalEvent) and final.stats.prompt_tokens == len(text_ids) - 1


def test_emit_eog_returns_the_end_token(base):
    """A grammar that allows nothing forces the end token: with emit_eog it is the stream's last token."""
    ids = base.tokenize(TEXT, special=True, add_bos=True)
    params = SamplingParams(temperature=0, max_tokens=1, logprobs=1, grammar='root ::= ""', emit_eog=True)
    events = list(base.complete_tokens(ids, params))
    assert isinstance(events[0], TokenEvent) and events[0].token_id == base.info.eos_id
    assert events[0].text == "" and not math.isnan(events[0].logprob)
    assert events[-1].finish_reason == "stop" and events[-1].stats.completion_tokens == 1
    silent = list(base.complete_tokens(ids, SamplingParams(temperature=0, max_tokens=1, grammar='root ::= ""')))
    assert len(silent) == 1 and silent[0].finish_reason == "stop"


def test_tokenize_detokenize_and_bad_ids(base, tiny_instruct):
    plain = base.tokenize("hello there", special=False)
    assert plain[0] != base.info.bos_id
    assert base.tokenize("hello there", special=False, add_bos=True)[0] == base.info.bos_id
    assert base.detokenize(plain).strip() == "hello there"
    with load_model(tiny_instruct, LoadOptions(threads=THREADS, n_ctx=256)) as inst:
        eos = inst.tokenize(inst.info.eos_text, special=True, add_bos=False)
        assert eos == [inst.info.eos_id]  # special-token text parses into the special token
        assert inst.detokenize(eos) == inst.info.eos_text
    for bad in ([base.info.n_vocab], [-1]):
        with pytest.raises(EngineError, match="not in this model's vocabulary"):
            base.score_tokens(bad)
        with pytest.raises(EngineError, match="not in this model's vocabulary"):
            base.detokenize(bad)
    with pytest.raises(EngineError, match="empty"):
        base.score_tokens([])
    with pytest.raises(EngineError, match="whole numbers"):
        base.score_tokens(["x"])
    final = list(base.complete_tokens([base.info.n_vocab + 5], SamplingParams(max_tokens=1)))[-1]
    assert final.finish_reason == "error" and "not in this model's vocabulary" in str(final.error)
