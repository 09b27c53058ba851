"""The local ModelHandle as the ``Model`` interface: capabilities, a busy model queues requests (in one place,
the handle), thread splitting over Models, and the typed worker messages round-tripping the pipe."""

from __future__ import annotations

import math
import pickle
import threading

import pytest

from desktop.core.errors import EngineBusy
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, load_model
from desktop.engine.backends import Hardware, hardware, open_model, split_threads
from desktop.engine.messages import Cancel, Chat, Complete, Done, Failed, Final, Score, Tagged, Token, VocabId
from desktop.engine.model import Capabilities, GenerationStream, Model, ModelInfo

OPTS = LoadOptions(threads=1, n_ctx=1024)
LONG = SamplingParams(max_tokens=60, seed=3, temperature=1.0)


@pytest.fixture(scope="module")
def base(tiny_base):
    with open_model(tiny_base, OPTS) as handle:
        yield handle


def test_the_local_handle_is_a_model_that_queues(base):
    assert isinstance(base, Model) and isinstance(base.info, ModelInfo)
    assert base.vocab_id.startswith(f"{base.info.n_vocab}:")
    caps = base.capabilities
    assert isinstance(caps, Capabilities) and caps.queues and not caps.remote and caps.top_logprobs == 20
    stream = base.complete("hello", SamplingParams(max_tokens=2, seed=1))
    assert isinstance(stream, GenerationStream)
    stream.text()


def test_a_second_request_waits_for_the_first_then_runs(base):
    first = base.complete("Once upon a time", LONG)
    second = base.complete("The sea", SamplingParams(max_tokens=5, seed=1))
    assert second.waiting and not first.waiting
    done: list = []
    drain = threading.Thread(target=lambda: done.append(list(first)[-1]))
    drain.start()
    final = list(second)[-1]
    drain.join(60)
    assert done and done[0].finish_reason == "length" and done[0].error is None  # not replaced
    assert final.error is None and final.finish_reason in ("stop", "length") and not second.waiting


def test_a_waiting_request_cancelled_ends_unsent(base):
    first = base.complete("Once upon a time", LONG)
    second = base.complete("The sea", LONG)
    second.cancel()
    assert second.next_event() == FinalEvent("cancelled", "")
    assert list(first)[-1].error is None


def test_a_blocking_call_waits_for_another_threads_stream(base):
    stream = base.complete("Once upon a time", LONG)
    scored: list = []
    scorer = threading.Thread(target=lambda: scored.append(base.score("Once", " upon a time")))
    scorer.start()
    final = list(stream)[-1]
    scorer.join(60)
    assert final.error is None and final.finish_reason == "length"
    assert scored and len(scored[0].tokens) >= 1


def test_a_blocking_call_on_its_own_unfinished_stream_says_why_it_cant(base):
    stream = base.complete("Once upon a time", LONG)
    with pytest.raises(EngineBusy, match="still generating"):
        base.count_tokens("hello")
    stream.cancel()
    assert list(stream)[-1].finish_reason in ("cancelled", "length")


def test_split_threads_shares_the_cores_between_local_models(tiny_base, base):
    assert split_threads([base]) == split_threads([base, base]) == 1 and split_threads([]) is None
    with load_model(tiny_base, LoadOptions(threads=4, n_ctx=256)) as four:
        assert split_threads([base, four]) == 2


def test_hardware_is_a_typed_value():
    report = hardware()
    assert isinstance(report, Hardware) and report.build_backend
    assert all(g.memory_total >= g.memory_free >= 0 for g in report.gpus)


@pytest.mark.parametrize("message", [
    Complete("hi", SamplingParams(seed=1), 2), Chat([{"role": "user", "content": "hi"}], None, SamplingParams()),
    Score("a", "b", True, "sys"), Score("a", [5, 6], False, None, 3), VocabId(), Token("x", 5, math.inf, (("y", 6, -1.5),)), Final(FinalEvent("stop", "x")),
    Done([1, 2]), Failed(EngineBusy("busy")), Cancel(), Tagged(7, Complete("hi", SamplingParams())),
    Tagged(3, Final(FinalEvent("cancelled", ""))),
])
def test_worker_messages_pickle_as_themselves(message):
    again = pickle.loads(pickle.dumps(message))
    assert type(again) is type(message)
    assert repr(again) == repr(message)
