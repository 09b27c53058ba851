"""`tandem serve` on the two real models at once (Gemma 3 base adds BOS, SmolLM2 instruct adds none),
through the openai SDK and lm-eval's tokenizer routes."""

from __future__ import annotations

import httpx
import openai
import pytest

from desktop.engine import LoadOptions, load_model
from desktop.serve import ServerConfig, ServerHandle
from tests.real.conftest import THREADS

IDS = ("gemma", "smol")


@pytest.fixture(scope="module")
def served(real_models):
    options = LoadOptions(threads=THREADS, n_ctx=1024)
    with load_model(real_models.gemma, options) as gemma, load_model(real_models.smol, options) as smol:
        models = {"gemma": gemma, "smol": smol}
        with ServerHandle(models, ServerConfig(port=0)) as handle:
            yield handle, models


@pytest.mark.parametrize("model_id", IDS)
def test_openai_sdk_on_each_model(served, model_id):
    handle, models = served
    c = openai.OpenAI(base_url=handle.model_url(model_id), api_key="none", max_retries=0, timeout=120)
    r = c.completions.create(model=model_id, prompt="The capital of France is", max_tokens=4, temperature=0,
                             logprobs=2)
    assert r.choices[0].text and len(r.choices[0].logprobs.tokens) == r.usage.completion_tokens
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model=model_id, prompt="The capital of France is", max_tokens=4, temperature=0, stream=True))
    assert streamed == r.choices[0].text
    if models[model_id].info.chat_template:
        chat = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Say hi."}],
                                         max_tokens=8, temperature=0, logprobs=True, top_logprobs=3)
        assert chat.choices[0].message.content and len(chat.choices[0].logprobs.content) >= 1
        pieces = c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Say hi."}],
                                           max_tokens=8, temperature=0, stream=True)
        assert "".join(p.choices[0].delta.content or "" for p in pieces) == chat.choices[0].message.content
    else:
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=2)


@pytest.mark.parametrize("model_id", IDS)
def test_echo_logprobs_equal_score_tokens(served, model_id):
    handle, models = served
    model = models[model_id]
    with httpx.Client(base_url=handle.model_url(model_id).removesuffix("/v1"), timeout=120) as c:
        info = c.get("/tokenizer_info").json()
        assert c.post("/tokenize", json={"prompt": info["eos_token"], "add_special_tokens": False}).json()[
            "tokens"] == [model.info.eos_id]
        ids = c.post("/tokenize", json={"prompt": "Question: What is 2 + 2?\nAnswer: 4",
                                        "add_special_tokens": False}).json()["tokens"]
        body = c.post("/v1/completions", json={"model": model_id, "prompt": ids, "echo": True, "logprobs": 1,
                                               "max_tokens": 1, "temperature": 0}).json()
        text = c.post("/v1/completions", json={"model": model_id, "prompt": "Question: What is 2 + 2?",
                                                "echo": True, "logprobs": 1, "max_tokens": 0}).json()
    scores = model.score_tokens(ids, next_top_k=1)
    lp = body["choices"][0]["logprobs"]
    assert len(lp["token_logprobs"]) == len(ids) + 1 and lp["token_logprobs"][0] is None
    for j in range(1, len(ids)):
        assert lp["token_logprobs"][j] == pytest.approx(scores.tokens[j].logprob, abs=1e-4)
    assert lp["token_logprobs"][-1] == pytest.approx(scores.next_top[0].logprob, abs=1e-4)
    first = text["choices"][0]["logprobs"]["tokens"][0]
    assert (first == info["bos_token"]) is model.info.add_bos  # Gemma's tokenizer adds BOS, SmolLM2's none
