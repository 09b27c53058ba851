"""Against a REAL ``python -m llama_cpp.server`` (llama-cpp-python 0.3.36) serving SmolLM2 on loopback.

Its OpenAI ``/v1/completions`` with ``echo`` returns prompt logprobs shifted by one position; the scoring
check (the logprob of a token the server generated must equal the logprob it gives the same token when that
text is scored) must catch it, turn scoring off with a one-line reason, and leave generation working.
"""

from __future__ import annotations

import math

import pytest

from desktop.core.errors import EngineError
from desktop.engine.remote import VERIFY_PROMPT, connect
from desktop.engine.types import FinalEvent, SamplingParams
from tests.remote.faultserver import drain

GREEDY = SamplingParams(temperature=0.0, top_k=1, max_tokens=6, logprobs=3, seed=1, repeat_penalty=1.0)


@pytest.fixture(scope="module")
def remote(llama_cpp_server):
    with connect(llama_cpp_server, offline=False) as m:
        yield m




def test_detected_as_llama_cpp_python_and_generation_streams_logprobs(remote):
    assert remote.facts.engine == "llama-cpp-python"
    assert remote.capabilities.remote and remote.capabilities.queues
    tokens, final = drain(remote.complete(VERIFY_PROMPT, GREEDY))
    assert final.error is None and final.finish_reason == "length"
    assert final.text == "".join(t.text for t in tokens) and final.text.startswith(" Paris")
    assert len(tokens) == 6
    for t in tokens:
        assert math.isfinite(t.logprob) and t.logprob <= 0
        assert len(t.top) == 3 and t.top[0].text == t.text  # greedy: the chosen token is the top one


def test_generated_logprobs_match_tandems_own_scores(remote, local_smol):
    """The server's numbers for tokens it generated are right (the local engine agrees)..."""
    tokens, final = drain(remote.complete(VERIFY_PROMPT, GREEDY))
    own = local_smol.score(VERIFY_PROMPT, final.text)
    assert [t.text for t in own.tokens][:3] == [t.text for t in tokens][:3]
    for server_tok, own_tok in zip(tokens[:3], own.tokens[:3]):
        assert server_tok.logprob == pytest.approx(own_tok.logprob, abs=0.05)


def test_shifted_echo_logprobs_turn_scoring_off_with_a_reason(remote, local_smol):
    """...but its echo scores are shifted by one token, so the check turns scoring off and says why."""
    caps = remote.capabilities
    assert caps.scoring is False
    assert "' Paris'" in caps.scoring_note and "when scoring the same text" in caps.scoring_note
    assert "\n" not in caps.scoring_note
    # the proof that the server is wrong, not the check: its raw echo scores disagree with Tandem's own
    raw = remote._score_text(VERIFY_PROMPT, " Paris", 0)
    own = local_smol.score(VERIFY_PROMPT, " Paris")
    assert own.tokens[0].logprob == pytest.approx(-0.26, abs=0.05)
    assert abs(raw.tokens[0].logprob - own.tokens[0].logprob) > 2.0
    with pytest.raises(EngineError, match="when scoring the same text"):
        remote.score(VERIFY_PROMPT, " Paris")


def test_chat_and_tokenize_keep_working(remote, local_smol):
    tokens, final = drain(remote.chat([{"role": "user", "content": "Say hello."}], GREEDY))
    assert final.error is None and final.text.strip()
    assert remote.tokenize(" Paris is big") [-3:] == local_smol.tokenize(" Paris is big")[-3:]
    assert remote.capabilities.server_template is False
    with pytest.raises(EngineError, match="can't show the exact prompt"):
        remote.render_chat([{"role": "user", "content": "hi"}])


def test_cancel_mid_generation_keeps_the_partial_reply(remote):
    stream = remote.complete("Once upon a time", SamplingParams(max_tokens=200, temperature=0.0, logprobs=1))
    first = stream.next_event()
    assert not isinstance(first, FinalEvent)
    stream.cancel()
    final = stream.next_event()
    assert isinstance(final, FinalEvent) and final.finish_reason == "cancelled"
    assert final.text.startswith(first.text) and final.error is None


def test_context_overflow_reported_by_the_server_is_one_line(remote):
    """This server answers a streamed overflow with 200 and an empty stream; Tandem asks once more,
    unstreamed and for one token, and reports the server's own reason."""
    from desktop.core.errors import ContextOverflow

    _, final = drain(remote.complete("word " * 3000, SamplingParams(max_tokens=4)))
    assert isinstance(final.error, ContextOverflow), final
    assert "maximum context length" in str(final.error) and "\n" not in str(final.error)


def test_unknown_model_on_a_real_server(llama_cpp_server):
    from desktop.core.errors import UnknownModel

    with pytest.raises(UnknownModel, match="does not serve a model 'gpt-4'"):
        connect(llama_cpp_server, "gpt-4", offline=False)
