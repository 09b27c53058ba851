"""vLLM, SGLang and Ollama need GPUs or their own install and can't run here. These tests pin Tandem's
request building and response parsing to each engine's DOCUMENTED shapes, served by a loopback stand-in:

- vLLM: vllm/entrypoints/openai/protocol.py (CompletionRequest/CompletionStreamResponse, CompletionLogProbs,
  TokenizeChatRequest, TokenizeResponse {count, max_model_len, tokens, token_strs}, DetokenizeResponse
  {prompt}); /version returns {"version": ...} (vllm/entrypoints/openai/api_server.py show_version);
  /v1/models entries carry max_model_len (ModelCard).
- SGLang: python/sglang/srt/managers/io_struct.py GenerateReqInput (text, sampling_params, return_logprob,
  logprob_start_len, top_logprobs_num, return_text_in_logprobs, stream); meta_info's
  input/output_token_logprobs are [logprob, token_id, text] triples, the first input one None; streamed text
  is cumulative; /get_model_info returns {model_path, tokenizer_path, is_generation}.
- Ollama: api/types.go (GenerateRequest raw/logprobs/top_logprobs; GenerateResponse response/done/
  done_reason/prompt_eval_count/eval_count/*_duration in ns and Logprob {token, logprob, bytes,
  top_logprobs}); docs/api.md (/api/tags, /api/version, NDJSON streaming).
"""

from __future__ import annotations

import json

import pytest

from desktop.core.errors import ChatTemplateError, EngineError
from desktop.engine.remote import VERIFY_PROMPT, connect
from desktop.engine.types import SamplingParams
from tests.remote.faultserver import FaultServer, drain

GEN = [(" Paris", 1, -0.26), (".", 2, -0.39), ("\n", 3, -0.95), ("The", 4, -1.10)]
PROMPT_TOKENS = [("<|begin_of_text|>", 0, None), ("The", 10, -9.0), (" capital", 11, -5.0), (" of", 12, -1.0),
                 (" France", 13, -2.0), (" is", 14, -1.5)]



def _continuation_tokens(rest: str):
    out = []
    for text, tid, lp in GEN:
        if rest.startswith(text):
            out.append((text, tid, lp))
            rest = rest[len(text):]
    return out


# ---------------------------------------------------------------------------------------------------- vLLM
@pytest.fixture
def vllm():
    srv = FaultServer()
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"object": "list", "data": [{
        "id": "meta-llama/Llama-3.1-70B-Instruct", "object": "model", "created": 1, "owned_by": "vllm",
        "root": "meta-llama/Llama-3.1-70B-Instruct", "parent": None, "max_model_len": 8192, "permission": []}]})
    srv.routes[("GET", "/version")] = lambda r: r.json({"version": "0.11.0"})

    def tokenize(r):
        if "messages" in r.body:
            text = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>"
                           for m in r.body["messages"]) + "<|start_header_id|>assistant<|end_header_id|>\n\n"
            r.json({"count": len(text), "max_model_len": 8192, "tokens": [ord(c) for c in text], "token_strs": None})
        else:
            r.json({"count": 2, "max_model_len": 8192, "tokens": [791, 6864], "token_strs": None})
    srv.routes[("POST", "/tokenize")] = tokenize
    srv.routes[("POST", "/detokenize")] = lambda r: r.json({"prompt": "".join(chr(t) for t in r.body["tokens"])})

    def completions(r):
        b = r.body
        if b.get("echo"):  # a non-streamed CompletionResponse with the prompt's logprobs
            rows = PROMPT_TOKENS + [(t, i, lp) for t, i, lp in _continuation_tokens(b["prompt"][len(VERIFY_PROMPT):])]
            rows.append(("!", 99, -3.0))  # the max_tokens=1 token vLLM generates after the echo
            offs, at = [], 0
            for t, _, _ in rows:
                offs.append(at)
                at += len(t)
            r.json({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": b["model"],
                    "choices": [{"index": 0, "text": b["prompt"] + "!", "finish_reason": "length", "stop_reason": None,
                                 "logprobs": {"text_offset": offs, "token_logprobs": [lp for _, _, lp in rows],
                                              "tokens": [t for t, _, _ in rows],
                                              "top_logprobs": [None] + [{t: lp} for t, _, lp in rows[1:]]}}],
                    "usage": {"prompt_tokens": 8, "total_tokens": 9, "completion_tokens": 1}})
            return
        r.sse_start()
        for i, (t, _, lp) in enumerate(GEN):
            r.sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": b["model"],
                   "choices": [{"index": 0, "text": t, "stop_reason": None,
                                "finish_reason": "length" if i == len(GEN) - 1 else None,
                                "logprobs": {"text_offset": [i], "token_logprobs": [lp], "tokens": [t],
                                             "top_logprobs": [{t: lp, "x": lp - 3}]}}], "usage": None})
        r.sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": b["model"], "choices": [],
               "usage": {"prompt_tokens": 6, "total_tokens": 10, "completion_tokens": 4}})
        r.raw(b"data: [DONE]\n\n")
    srv.routes[("POST", "/v1/completions")] = completions
    yield srv
    srv.stop()


def test_vllm_detected_with_context_template_and_checked_scoring(vllm):
    m = connect(vllm.url, offline=False)
    assert m.facts.engine == "vllm" and m.facts.version == "0.11.0"
    assert m.info.n_ctx == 8192 and m.info.kind == "instruct" and m.info.backend.startswith("vLLM @ 127.0.0.1")
    caps = m.capabilities
    assert caps.scoring and caps.server_template and caps.tokenizer and caps.top_logprobs == 20


def test_vllm_requests_follow_completion_request(vllm):
    m = connect(vllm.url, offline=False, verify=False)
    tokens, final = drain(m.complete("The capital of France is", SamplingParams(
        max_tokens=4, temperature=0.7, top_k=0, logprobs=2, seed=5, stop=("\n\n",))))
    body = next(b for meth, p, _, b in vllm.requests if p == "/v1/completions")
    assert body["model"] == "meta-llama/Llama-3.1-70B-Instruct" and body["stream"] is True
    assert body["logprobs"] == 2 and body["max_tokens"] == 4 and body["seed"] == 5 and body["stop"] == ["\n\n"]
    assert body["top_k"] == -1  # vLLM's "off" (SamplingParams.top_k)
    assert "repetition_penalty" in body and "repeat_penalty" not in body
    assert [t.text for t in tokens] == [t for t, _, _ in GEN]
    assert tokens[0].top[0].text == " Paris" and len(tokens[0].top) == 2
    assert final.finish_reason == "length" and final.stats.prompt_tokens == 6 and final.stats.completion_tokens == 4


def test_vllm_render_chat_is_the_servers_own_template(vllm):
    m = connect(vllm.url, offline=False, verify=False)
    text = m.render_chat([{"role": "user", "content": "Hi"}], system="Be brief.")
    assert text == ("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    body = [b for _, p, _, b in vllm.requests if p == "/tokenize" and "messages" in b][-1]
    assert body["add_generation_prompt"] is True


def test_vllm_score_aligns_echo_past_the_bos_token(vllm):
    m = connect(vllm.url, offline=False, verify=False)
    res = m.score(VERIFY_PROMPT, " Paris.", top_k=1)
    assert [(t.text, t.logprob, t.rank) for t in res.tokens] == [(" Paris", -0.26, 1), (".", -0.39, 1)]
    assert m.count_tokens("The capital") == 2


# -------------------------------------------------------------------------------------------------- SGLang
@pytest.fixture
def sglang():
    srv = FaultServer()
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"object": "list", "data": [
        {"id": "Qwen/Qwen2.5-72B", "object": "model", "owned_by": "sglang", "root": "Qwen/Qwen2.5-72B"}]})
    srv.routes[("GET", "/get_model_info")] = lambda r: r.json(
        {"model_path": "Qwen/Qwen2.5-72B", "tokenizer_path": "Qwen/Qwen2.5-72B", "is_generation": True})

    def generate(r):
        b = r.body
        if b.get("logprob_start_len") == 0:
            rows = [[lp, tid, t] for t, tid, lp in PROMPT_TOKENS[1:]]
            rows[0][0] = None  # the first input token has no logprob
            rows += [[lp, tid, t] for t, tid, lp in _continuation_tokens(b["text"][len(VERIFY_PROMPT):])]
            r.json({"text": "", "meta_info": {"id": "1", "finish_reason": {"type": "length", "length": 0},
                                              "prompt_tokens": len(rows), "completion_tokens": 0,
                                              "input_token_logprobs": rows, "output_token_logprobs": [],
                                              "input_top_logprobs": [None] + [[r_] for r_ in rows[1:]]}})
            return
        r.sse_start()
        text, out = "", []
        for i, (t, tid, lp) in enumerate(GEN):
            text += t
            out.append([lp, tid, t])
            last = i == len(GEN) - 1
            r.sse({"text": text, "output_ids": [x[1] for x in out], "meta_info": {
                "id": "1", "finish_reason": {"type": "length", "length": 4} if last else None,
                "prompt_tokens": 6, "completion_tokens": i + 1, "output_token_logprobs": list(out),
                "output_top_logprobs": [[[x[0], x[1], x[2]]] for x in out]}})
        r.raw(b"data: [DONE]\n\n")
    srv.routes[("POST", "/generate")] = generate
    yield srv
    srv.stop()


def test_sglang_generate_request_and_cumulative_stream(sglang):
    m = connect(sglang.url, offline=False)
    assert m.facts.engine == "sglang" and m.capabilities.scoring, m.capabilities.scoring_note
    tokens, final = drain(m.complete("The capital of France is", SamplingParams(max_tokens=4, logprobs=1, seed=3)))
    body = [b for _, p, _, b in sglang.requests if p == "/generate" and b.get("stream")][-1]
    assert body["return_logprob"] is True and body["top_logprobs_num"] == 1 and body["return_text_in_logprobs"]
    assert body["sampling_params"]["max_new_tokens"] == 4 and body["sampling_params"]["sampling_seed"] == 3
    assert [(t.text, t.token_id, t.logprob) for t in tokens] == GEN  # cumulative chunks -> each token once
    assert final.text == " Paris.\nThe" and final.finish_reason == "length"


def test_sglang_score_uses_logprob_start_len(sglang):
    m = connect(sglang.url, offline=False, verify=False)
    res = m.score(VERIFY_PROMPT, " Paris.")
    assert [(t.text, t.token_id, t.logprob) for t in res.tokens] == [(" Paris", 1, -0.26), (".", 2, -0.39)]
    body = [b for _, p, _, b in sglang.requests if p == "/generate"][-1]
    assert body["sampling_params"]["max_new_tokens"] == 0 and body["logprob_start_len"] == 0
    assert not m.capabilities.server_template
    with pytest.raises(ChatTemplateError, match="can't show the exact prompt"):
        m.render_chat([{"role": "user", "content": "hi"}])


# -------------------------------------------------------------------------------------------------- Ollama
@pytest.fixture
def ollama():
    srv = FaultServer()
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"object": "list", "data": [
        {"id": "llama3.1:70b", "object": "model", "created": 1, "owned_by": "library"}]})
    srv.routes[("GET", "/api/tags")] = lambda r: r.json({"models": [
        {"name": "llama3.1:70b", "model": "llama3.1:70b", "size": 1, "digest": "x",
         "details": {"family": "llama", "parameter_size": "70.6B", "quantization_level": "Q4_K_M"}}]})
    srv.routes[("GET", "/api/version")] = lambda r: r.json({"version": "0.13.0"})

    def generate(r):
        r.send_response(200)
        r.send_header("Content-Type", "application/x-ndjson")
        r.send_header("Connection", "close")
        r.end_headers()
        r.close_connection = True
        for t, _, lp in GEN:
            r.raw(json.dumps({"model": "llama3.1:70b", "created_at": "2025-01-01T00:00:00Z", "response": t,
                              "done": False, "logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                                                           "top_logprobs": [{"token": t, "logprob": lp}]}]}).encode()
                  + b"\n")
        r.raw(json.dumps({"model": "llama3.1:70b", "created_at": "2025-01-01T00:00:00Z", "response": "",
                          "done": True, "done_reason": "length", "total_duration": 1, "prompt_eval_count": 6,
                          "prompt_eval_duration": 200_000_000, "eval_count": 4, "eval_duration": 400_000_000}).encode()
              + b"\n")
    srv.routes[("POST", "/api/generate")] = generate
    yield srv
    srv.stop()


def test_ollama_raw_generate_ndjson(ollama):
    m = connect(ollama.url, offline=False)
    assert m.facts.engine == "ollama" and m.facts.version == "0.13.0"
    caps = m.capabilities
    assert not caps.scoring and "(vLLM, SGLang); this Ollama can't" in caps.scoring_note
    assert not caps.tokenizer and not caps.server_template
    tokens, final = drain(m.complete("The capital of France is", SamplingParams(max_tokens=4, logprobs=1, seed=9)))
    body = [b for _, p, _, b in ollama.requests if p == "/api/generate"][-1]
    assert body["raw"] is True and body["logprobs"] is True and body["top_logprobs"] == 1
    assert body["options"]["num_predict"] == 4 and body["options"]["seed"] == 9
    assert [(t.text, t.logprob) for t in tokens] == [(t, lp) for t, _, lp in GEN]
    assert final.finish_reason == "length" and final.stats.decode_tps == pytest.approx(10.0)
    with pytest.raises(EngineError, match="cross-scoring needs a server that scores given text"):
        m.score("a", "b")


def test_a_remote_model_satisfies_the_model_protocol(vllm):
    from desktop.engine.model import GenerationStream, Model, ModelInfo

    m = connect(vllm.url, offline=False, verify=False)
    assert isinstance(m, Model) and isinstance(m.info, ModelInfo)
    assert m.vocab_id == ""  # a server does not publish its vocabulary
    stream = m.complete("Hi", SamplingParams(max_tokens=2, temperature=0))
    assert isinstance(stream, GenerationStream) and stream.waiting is False
    stream.text()
    m.close()


def test_ollama_has_no_tokenizer_route(ollama):
    m = connect(ollama.url, offline=False, verify=False)
    with pytest.raises(EngineError, match="this Ollama has no tokenizer route"):
        m.count_tokens("hi")


def test_cli_show_prompt_and_score_on_a_vllm_endpoint(vllm, capsys):
    from desktop.cli import main

    assert main(["chat", "--endpoint", vllm.url, "--show-prompt", "Hi"]) == 0
    assert capsys.readouterr().out == ("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                                       "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert main(["score", "--endpoint", vllm.url, "--model", "meta-llama/Llama-3.1-70B-Instruct",
                 "--prompt", VERIFY_PROMPT, "--continuation", " Paris.", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == [{"text": " Paris", "token_id": -1, "logprob": -0.26},
                             {"text": ".", "token_id": -1, "logprob": -0.39}]
    assert out["total_logprob"] == pytest.approx(-0.65)
