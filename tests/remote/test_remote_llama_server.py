"""Against a REAL llama.cpp ``llama-server`` (built from the llama.cpp inside the installed llama-cpp-python
by bench/llama_server.py) serving SmolLM2-135M-Instruct on loopback. Its numbers and its chat template are
compared with Tandem's own engine running the same GGUF."""

from __future__ import annotations

import math

import pytest

from desktop.core.errors import ContextOverflow, EngineError
from desktop.engine.remote import VERIFY_PROMPT, connect
from desktop.engine.types import SamplingParams
from tests.remote.faultserver import drain

GREEDY = SamplingParams(temperature=0.0, top_k=1, max_tokens=6, logprobs=3, seed=1, repeat_penalty=1.0)


@pytest.fixture(scope="module")
def remote(llama_server):
    with connect(llama_server, offline=False) as m:
        yield m



def test_detected_with_its_context_template_and_capabilities(remote):
    assert remote.facts.engine == "llama-server"
    info = remote.info
    assert info.n_ctx == 1024 and info.kind == "instruct" and info.backend.startswith("llama-server @ 127.0.0.1:")
    assert "im_start" in (info.chat_template or "")
    caps = remote.capabilities
    assert caps.server_template and caps.tokenizer and caps.remote
    assert caps.scoring is False
    assert caps.scoring_note == ("cross-scoring needs a server that scores given text (vLLM, SGLang); "
                                 "this llama-server can't")
    with pytest.raises(EngineError, match="this llama-server can't"):
        remote.score(VERIFY_PROMPT, " Paris")


def test_generation_logprobs_and_token_ids_match_tandems_own_engine(remote, local_smol):
    tokens, final = drain(remote.complete(VERIFY_PROMPT, GREEDY))
    assert final.error is None and final.finish_reason == "length" and len(tokens) == 6
    assert final.text.startswith(" Paris") and final.stats.prompt_tokens > 0 and final.stats.decode_tps > 0
    own = local_smol.score(VERIFY_PROMPT, final.text)
    for server_tok, own_tok in list(zip(tokens, own.tokens))[:3]:
        assert server_tok.text == own_tok.text and server_tok.token_id == own_tok.token_id
        assert server_tok.logprob == pytest.approx(own_tok.logprob, abs=0.05)
    for t in tokens:
        assert math.isfinite(t.logprob) and len(t.top) == 3 and t.top[0].token_id == t.token_id


def test_render_chat_is_the_servers_template_and_matches_the_gguf(remote, local_smol):
    for system in (None, "You are terse."):
        msgs = [{"role": "user", "content": "What is 2+2?"}]
        assert remote.render_chat(msgs, system=system) == local_smol.render_chat(msgs, system=system)


def test_chat_and_tokenize(remote, local_smol):
    tokens, final = drain(remote.chat([{"role": "user", "content": "Say hello."}], GREEDY))
    assert final.error is None and final.text.strip() and tokens
    assert remote.tokenize("The capital of France") == local_smol.tokenize("The capital of France")


def test_grammar_is_sent_to_llama_server(remote):
    _, final = drain(remote.complete("Is the sky blue? Answer:", SamplingParams(
        max_tokens=4, temperature=0.0, grammar='root ::= " yes" | " no"')))
    assert final.error is None and final.text in (" yes", " no")


def test_context_overflow_reported_by_the_server_is_one_line(remote):
    _, final = drain(remote.complete("word " * 3000, SamplingParams(max_tokens=4)))
    assert isinstance(final.error, ContextOverflow), final
    assert "does not fit" in str(final.error) and "\n" not in str(final.error)


def test_cancel_mid_generation_keeps_the_partial_reply(remote):
    stream = remote.complete("Once upon a time", SamplingParams(max_tokens=400, temperature=0.0))
    first = stream.next_event()
    stream.cancel()
    final = stream.next_event()
    assert final.finish_reason == "cancelled" and final.text.startswith(first.text)
    # the server is free again at once: the next request works
    _, again = drain(remote.complete(VERIFY_PROMPT, GREEDY))
    assert again.error is None and again.text.startswith(" Paris")
