"""Slots (``LoadOptions.n_seq`` > 1): several streams decoded together in one llama_decode, on tiny
random-weight models. Each request must give what it gives alone on a one-slot handle, whatever else runs.

Tokens are compared exactly, logprobs within 1e-3: a batch of several rows may reach a matmul kernel that
sums in another order than one row does, so a greedy near-tie could in principle flip; with each slot on
its own KV stream (not a unified cache) and these models and prompts, none does.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import threading
import time

import pytest

from desktop.core.errors import EngineCrashed, EngineError
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, TokenEvent, load_model
from desktop.engine.messages import Complete, Final, Tagged

N_CTX = 512
ONE = LoadOptions(threads=1, n_ctx=N_CTX)
FOUR = LoadOptions(threads=1, n_ctx=N_CTX, n_seq=4)
PROMPTS = ("Once upon a time", "The capital of", "1 2 3 4 5", "def main():")
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)
WILD = dict(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)  # samples really vary
LONG = SamplingParams(temperature=0.0, max_tokens=400)


@pytest.fixture(scope="module")
def single(tiny_base):
    with load_model(tiny_base, ONE) as handle:
        yield handle


@pytest.fixture(scope="module")
def slots(tiny_base):
    with load_model(tiny_base, FOUR) as handle:
        yield handle


def events(stream) -> tuple[list[tuple], FinalEvent]:
    """(text, token id, logprob, top ids) of each token event, and the final event."""
    evs = list(stream)
    final = evs[-1]
    assert isinstance(final, FinalEvent) and all(isinstance(e, TokenEvent) for e in evs[:-1])
    return [(e.text, e.token_id, e.logprob, tuple(t.token_id for t in e.top)) for e in evs[:-1]], final


def together(streams) -> list[tuple[list[tuple], FinalEvent]]:
    """Each stream read to its end by its own thread, as a server's clients would."""
    out: list = [None] * len(streams)

    def read(i: int) -> None:
        out[i] = events(streams[i])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(o is not None for o in out)
    return out


def same(a, b) -> bool:
    """Two token lists equal, logprobs within float noise (NaN when not asked for)."""
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and x[3] == y[3]
        and (math.isnan(x[2]) and math.isnan(y[2]) or abs(x[2] - y[2]) < 1e-3) for x, y in zip(a, b, strict=True))


def test_a_slots_handle_says_how_many(slots, single):
    assert slots.capabilities.slots == 4 and slots.capabilities.queues
    assert slots.info.n_seq == 4 and slots.info.n_ctx == N_CTX  # n_ctx is each slot's
    assert single.capabilities.slots == 1 and single.info.n_seq == 1
    assert slots.info.kv_cache_bytes == 5 * single.info.kv_cache_bytes  # 4 slots + sequence 0


def test_bad_slot_counts_are_one_line_errors(tiny_base):
    with pytest.raises(EngineError, match="Slots must be"):
        load_model(tiny_base, LoadOptions(threads=1, n_ctx=N_CTX, n_seq=0))
    with pytest.raises(EngineError, match="Slots must be"):
        load_model(tiny_base, LoadOptions(threads=1, n_ctx=N_CTX, n_seq=1000))


def test_four_greedy_streams_at_once_equal_one_at_a_time(slots, single):
    alone = [events(single.complete(p, GREEDY)) for p in PROMPTS]
    both = together([slots.complete(p, GREEDY) for p in PROMPTS])
    for (a, fa), (b, fb) in zip(alone, both, strict=True):
        assert same(a, b) and len(a) == 24
        assert fa.text == fb.text and fb.finish_reason == "length" and fb.error is None
        assert fb.stats.completion_tokens == 24 and fb.stats.prompt_tokens == fa.stats.prompt_tokens


def test_seeded_sampling_is_the_same_whatever_else_runs(slots, single):
    p = SamplingParams(max_tokens=40, seed=1234, logprobs=3, **WILD)
    reference, _ = events(single.complete("Once upon a time", p))
    alone, _ = events(slots.complete("Once upon a time", p))
    others = [SamplingParams(max_tokens=60, seed=s, **WILD) for s in (1, 2, 3)]
    crowd = together([slots.complete("Once upon a time", p),
                      *(slots.complete(prompt, q) for prompt, q in zip(PROMPTS[1:], others, strict=True))])
    assert same(alone, reference) and same(crowd[0][0], reference)
    assert crowd[0][1].stats.seed == 1234
    unseeded = together([slots.complete("Once upon a time", SamplingParams(max_tokens=40, **WILD))
                         for _ in range(2)])
    assert unseeded[0][1].stats.seed != unseeded[1][1].stats.seed  # each its own draw


def test_a_fifth_request_waits_and_runs_when_a_slot_frees(slots, single):
    running = [slots.complete(p, LONG) for p in PROMPTS]
    fifth = slots.complete("The sea", GREEDY)
    assert fifth.waiting and not any(s.waiting for s in running)
    running[0].cancel()
    assert list(running[0])[-1].finish_reason == "cancelled"
    got, final = events(fifth)  # it ran in the freed slot while three others still ran
    assert not fifth.waiting and final.error is None
    assert same(got, events(single.complete("The sea", GREEDY))[0])
    for stream in running[1:]:
        stream.cancel()
        assert list(stream)[-1].finish_reason == "cancelled"


def test_cancelling_one_of_four_frees_its_slot_and_leaves_the_others(slots, single):
    streams = [slots.complete(p, SamplingParams(temperature=0.0, max_tokens=300)) for p in PROMPTS]
    for s in streams:
        assert isinstance(s.next_event(), TokenEvent)
    t0 = time.monotonic()
    streams[1].cancel()
    final = list(streams[1])[-1]
    took = time.monotonic() - t0
    # The worker ended it (its stats are the slot's, not a local stand-in after KILL_AFTER_S) mid-stream.
    assert final.finish_reason == "cancelled" and final.error is None
    assert final.stats.prompt_tokens > 0 and final.stats.completion_tokens < 300
    print(f"cancel of one slot of four: {took * 1000:.0f} ms")  # noqa: T201 (shown with -s; not asserted)
    rest = together([streams[0], streams[2], streams[3]])
    for (got, fin), prompt in zip(rest, (PROMPTS[0], PROMPTS[2], PROMPTS[3]), strict=True):
        assert fin.finish_reason == "length" and fin.stats.completion_tokens == 300
        first = events(single.complete(prompt, SamplingParams(temperature=0.0, max_tokens=300)))[0]
        assert same(got, first[1:])  # the event already read is not in `got`


def test_stop_strings_emit_eog_logprobs_and_token_prompts_work_in_slots(slots, single):
    free, _ = events(single.complete("Once upon a time", GREEDY))
    text = "".join(t[0] for t in free)
    stop = text[len(text) // 2:len(text) // 2 + 3]
    ids = single.tokenize("The capital of", add_bos=True)
    requests = [
        ("complete", "Once upon a time", SamplingParams(temperature=0.0, max_tokens=24, stop=(stop,), logprobs=2)),
        ("complete", "1 2 3", SamplingParams(temperature=0.0, max_tokens=24, grammar='root ::= "ab"',
                                              emit_eog=True, logprobs=2)),
        ("tokens", ids, SamplingParams(temperature=0.0, max_tokens=24, logprobs=5)),
        ("complete", "1 2 3", SamplingParams(temperature=0.0, max_tokens=24, grammar='root ::= "ab"')),
    ]

    def start(handle, kind, prompt, p):
        return handle.complete(prompt, p) if kind == "complete" else handle.complete_tokens(prompt, p)

    alone = [events(start(single, *r)) for r in requests]
    both = together([start(slots, *r) for r in requests])
    for (a, fa), (b, fb) in zip(alone, both, strict=True):
        assert same(a, b) and fa.text == fb.text and fa.finish_reason == fb.finish_reason
    (cut, f_cut), (eog, f_eog), (by_ids, _), (no_eog, f_no_eog) = both
    assert f_cut.finish_reason == "stop" and stop not in f_cut.text and text.startswith(f_cut.text)
    # The grammar ends the text with an end-of-generation token: emitted (no text, its own logprob) or not.
    assert f_eog.finish_reason == f_no_eog.finish_reason == "stop" and f_eog.text == f_no_eog.text == "ab"
    assert eog[-1][0] == "" and not math.isnan(eog[-1][2])
    assert [t[1] for t in eog[:-1]] == [t[1] for t in no_eog]
    assert same(by_ids, events(single.complete("The capital of", requests[2][2]))[0])


def test_calls_answered_while_four_streams_run_equal_an_idle_models(slots, single):
    idle = (single.tokenize("hello world"), single.detokenize([1, 300, 301]),
            single.score("Once upon", " a time", top_k=3), single.score_tokens([1, 300, 301, 302], top_k=2),
            single.vocab_id)
    streams = [slots.complete(p, LONG) for p in PROMPTS]
    busy = (slots.tokenize("hello world"), slots.detokenize([1, 300, 301]),
            slots.score("Once upon", " a time", top_k=3), slots.score_tokens([1, 300, 301, 302], top_k=2),
            slots.vocab_id)
    assert busy[:2] == idle[:2] and busy[4] == idle[4]
    for got, want in ((busy[2].tokens, idle[2].tokens), (busy[3].tokens[1:], idle[3].tokens[1:])):
        assert [(t.token_id, t.rank, [x.token_id for x in t.top]) for t in got] == \
               [(t.token_id, t.rank, [x.token_id for x in t.top]) for t in want]
        assert all(abs(g.logprob - w.logprob) < 1e-4 for g, w in zip(got, want, strict=True))
    for (got, final), prompt in zip(together(streams), PROMPTS, strict=True):  # undisturbed
        assert final.finish_reason == "length" and len(got) == 400
        assert same(got[:30], events(single.complete(prompt, SamplingParams(temperature=0.0, max_tokens=30)))[0])


def test_a_repeated_prompt_reuses_its_slots_cache(slots):
    prompt = "A prompt sent twice " * 8
    first = list(slots.complete(prompt, GREEDY))[-1]
    second = list(slots.complete(prompt, GREEDY))[-1]
    assert first.stats.prompt_eval_tokens > 1 and second.stats.prompt_eval_tokens == 1
    assert first.text == second.text


def test_a_killed_worker_ends_every_stream_and_the_next_request_works(tiny_base):
    with load_model(tiny_base, FOUR) as handle:
        streams = [handle.complete(p, LONG) for p in PROMPTS]
        queued = handle.complete("The sea", GREEDY)
        for s in streams:
            assert isinstance(s.next_event(), TokenEvent)
        old = handle.pid
        os.kill(old, signal.SIGKILL)
        for s in streams:
            final = list(s)[-1]
            assert final.finish_reason == "error" and isinstance(final.error, EngineCrashed)
        assert list(queued)[-1].error is None  # it waited, then ran on a fresh worker
        assert handle.complete("hello", GREEDY).text() and handle.pid not in (None, old)
        assert handle.tokenize("hello") == handle.tokenize("hello")


def test_close_ends_running_and_waiting_streams(tiny_base):
    handle = load_model(tiny_base, FOUR)
    streams = [handle.complete(p, LONG) for p in (*PROMPTS, "The sea")]
    assert isinstance(streams[0].next_event(), TokenEvent)
    handle.close()
    assert [list(s)[-1].finish_reason for s in streams] == ["cancelled"] * 5
    assert handle.pid is None
    with pytest.raises(EngineError, match="unloaded"):
        handle.complete("hello", GREEDY)


def test_one_llama_decode_carries_every_slots_token_and_bounded_prefill(tiny_base):
    """In the worker itself: four decoding slots are one batch of four tokens, and a long prompt admitted
    beside them is prefilled in chunks within the step budget, not in one stall."""
    from desktop.engine import batching, worker

    worker._import_llama()
    runner = worker.Runner(str(tiny_base), FOUR, (ctypes.c_uint8 * 2)(), None)
    sent: list = []
    sched = batching.Scheduler(runner, sent.append)
    try:
        for rid, prompt in enumerate(PROMPTS[:3], 1):
            sched.submit(rid, Complete(prompt, SamplingParams(temperature=0.0, max_tokens=50)))
        sched.admit()
        sched.step()  # the three prompts, whole (each is shorter than the first chunk)
        sched.step()
        assert sched.batch.n == 3 and sorted(sched.batch.pos[:3]) == sorted(
            len(s.cached) - 1 for s in sched.slots[:3])
        long_prompt = "word " * 120
        assert 200 < len(runner.completion_tokens(long_prompt)) < N_CTX
        sched.submit(4, Complete(long_prompt, SamplingParams(temperature=0.0, max_tokens=5)))
        sched.admit()
        sizes = []
        while sched.slots[3].job is not None and sched.slots[3].job.next_token is None:
            sched.tps = 1000.0  # as if measured: the budget is STEP_TARGET_S of work at this speed
            sched.step()
            sizes.append(sched.batch.n)
        assert len(sizes) > 2 and max(sizes) <= int(1000.0 * batching.STEP_TARGET_S)
        while sched.busy():
            sched.step()
        finals = {m.rid: m.msg.event for m in sent if isinstance(m, Tagged) and isinstance(m.msg, Final)}
        assert sorted(finals) == [1, 2, 3, 4] and all(f.error is None for f in finals.values())
    finally:
        runner.close()


def test_chat_in_slots_equals_chat_alone(tiny_instruct):
    messages = [{"role": "user", "content": "Say hello"}]
    p = SamplingParams(temperature=0.0, max_tokens=16, logprobs=2)
    with load_model(tiny_instruct, ONE) as one:
        alone = [events(one.chat(messages, p, system=s)) for s in (None, "Be brief.")]
        rendered = one.render_chat(messages)
    with load_model(tiny_instruct, FOUR) as four:
        both = together([four.chat(messages, p, system=s) for s in (None, "Be brief.")])
        assert four.render_chat(messages) == rendered
    for (a, fa), (b, fb) in zip(alone, both, strict=True):
        assert same(a, b) and fa.text == fb.text and fb.error is None


def test_a_failing_or_context_filling_request_ends_alone(slots, single):
    from desktop.core.errors import ContextOverflow, GrammarError

    fill = SamplingParams(temperature=0.0, max_tokens=2000)
    streams = [slots.complete("word " * 600, GREEDY), slots.complete("hi", SamplingParams(top_p=2.0)),
               slots.complete("hi", SamplingParams(grammar="not gbnf")), slots.complete("Once upon a time", fill),
               slots.complete_tokens([10**9], GREEDY)]
    (_, too_long), (_, bad_p), (_, bad_grammar), (filled, full), (_, bad_id) = together(streams)
    assert isinstance(too_long.error, ContextOverflow) and "512" in str(too_long.error)
    assert bad_p.finish_reason == "error" and "top-p" in str(bad_p.error)
    assert isinstance(bad_grammar.error, GrammarError) and "vocabulary" in str(bad_id.error)
    alone, final = events(single.complete("Once upon a time", fill))  # the context's end, as with one slot
    assert full.finish_reason == final.finish_reason == "length" and same(filled, alone)
    assert full.stats.prompt_tokens + full.stats.completion_tokens == N_CTX  # every cell of its sequence
