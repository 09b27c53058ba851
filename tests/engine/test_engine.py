"""The engine against real llama.cpp runs on tiny random-weight GGUF models (no mocks)."""

from __future__ import annotations

import math
import os
import signal
import threading
import time

import pytest

from desktop.core.errors import (
    ChatTemplateError,
    ContextOverflow,
    EngineCrashed,
    GrammarError,
    ModelFileError,
)
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, TokenEvent, load_model

TEST_THREADS = 1  # OpenMP on an oversubscribed 2-core CPU stalls; see conftest

OPTS = LoadOptions(threads=TEST_THREADS, n_ctx=1024)
# Flat sampling so that the random tiny model's samples really vary.
WILD = dict(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)


@pytest.fixture(scope="module")
def base(tiny_base):
    with load_model(tiny_base, OPTS) as handle:
        yield handle


@pytest.fixture(scope="module")
def instruct(tiny_instruct):
    with load_model(tiny_instruct, OPTS) as handle:
        yield handle


def collect(stream) -> tuple[list[TokenEvent], FinalEvent]:
    events = list(stream)
    final = events[-1]
    assert isinstance(final, FinalEvent)
    tokens = events[:-1]
    assert all(isinstance(e, TokenEvent) for e in tokens)
    return tokens, final


def works(handle) -> bool:
    """A short generation on this handle ends normally (not in an error, not cancelled)."""
    stream = handle.complete("hello", SamplingParams(max_tokens=3, seed=1))
    stream.text()  # raises the stream's error, if any
    return stream.final.finish_reason in ("stop", "length")


def test_load_reports_model_facts(base, instruct, tiny_base):
    info = base.info
    assert info.path == str(tiny_base.resolve())
    assert info.architecture == "llama"
    assert info.kind == "base" and info.chat_template is None
    assert instruct.info.kind == "instruct" and "im_start" in instruct.info.chat_template
    assert info.n_ctx == 1024 and info.n_ctx_train == 2048
    assert info.backend == "CPU" and info.threads == TEST_THREADS
    assert info.load_s > 0 and info.model_bytes > 0 and info.kv_cache_bytes > 0
    assert info.n_vocab > 256


def test_default_context_is_min_of_trained_and_4096(tiny_base):
    with load_model(tiny_base, LoadOptions(threads=TEST_THREADS)) as handle:
        assert handle.info.n_ctx == 2048  # trained context of the tiny model is 2048 < 4096


def test_complete_streams_tokens_then_one_final(base):
    tokens, final = collect(base.complete("Once upon a time", SamplingParams(max_tokens=12, seed=7)))
    assert 1 <= len(tokens) <= 12
    assert "".join(t.text for t in tokens) == final.text
    assert final.finish_reason in ("length", "stop")
    s = final.stats
    assert s.prompt_tokens >= 4 and s.completion_tokens == len([t for t in tokens if t.token_id >= 0])
    assert s.ttft_s > 0 and s.prefill_tps > 0
    assert s.seed == 7


def test_max_tokens_is_respected_and_reported_as_length(base):
    tokens, final = collect(base.complete("one two three", SamplingParams(max_tokens=5, seed=1, **WILD)))
    if final.finish_reason == "length":
        assert final.stats.completion_tokens == 5


def test_same_seed_same_text_across_processes(base, tiny_base):
    params = SamplingParams(max_tokens=24, seed=1234, **WILD)
    first = base.complete("The king said", params).text()
    again = base.complete("The king said", params).text()
    with load_model(tiny_base, OPTS) as other_process:
        third = other_process.complete("The king said", params).text()
    assert first == again == third
    assert len(first) > 0


def test_no_seed_gives_different_samples_even_in_fresh_processes(tiny_base, base):
    params = SamplingParams(max_tokens=24, **WILD)
    texts = {base.complete("The king said", params).text() for _ in range(3)}
    assert len(texts) >= 2
    # the llama-cpp-python trap: a default seed repeats across processes; each call must draw its own
    with load_model(tiny_base, OPTS) as a, load_model(tiny_base, OPTS) as b:
        ta = a.complete("The king said", params)
        tb = b.complete("The king said", params)
        fa, fb = ta.text(), tb.text()
        assert (fa, ta.final.stats.seed) != (fb, tb.final.stats.seed)
        assert fa != fb


def test_pinned_seed_is_reported_and_reproduces(base):
    stream = base.complete("hello", SamplingParams(max_tokens=10, **WILD))
    text = stream.text()
    seed = stream.final.stats.seed
    assert seed is not None
    assert base.complete("hello", SamplingParams(max_tokens=10, seed=seed, **WILD)).text() == text


def test_logprobs_shape_and_consistency(base):
    tokens, final = collect(base.complete("the world", SamplingParams(max_tokens=8, seed=3, logprobs=5, **WILD)))
    assert tokens
    for t in tokens:
        assert len(t.top) == 5
        lps = [a.logprob for a in t.top]
        assert lps == sorted(lps, reverse=True)
        assert all(lp <= 0 and math.isfinite(lp) for lp in lps)
        assert sum(math.exp(lp) for lp in lps) <= 1.0 + 1e-4
        assert math.isfinite(t.logprob) and t.logprob <= 0
        for alt in t.top:
            if alt.token_id == t.token_id:
                assert alt.logprob == pytest.approx(t.logprob, abs=1e-5)
        assert t.logprob <= t.top[0].logprob + 1e-6


def test_greedy_picks_the_top_alternative(base):
    tokens, _ = collect(base.complete("the world", SamplingParams(max_tokens=6, temperature=0, logprobs=3,
                                                                 repeat_penalty=1.0)))
    for t in tokens:
        assert t.token_id == t.top[0].token_id


def test_without_logprobs_no_alternatives(base):
    tokens, _ = collect(base.complete("the world", SamplingParams(max_tokens=4, seed=1)))
    assert all(t.top == () and math.isnan(t.logprob) for t in tokens)


def test_chat_template_rendering_is_exact(instruct):
    text = instruct.render_chat([{"role": "user", "content": "Who won the World Cup?"}], system="Be brief.")
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                    "<|im_start|>user\nWho won the World Cup?<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_chat_streams_a_reply(instruct):
    tokens, final = collect(instruct.chat([{"role": "user", "content": "hello"}],
                                          SamplingParams(max_tokens=10, seed=5)))
    assert final.error is None and final.finish_reason in ("stop", "length")
    assert "".join(t.text for t in tokens) == final.text
    # the special tokens were parsed as such: far fewer tokens than characters of the template
    assert final.stats.prompt_tokens < len(instruct.render_chat([{"role": "user", "content": "hello"}]))


def test_base_model_chat_is_refused_clearly(base):
    with pytest.raises(ChatTemplateError, match="base model.*Completion"):
        base.render_chat([{"role": "user", "content": "hi"}])
    _, final = collect(base.chat([{"role": "user", "content": "hi"}]))
    assert final.finish_reason == "error" and isinstance(final.error, ChatTemplateError)
    # and the model still works afterwards
    assert works(base)


def test_prefix_reuse_evaluates_only_new_tokens(instruct):
    params = SamplingParams(max_tokens=8, seed=11)
    turn1 = [{"role": "user", "content": "hello there"}]
    s1 = instruct.chat(turn1, params)
    reply = s1.text()
    turn2 = turn1 + [{"role": "assistant", "content": reply}, {"role": "user", "content": "and then?"}]
    s2 = instruct.chat(turn2, params)
    s2.text()
    st = s2.final.stats
    assert st.prompt_eval_tokens < st.prompt_tokens
    assert st.prompt_eval_tokens <= st.prompt_tokens - s1.final.stats.prompt_tokens + 2


def test_stats_split_decode_time_into_llama_and_engine(base):
    """decode_llama_s is the part of decode_s spent inside llama_decode (the bench reports the rest as the
    engine's own per-token cost); every token after the first is evaluated there, so it can't be zero."""
    stream = base.complete("Once upon a time", SamplingParams(max_tokens=24, seed=5, **WILD))
    stream.text()
    st = stream.final.stats
    assert st.completion_tokens >= 2, "need at least one decode step"
    assert 0.0 < st.decode_llama_s <= st.decode_s
    assert math.isclose(st.decode_tps, (st.completion_tokens - 1) / st.decode_s, rel_tol=1e-9)


def test_cancel_during_decode_within_200ms(tiny_base):
    with load_model(tiny_base, LoadOptions(threads=TEST_THREADS, n_ctx=2048)) as handle:
        stream = handle.complete("Once upon a time", SamplingParams(max_tokens=2000, seed=1, **WILD))
        seen = 0
        for event in stream:
            if isinstance(event, TokenEvent):
                seen += 1
                if seen == 5:
                    t0 = time.monotonic()
                    stream.cancel()
            else:
                elapsed = time.monotonic() - t0
                assert event.finish_reason == "cancelled"
                assert elapsed < 0.2, f"cancel took {elapsed * 1000:.0f} ms"
                assert event.stats.completion_tokens < 2000
        pid = handle.pid
        assert pid is not None  # stopped by the flag, not by killing the worker
        assert works(handle)
        assert handle.pid == pid


def test_cancel_during_prefill_uses_the_abort_callback(slow_base):
    prompt = " ".join(["the king and the queen of the old world"] * 700)  # ~6,000 tokens
    with load_model(slow_base, LoadOptions(threads=TEST_THREADS, n_ctx=8192)) as handle:
        pid = handle.pid
        stream = handle.complete(prompt, SamplingParams(max_tokens=4, seed=1))
        result: dict = {}

        def consume():
            for event in stream:
                if isinstance(event, FinalEvent):
                    result["final"] = event
                    result["t"] = time.monotonic()
                else:
                    result.setdefault("tokens", 0)
                    result["tokens"] += 1

        th = threading.Thread(target=consume)
        th.start()
        time.sleep(0.6)
        assert "final" not in result, "prefill finished too fast to test cancel; make the model bigger"
        t0 = time.monotonic()
        stream.cancel()
        th.join(10)
        assert result["final"].finish_reason == "cancelled"
        assert result["t"] - t0 < 0.2, f"prefill cancel took {(result['t'] - t0) * 1000:.0f} ms"
        assert "tokens" not in result
        assert handle.pid == pid  # aborted inside llama.cpp, the worker was not killed
        # the cache was trimmed correctly: a fresh short request works
        assert works(handle)


def test_worker_killed_mid_stream_is_engine_crashed_and_reload_works(tiny_base, base):
    handle = load_model(tiny_base, OPTS)
    try:
        stream = handle.complete("Once upon a time", SamplingParams(max_tokens=2000, seed=1, **WILD))
        n = 0
        final = None
        for event in stream:
            if isinstance(event, FinalEvent):
                final = event
                break
            n += 1
            if n == 3:
                os.kill(handle.pid, signal.SIGKILL)
        assert final.finish_reason == "error"
        assert isinstance(final.error, EngineCrashed)
        assert "SIGKILL" in str(final.error)
        # other loaded models are untouched
        assert works(base)
        # and the same handle loads the model again on the next request
        assert works(handle)
        assert handle.alive
    finally:
        handle.close()


def test_unload_ends_the_process(tiny_base):
    handle = load_model(tiny_base, OPTS)
    pid = handle.pid
    handle.close()  # joins the worker: its process is gone when close returns
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not handle.alive


def test_invalid_grammar_is_a_clean_error(base):
    _, final = collect(base.complete("hi", SamplingParams(max_tokens=4, grammar="root ::= ( unclosed")))
    assert final.finish_reason == "error" and isinstance(final.error, GrammarError)
    assert base.alive


def test_grammar_constrains_output(base):
    text = base.complete("Answer:", SamplingParams(max_tokens=10, seed=4, grammar='root ::= "yes" | "no"')).text()
    assert text in ("yes", "no")


def test_json_schema_output_parses(base):
    import json

    schema = '{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}'
    text = base.complete("JSON:", SamplingParams(max_tokens=40, seed=4, temperature=0.7, json_schema=schema)).text()
    assert isinstance(json.loads(text)["ok"], bool)


def test_multibyte_characters_are_never_split(base):
    # The vocab has no token for "é" or "€": they come out as byte tokens, one event completes each.
    tokens, final = collect(base.complete("x", SamplingParams(max_tokens=12, seed=1, grammar='root ::= "é€"')))
    assert final.text == "é€"
    assert len(tokens) == 5  # 2 + 3 byte tokens
    assert [t.text for t in tokens] == ["", "é", "", "", "€"]


def test_stop_string_cuts_the_text(base):
    _, final = collect(base.complete("x", SamplingParams(max_tokens=20, seed=1, stop=("STOP",),
                                                         grammar='root ::= "abcSTOPdef"')))
    assert final.text == "abc" and final.finish_reason == "stop"


def test_context_overflow_is_a_clean_error(tiny_base):
    with load_model(tiny_base, LoadOptions(threads=TEST_THREADS, n_ctx=256)) as handle:
        n_ctx = handle.info.n_ctx  # llama.cpp may round the context up
        _, final = collect(handle.complete("word " * (n_ctx * 2), SamplingParams(max_tokens=4)))
        assert isinstance(final.error, ContextOverflow)
        assert final.error.n_ctx == n_ctx and final.error.prompt_tokens > n_ctx
        assert f"{n_ctx:,}" in str(final.error)
        # generation that runs into the end of the context stops with "length"
        _, final = collect(handle.complete("word " * 100, SamplingParams(max_tokens=500, seed=1, **WILD)))
        assert final.finish_reason in ("length", "stop")


def test_empty_prompt_on_a_bos_model_generates_from_bos(base):
    _, final = collect(base.complete("", SamplingParams(max_tokens=3, seed=1)))
    assert final.error is None


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"GGUF\x03\x00\x00\x00"])
def test_bad_files_are_model_file_errors(tmp_path, content):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        load_model(path, OPTS)


def test_truncated_model_is_a_model_file_error(tmp_path, tiny_base):
    data = tiny_base.read_bytes()
    path = tmp_path / "truncated.gguf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as info:
        load_model(path, OPTS)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="No model file"):
        load_model(tmp_path / "nope.gguf", OPTS)


def test_score_matches_the_streams_own_logprobs(base):
    prompt = "Once upon a time"
    tokens, final = collect(base.complete(prompt, SamplingParams(max_tokens=6, seed=9, logprobs=1, **WILD)))
    result = base.score(prompt, final.text)
    # the scorer re-tokenizes the text; for these plain pieces it gives back the same tokens
    if [t.token_id for t in result.tokens] == [t.token_id for t in tokens]:
        for scored, streamed in zip(result.tokens, tokens):
            assert scored.logprob == pytest.approx(streamed.logprob, abs=1e-3)
    assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in result.tokens)
    assert result.mean_logprob < 0


def test_score_as_chat_on_instruct(instruct):
    result = instruct.score("Who won?", "France won.", as_chat=True)
    assert len(result.tokens) >= 2 and math.isfinite(result.mean_logprob)


def test_hardware_report():
    from desktop.engine import hardware_report

    report = hardware_report()
    assert report["build_backend"] in ("CPU", "CUDA", "Metal", "Vulkan") or report["build_backend"]
    assert isinstance(report["gpu_offload_supported"], bool)
    assert report["cpu_count"] >= 1
    assert any(d["type"] == "CPU" for d in report["devices"])


def test_chat_score_of_a_generated_reply_has_no_extra_leading_token(instruct):
    """The reply is scored as generation saw it: tokenized after the template, not alone with the space
    SentencePiece would put in front. (A random model can emit non-canonical sequences, e.g. a byte token
    where one merged piece exists, so only the start is compared token for token.)"""
    stream = instruct.chat([{"role": "user", "content": "Who won?"}],
                           SamplingParams(max_tokens=8, seed=21, logprobs=1, temperature=0, repeat_penalty=1.0))
    tokens, final = collect(stream)
    result = instruct.score("Who won?", final.text, as_chat=True)
    assert result.tokens[0].token_id == tokens[0].token_id
    assert result.tokens[0].logprob == pytest.approx(tokens[0].logprob, abs=1e-3)
    assert len(result.tokens) <= len(final.text.encode("utf-8"))


def test_a_request_can_narrow_its_threads_and_the_next_one_gets_them_back(tiny_base):
    from desktop.core.errors import EngineError
    from desktop.engine import split_threads

    with load_model(tiny_base, LoadOptions(threads=2, n_ctx=512)) as a, load_model(tiny_base, LoadOptions(threads=2, n_ctx=512)) as b:
        assert split_threads([a, b]) == 1 and split_threads([a]) == 2
        params = SamplingParams(max_tokens=6, seed=5, **WILD)
        narrowed = a.complete("The king", params, threads=1).text()
        assert narrowed == a.complete("The king", params).text()  # same seed, same text, any thread count
        with pytest.raises(EngineError, match="Threads"):
            a.complete("x", params, threads=0)
