"""Every server fault is one line a person can act on, and nothing already received is lost.

Real servers can't be made to send a 429, cut a stream mid-token or stall on demand, so these run against a
scripted loopback server (faultserver.py) that speaks the documented OpenAI/llama.cpp shapes.
"""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

from desktop.core.errors import (
    ContextOverflow,
    ServerAuthError,
    ServerBusy,
    ServerProtocolError,
    ServerUnreachable,
    UnknownModel,
)
from desktop.engine.remote import VERIFY_PROMPT, connect
from desktop.engine.types import SamplingParams
from tests.remote.faultserver import completion_chunk, drain, free_port, openai_server

P = SamplingParams(max_tokens=8, temperature=0.0, logprobs=1)


@pytest.fixture
def srv():
    s = openai_server()
    yield s
    s.stop()


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text



def test_server_down():
    with pytest.raises(ServerUnreachable) as err:
        connect(f"http://127.0.0.1:{free_port()}", offline=False)
    assert "is the server running" in one_line(err.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refused_names_the_key_but_never_shows_it(srv, status):
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"error": {"message": "Invalid API key"}}, status)
    with pytest.raises(ServerAuthError) as err:
        connect(srv.url, api_key="sk-secret-123", offline=False)
    msg = one_line(err.value)
    assert str(status) in msg and "API key" in msg and "sk-secret-123" not in msg
    assert srv.requests[0][2]["Authorization"] == "Bearer sk-secret-123"  # the key went only in the header


def test_unknown_model_lists_what_the_server_has(srv):
    with pytest.raises(UnknownModel) as err:
        connect(srv.url, "llama-70b", offline=False, verify=False)
    assert "'llama-70b'" in one_line(err.value) and "m" in str(err.value)


def test_unknown_model_reported_by_the_server_at_request_time(srv):
    srv.routes[("POST", "/v1/completions")] = lambda r: r.json(
        {"error": {"message": "The model `m` does not exist.", "type": "NotFoundError"}}, 404)
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("hi", P))
    assert isinstance(final.error, UnknownModel) and "does not exist" in one_line(final.error)


@pytest.mark.parametrize("status,after", [(429, "7"), (503, "30"), (500, None)])
def test_busy_server_gives_retry_after(srv, status, after):
    headers = {"Retry-After": after} if after else {}
    srv.routes[("POST", "/v1/completions")] = lambda r: r.json({"error": {"message": "slow down"}}, status, headers)
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("hi", P))
    assert isinstance(final.error, ServerBusy) and final.error.status == status
    msg = one_line(final.error)
    if after:
        assert final.error.retry_after == float(after) and f"retry in {after} s" in msg
    else:
        assert final.error.retry_after is None and "try again later" in msg


@pytest.mark.parametrize("how", ["reset", "closed"])
def test_stream_dropped_mid_token_keeps_the_partial_reply(srv, how):
    def drop(r):
        r.sse_start()
        r.sse(completion_chunk(" Paris", -0.25))
        r.sse(completion_chunk(".", -0.5))
        r.raw(b'data: {"choices": [{"text": " It')  # half a chunk, then the connection is gone
        time.sleep(0.3)  # (a reset discards bytes the client has not read yet: let it read them first)
        if how == "reset":
            r.cut()
    srv.routes[("POST", "/v1/completions")] = drop
    m = connect(srv.url, offline=False, verify=False)
    tokens, final = drain(m.complete("The capital of France is", P))
    assert [t.text for t in tokens] == [" Paris", "."]
    assert final.finish_reason == "error" and final.text == " Paris."
    assert isinstance(final.error, ServerUnreachable)
    assert "dropped mid-reply after 2 tokens; the partial reply is kept" in one_line(final.error)


def test_stream_that_ends_without_finishing_is_an_error_not_a_reply(srv):
    def ends(r):
        r.sse_start()
        r.sse(completion_chunk(" Paris", -0.25))
        r.raw(b"data: [DONE]\n\n")
    srv.routes[("POST", "/v1/completions")] = ends
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("x", P))
    assert final.finish_reason == "error" and final.text == " Paris"
    assert "without finishing it after 1 tokens" in one_line(final.error)


def test_stalled_server_cancel_ends_the_stream_within_200ms(srv):
    def stall(r):
        r.sse_start()
        r.sse(completion_chunk(" Paris", -0.25))
        srv.release.wait(30)  # then nothing: a stalled server
    srv.routes[("POST", "/v1/completions")] = stall
    m = connect(srv.url, offline=False, verify=False)
    stream = m.complete("x", P)
    first = stream.next_event()
    assert first.text == " Paris"
    called = []

    def stop():  # Stop pressed, from another thread, while the reader is blocked on the stalled server
        called.append(time.monotonic())
        stream.cancel()
    threading.Timer(0.3, stop).start()
    final = stream.next_event()
    cancelled_after = time.monotonic() - called[0]
    assert final.finish_reason == "cancelled" and final.text == " Paris" and final.error is None
    assert cancelled_after < 0.2, f"cancel took {cancelled_after * 1000:.0f} ms"
    # the socket was shut down: the reader thread is not left waiting on the stalled server
    stream._thread.join(2)
    assert not stream._thread.is_alive()


@pytest.mark.parametrize("when", ["at once", "after 300 ms"])
def test_a_server_that_stalls_before_its_headers_frees_the_reader_at_stop(srv, when):
    """Issue 22 item 10c: the request is sent and the server never answers (no status line, no headers).
    Stop must end the stream and the reader thread at once, not after the 600 s read timeout."""
    arrived = threading.Event()

    def silent(r):
        arrived.set()
        srv.release.wait(30)  # no headers, nothing
    srv.routes[("POST", "/v1/completions")] = silent
    m = connect(srv.url, offline=False, verify=False)
    stream = m.complete("x", P)
    if when == "at once":
        stream.cancel()
    else:
        assert arrived.wait(10)
        threading.Timer(0.3, stream.cancel).start()
    t0 = time.monotonic()
    final = stream.next_event()
    assert final.finish_reason == "cancelled" and final.error is None
    stream._thread.join(2)
    assert not stream._thread.is_alive(), "the reader still waits on the silent server"
    assert time.monotonic() - t0 < 2.5
    # the endpoint still works afterwards (the model's other requests are untouched)
    def complete(r):
        r.sse_start()
        r.sse(completion_chunk("Hi", -0.1, finish="stop"))
        r.raw(b"data: [DONE]\n\n")
    srv.routes[("POST", "/v1/completions")] = complete
    tokens, final = drain(m.complete("x", P))
    assert final.finish_reason == "stop" and [t.text for t in tokens] == ["Hi"]


@pytest.mark.parametrize("payload,what", [
    (b"data: {not json\n\n", "malformed JSON"),
    (b"<html>502 Bad Gateway</html>\n", "not server-sent events"),
    (b'data: {"id": 1}\n\n', "without choices"),
])
def test_malformed_stream_is_one_line_and_keeps_text(srv, payload, what):
    def bad(r):
        r.sse_start()
        r.sse(completion_chunk(" Paris", -0.25))
        r.raw(payload)
    srv.routes[("POST", "/v1/completions")] = bad
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("x", P))
    assert isinstance(final.error, ServerProtocolError) and what in one_line(final.error)
    assert final.text == " Paris" and "partial reply is kept" in str(final.error)


def test_malformed_json_reply(srv):
    srv.routes[("GET", "/v1/models")] = lambda r: (r.send_response(200), r.send_header("Content-Length", "5"),
                                                   r.end_headers(), r.raw(b"{oops"))
    with pytest.raises(ServerProtocolError) as err:
        connect(srv.url, offline=False)
    assert "not JSON" in one_line(err.value)


@pytest.mark.parametrize("logprob,what", [(float("nan"), "nan"), (None, "no usable logprob")])
def test_nan_or_missing_logprobs(srv, logprob, what):
    def nan(r):
        r.sse_start()
        r.sse(completion_chunk(" Paris", -0.25))
        r.raw(b"data: " + json.dumps(completion_chunk(".", logprob)).encode() + b"\n\n")  # NaN is not JSON...
    srv.routes[("POST", "/v1/completions")] = nan
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("x", P))
    assert isinstance(final.error, ServerProtocolError) and what in one_line(final.error)
    assert final.text == " Paris"


def test_text_without_the_logprobs_asked_for(srv):
    def missing(r):
        r.sse_start()
        r.sse({"choices": [{"index": 0, "text": " Paris", "finish_reason": None, "logprobs": None}]})
    srv.routes[("POST", "/v1/completions")] = missing
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("x", P))
    assert isinstance(final.error, ServerProtocolError) and "without the logprobs" in one_line(final.error)


def test_context_overflow_reported_by_vllm_shape(srv):
    # vLLM's 400 (vllm/entrypoints/openai/serving_engine.py _validate_input)
    srv.routes[("POST", "/v1/completions")] = lambda r: r.json({"object": "error", "message": (
        "This model's maximum context length is 2048 tokens. However, you requested 5000 tokens (4992 in the "
        "messages, 8 in the completion). Please reduce the length of the messages or completion."),
        "type": "BadRequestError", "param": None, "code": 400}, 400)
    m = connect(srv.url, offline=False, verify=False)
    _, final = drain(m.complete("x" * 10000, P))
    assert isinstance(final.error, ContextOverflow) and "maximum context length" in one_line(final.error)


def test_a_correct_server_passes_the_scoring_check(srv):
    """The check is not a blanket refusal: a server whose echo scores agree with its generation keeps
    scoring on (and the echo is aligned from its end, so a BOS token's text at the start does no harm)."""
    lp = {" Paris": -0.26, ".": -0.39, "\n": -0.95, "The": -1.1}

    def complete(r):
        body = r.body
        if body.get("echo"):
            prompt = body["prompt"]
            pieces = ["<s>", "The", " capital", " of", " France", " is"]
            rest = prompt[len(VERIFY_PROMPT):]
            for tok in lp:
                if rest.startswith(tok):
                    pieces.append(tok)
                    rest = rest[len(tok):]
            gen = "!"
            toks = pieces + [gen]
            offs, at = [], 0
            for t in toks:
                offs.append(at)
                at += len(t)
            lps = [None, -9.0, -5.0, -1.0, -2.0, -1.5] + [lp[t] for t in pieces[6:]] + [-3.0]
            r.json({"choices": [{"text": prompt + gen, "finish_reason": "length", "logprobs": {
                "tokens": toks, "token_logprobs": lps, "top_logprobs": [None] + [{t: v} for t, v in zip(toks[1:], lps[1:])],
                "text_offset": offs}}]})
            return
        r.sse_start()
        for i, (t, v) in enumerate(lp.items()):
            r.sse(completion_chunk(t, v + 0.001, finish="length" if i == 3 else None))
        r.raw(b"data: [DONE]\n\n")
    srv.routes[("POST", "/v1/completions")] = complete
    m = connect(srv.url, offline=False)
    assert m.capabilities.scoring, m.capabilities.scoring_note
    res = m.score(VERIFY_PROMPT, " Paris.")
    assert [(t.text, t.logprob) for t in res.tokens] == [(" Paris", -0.26), (".", -0.39)]
    assert math.isclose(res.total_logprob, -0.65)
