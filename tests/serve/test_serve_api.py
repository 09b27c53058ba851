"""The routes and their scoring semantics on the tiny models: the openai SDK and plain httpx."""

from __future__ import annotations

import json
import math

import httpx
import openai
import pytest

from desktop.serve import ServerConfig, ServerHandle


def sdk(handle, model_id: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=handle.model_url(model_id), api_key="none", max_retries=0, timeout=60)


def test_openai_sdk_completion_chat_stream_logprobs(one_server):
    c = sdk(one_server, "tiny-instruct")
    assert [m.id for m in c.models.list().data] == ["tiny-instruct"]
    r = c.completions.create(model="tiny-instruct", prompt="hello world", max_tokens=5, temperature=0,
                             logprobs=3)
    choice = r.choices[0]
    assert r.usage.completion_tokens == len(choice.logprobs.tokens) >= 1
    assert "".join(t for t in choice.logprobs.tokens) .startswith(choice.text[:1])
    assert all(len(top) >= 1 for top in choice.logprobs.top_logprobs)
    streamed = list(c.completions.create(model="tiny-instruct", prompt="hello world", max_tokens=5,
                                         temperature=0, stream=True))
    assert "".join(ch.choices[0].text for ch in streamed) == choice.text
    assert streamed[-1].choices[0].finish_reason == choice.finish_reason
    chat = c.chat.completions.create(model="tiny-instruct", messages=[{"role": "user", "content": "hi"}],
                                     max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
    assert chat.choices[0].message.role == "assistant"
    assert len(chat.choices[0].logprobs.content) == chat.usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 for t in chat.choices[0].logprobs.content)
    pieces = list(c.chat.completions.create(model="tiny-instruct", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=4, temperature=0, stream=True))
    assert "".join(p.choices[0].delta.content or "" for p in pieces) == chat.choices[0].message.content


def test_echo_logprobs_equal_score_tokens(one_server, instruct_model, client):
    ids = instruct_model.tokenize("the quick brown fox jumps", add_bos=False)[:6]
    scores = instruct_model.score_tokens(ids, top_k=2, next_top_k=2)
    body = client.post("/v1/completions", json={"prompt": ids, "echo": True, "logprobs": 2, "max_tokens": 1,
                                                "temperature": 0}).json()
    lp = body["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == len(ids) + 1
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    for j in range(1, len(ids)):
        assert lp["token_logprobs"][j] == pytest.approx(scores.tokens[j].logprob, abs=1e-6)
        assert max(lp["top_logprobs"][j].values()) == pytest.approx(scores.tokens[j].top[0].logprob, abs=1e-6)
    greedy = scores.next_top[0]
    assert lp["token_logprobs"][-1] == pytest.approx(greedy.logprob, abs=1e-6)
    assert max(lp["top_logprobs"][-1].values()) == lp["token_logprobs"][-1]  # lm-eval's is_greedy is exact
    assert body["usage"]["prompt_tokens"] == len(ids)
    # the same numbers through the generating path (no echo, so no scoring pass)
    plain = client.post("/v1/completions", json={"prompt": ids, "logprobs": 2, "max_tokens": 1,
                                                 "temperature": 0}).json()["choices"][0]["logprobs"]
    assert plain["token_logprobs"][0] == pytest.approx(greedy.logprob, abs=1e-5)


def test_max_tokens_zero_echo_scores_the_prompt_only(instruct_model, client):
    ids = instruct_model.tokenize("one two three", add_bos=False)
    body = client.post("/v1/completions", json={"prompt": ids, "echo": True, "logprobs": 0,
                                                "max_tokens": 0}).json()
    lp = body["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(ids) and body["usage"]["completion_tokens"] == 0
    assert body["choices"][0]["text"] == instruct_model.detokenize(ids)


def _eos_prompt(model) -> list[int]:
    """A two-token prompt after which the model's greedy next token is its end token (searched, not assumed)."""
    eos = model.info.eos_id
    for t in range(3, model.info.n_vocab):
        ids = [model.info.bos_id, t]
        if model.score_tokens(ids, next_top_k=1).next_top[0].token_id == eos:
            return ids
    pytest.fail("no prompt of this random model has its end token as the greedy next token")


def test_eos_at_max_tokens_one_is_returned(instruct_model, client):
    ids = _eos_prompt(instruct_model)
    eos_text = instruct_model.info.eos_text
    for extra in ({"echo": True}, {}):  # echo: lm-eval's scoring pass; without: the generating path
        body = client.post("/v1/completions", json={"prompt": ids, "logprobs": 1, "max_tokens": 1,
                                                    "temperature": 0, **extra}).json()
        choice = body["choices"][0]
        lp = choice["logprobs"]
        assert len(lp["token_logprobs"]) == (len(ids) if extra else 0) + 1
        assert lp["tokens"][-1] == eos_text and choice["finish_reason"] == "stop"
        assert math.isfinite(lp["token_logprobs"][-1]) and body["usage"]["completion_tokens"] == 1


@pytest.mark.parametrize("model_id,adds_bos", [("tiny-base", True), ("tiny-nobos", False)])
def test_text_prompt_gets_bos_as_the_tokenizer_adds_it(three_server, model_id, adds_bos):
    with httpx.Client(base_url=three_server.url, timeout=60) as c:
        info = c.get(f"/models/{model_id}/tokenizer_info").json()
        assert info["add_bos_token"] is adds_bos
        body = c.post(f"/models/{model_id}/v1/completions", json={"prompt": "hello world", "echo": True,
                                                                   "logprobs": 1, "max_tokens": 0}).json()
        tokens = body["choices"][0]["logprobs"]["tokens"]
        assert (tokens[0] == info["bos_token"]) is adds_bos
        ids = c.post(f"/models/{model_id}/tokenize", json={"prompt": "hello world"}).json()["tokens"]
        assert len(ids) == len(tokens) == body["usage"]["prompt_tokens"]
        assert body["choices"][0]["text"] == "hello world"


def test_tokenizer_routes_for_lm_eval(instruct_model, client):
    info = client.get("/tokenizer_info").json()
    assert info["eos_token"] == instruct_model.info.eos_text
    eos = client.post("/tokenize", json={"prompt": info["eos_token"], "add_special_tokens": False}).json()
    assert eos["tokens"] == [instruct_model.info.eos_id]
    ids = client.post("/tokenize", json={"prompt": "hello world", "add_special_tokens": False}).json()["tokens"]
    assert ids == instruct_model.tokenize("hello world", add_bos=False)
    assert client.post("/detokenize", json={"tokens": ids}).json()["prompt"] == instruct_model.detokenize(ids)
    assert client.post("/detokenize", json={"tokens": [10**9]}).status_code == 400
    assert client.get("/health").json() == {"status": "ok"}


def test_several_models_roots(three_server):
    with httpx.Client(base_url=three_server.url, timeout=60) as c:
        assert sorted(m["id"] for m in c.get("/v1/models").json()["data"]) == ["tiny-base", "tiny-instruct",
                                                                                 "tiny-nobos"]
        r = c.post("/tokenize", json={"prompt": "hi"})
        assert r.status_code == 400 and "/models/tiny-base/tokenize" in r.json()["error"]["message"]
        assert c.post("/tokenize", json={"prompt": "hi", "model": "tiny-base"}).status_code == 200
        r = c.post("/v1/completions", json={"prompt": "hi", "model": "nope"})
        assert r.status_code == 404 and "tiny-nobos" in r.json()["error"]["message"]
        assert c.post("/models/nope/tokenize", json={"prompt": "hi"}).status_code == 404
        base = c.post("/models/tiny-base/v1/completions", json={"prompt": [1, 5, 6], "max_tokens": 2,
                                                                 "temperature": 0}).json()
        assert base["model"] == "tiny-base"
        chat = c.post("/models/tiny-base/v1/chat/completions", json={"messages": [{"role": "user",
                                                                                   "content": "hi"}]})
        assert chat.status_code == 400 and chat.json()["error"]["message"]  # a base model has no template


def test_batch_of_prompts_and_stop_strings(instruct_model, client):
    ids = instruct_model.tokenize("hello world", add_bos=False)
    body = client.post("/v1/completions", json={"prompt": [ids, ids[:1]], "max_tokens": 3,
                                                "temperature": 0}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    full = client.post("/v1/completions", json={"prompt": "a b c", "max_tokens": 12, "temperature": 0}).json()
    text = full["choices"][0]["text"]
    stop = text.strip()[:2] or text[:1]
    if not stop:
        pytest.skip("the random model wrote nothing to stop on")
    cut = client.post("/v1/completions", json={"prompt": "a b c", "max_tokens": 12, "temperature": 0,
                                               "stop": [stop]}).json()["choices"][0]
    assert cut["text"] == text[:text.index(stop)] and cut["finish_reason"] == "stop"


def test_bad_input_errors(client):
    def error(r, status):
        assert r.status_code == status, r.text
        e = r.json()["error"]
        assert set(e) == {"message", "type", "code"} and e["message"]
        return e["message"]

    error(client.post("/v1/completions", content=b"{nope", headers={"content-type": "application/json"}), 400)
    error(client.post("/v1/completions", json={"prompt": "x", "max_tokens": -1}), 400)
    error(client.post("/v1/completions", json={"prompt": "x", "logprobs": 99}), 400)
    error(client.post("/v1/completions", json={"max_tokens": 2}), 400)
    error(client.post("/v1/completions", json={"prompt": []}), 400)
    message = error(client.post("/v1/completions", json={"prompt": [5] * 600}), 400)
    assert "512" in message and "600" in message
    capped = client.post("/v1/completions", json={"prompt": [5] * 500, "max_tokens": 100, "temperature": 0,
                                                   "unknown_field": 1}).json()
    assert capped["usage"]["max_tokens_capped_to"] == 12 and capped["usage"]["completion_tokens"] <= 12
    error(client.get("/no/such/route"), 404)
    assert client.get("/health").status_code == 200  # and the server still serves


def test_body_limit_key_and_cors(instruct_model):
    config = ServerConfig(port=0, api_key="sekrit", max_body_bytes=1000, cors_origins=("http://ok.test",))
    with ServerHandle({"m": instruct_model}, config) as handle, httpx.Client(base_url=handle.url) as c:
        auth = {"Authorization": "Bearer sekrit"}
        assert c.post("/tokenize", json={"prompt": "hi"}).status_code == 401
        assert c.post("/tokenize", json={"prompt": "hi"}, headers={"Authorization": "Bearer no"}).status_code == 401
        assert c.post("/tokenize", json={"prompt": "hi"}, headers=auth).status_code == 200
        r = c.post("/tokenize", json={"prompt": "x" * 2000}, headers=auth)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = c.get("/v1/models", headers={**auth, "Origin": "http://ok.test"})
        assert r.headers.get("access-control-allow-origin") == "http://ok.test"
    with ServerHandle({"m": instruct_model}, ServerConfig(port=0)) as handle, httpx.Client(base_url=handle.url) as c:
        assert "access-control-allow-origin" not in c.get("/v1/models", headers={"Origin": "http://x.test"}).headers


def test_refused_host_and_port_in_use(instruct_model, one_server):
    from desktop.serve import ServeError

    with pytest.raises(ServeError, match="API key"):
        ServerHandle({"m": instruct_model}, ServerConfig(host="0.0.0.0", port=0)).start()
    with pytest.raises(ServeError, match="in use"):
        ServerHandle({"m": instruct_model}, ServerConfig(port=int(one_server.url.rsplit(":", 1)[1]))).start()


def test_request_log_and_set_models(instruct_model, base_model):
    records = []
    with ServerHandle({"a": instruct_model}, ServerConfig(port=0), on_request=records.append) as handle, \
            httpx.Client(base_url=handle.url, timeout=60) as c:
        c.post("/v1/completions", json={"prompt": [1, 5], "max_tokens": 2, "temperature": 0})
        handle.set_models({"b": base_model})
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["b"]
        assert c.post("/models/a/tokenize", json={"prompt": "x"}).status_code == 404
    first = records[0]
    assert (first.route, first.model, first.status, first.prompt_tokens) == ("/v1/completions", "a", 200, 2)
    assert 1 <= first.completion_tokens <= 2 and records[-1].status == 404


def test_serving_opens_no_outgoing_connection(instruct_model, monkeypatch):
    """Every route answered while any connection other than the client's own to the server is recorded:
    the server never reaches out (offline by construction)."""
    import socket

    attempts: list = []
    real_connect = socket.socket.connect
    with ServerHandle({"m": instruct_model}, ServerConfig(port=0)) as handle:
        own = ("127.0.0.1", int(handle.url.rsplit(":", 1)[1]))

        def connect(self, address):
            if self.family != socket.AF_UNIX and tuple(address[:2]) != own:
                attempts.append(address)
                raise OSError(f"outgoing connection {address!r}")
            return real_connect(self, address)

        monkeypatch.setattr(socket.socket, "connect", connect)
        with httpx.Client(base_url=handle.url, timeout=60) as c:
            assert c.get("/v1/models").status_code == 200
            assert c.get("/tokenizer_info").status_code == 200
            assert c.post("/tokenize", json={"prompt": "hi"}).status_code == 200
            assert c.post("/detokenize", json={"tokens": [5]}).status_code == 200
            assert c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2, "echo": True,
                                                   "logprobs": 1}).status_code == 200
            assert c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                        "max_tokens": 2, "stream": True}).status_code == 200
    assert attempts == []


def test_a_remote_model_is_not_served_again(instruct_model):
    from desktop.engine.model import Capabilities
    from desktop.serve import ServeError

    class Remote:  # only what the check reads: a model whose requests leave for a server
        capabilities = Capabilities(remote=True)

    with pytest.raises(ServeError, match="only local models"):
        ServerHandle({"remote": Remote()})
    with ServerHandle({"m": instruct_model}, ServerConfig(port=0)) as handle:
        with pytest.raises(ServeError, match="only local models"):
            handle.set_models({"remote": Remote()})
        with pytest.raises(ServeError, match="served model id"):
            handle.set_models({"a/b": instruct_model})


def test_stream_usage_and_chat_messages_tokenized(instruct_model, client):
    def events(path: str, body: dict) -> list[dict]:
        with client.stream("POST", path, json=body) as s:
            lines = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        return [json.loads(x) for x in lines[:-1]]

    done = events("/v1/completions", {"prompt": [1, 5, 6], "max_tokens": 3, "temperature": 0, "stream": True,
                                       "stream_options": {"include_usage": True}})
    assert done[-1]["choices"] == [] and done[-1]["usage"]["prompt_tokens"] == 3
    assert done[-1]["usage"]["completion_tokens"] == len(done[:-2])  # one chunk per token, then the finish
    chat = events("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                                            "stream": True, "stream_options": {"include_usage": True}})
    assert chat[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chat[-2]["choices"][0]["finish_reason"] in ("stop", "length") and chat[-1]["usage"]["total_tokens"] > 0
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    ids = client.post("/tokenize", json={"messages": messages}).json()["tokens"]
    rendered = instruct_model.render_chat([{"role": "user", "content": "hi"}])
    assert ids == instruct_model.tokenize(rendered, True, add_bos=True)
    assert client.post("/tokenize", json={"messages": messages, "prompt": "x"}).status_code == 400
