"""The endpoints store and its CLI: names and URLs in settings, API keys only in the keyring (an in-memory
one here, never the machine's), an env-var fallback without a keyring, and offline mode that refuses every
non-loopback endpoint before any DNS lookup."""

from __future__ import annotations

import json
import socket

import pytest

from desktop.cli import main
from desktop.core import paths
from desktop.core.endpoints import KEYRING_SERVICE, EndpointStore, is_loopback_url, normalize_base_url
from desktop.core.errors import EndpointError, OfflineError
from desktop.core.settings import load_settings, save_settings
from desktop.engine.remote import connect
from tests.remote.faultserver import completion_chunk, openai_server

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def srv():
    s = openai_server("m")

    def complete(r):
        r.sse_start()
        r.sse(completion_chunk("Hi", -0.1, finish="stop"))
        r.raw(b"data: [DONE]\n\n")
    s.routes[("POST", "/v1/completions")] = complete
    yield s
    s.stop()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_key_goes_to_the_keyring_never_to_settings(srv, memory_keyring, monkeypatch, capsys):
    monkeypatch.setenv("MY_KEY", SECRET)
    code, out, _ = run(capsys, "endpoints", "add", "gpu", srv.url + "/v1/", "--api-key-env", "MY_KEY")
    assert code == 0 and "OS keyring" in out and SECRET not in out
    assert memory_keyring.store[(KEYRING_SERVICE, "gpu")] == SECRET
    settings_text = paths.settings_path().read_text()
    assert SECRET not in settings_text and "MY_KEY" not in settings_text
    assert load_settings().endpoints == {"gpu": {"url": srv.url}}
    monkeypatch.delenv("MY_KEY")  # the keyring copy is what is used from now on
    code, out, _ = run(capsys, "complete", "--endpoint", "gpu", "--json", "hello")
    assert code == 0 and json.loads(out)["text"] == "Hi"
    assert srv.requests[-1][2]["Authorization"] == f"Bearer {SECRET}"
    code, out, _ = run(capsys, "endpoints", "list", "--json")
    assert json.loads(out) == [{"name": "gpu", "url": srv.url, "api_key_env": None, "api_key_stored": True}]
    code, out, _ = run(capsys, "endpoints", "remove", "gpu")
    assert code == 0 and (KEYRING_SERVICE, "gpu") not in memory_keyring.store and load_settings().endpoints == {}


def test_without_a_keyring_say_so_and_use_the_env_var(srv, no_keyring, monkeypatch, capsys):
    store = EndpointStore()
    with pytest.raises(EndpointError, match="No OS keyring is available here.*--api-key-env VAR"):
        store.add("gpu", srv.url, api_key=SECRET)
    monkeypatch.setenv("GPU_KEY", SECRET)
    code, out, _ = run(capsys, "endpoints", "add", "gpu", srv.url, "--api-key-env", "GPU_KEY")
    assert code == 0 and "read from $GPU_KEY" in out and "No OS keyring" in out
    assert load_settings().endpoints == {"gpu": {"url": srv.url, "api_key_env": "GPU_KEY"}}
    assert SECRET not in paths.settings_path().read_text()
    code, out, _ = run(capsys, "complete", "--endpoint", "gpu", "--json", "hi")
    assert code == 0 and srv.requests[-1][2]["Authorization"] == f"Bearer {SECRET}"
    monkeypatch.delenv("GPU_KEY")
    code, _, err = run(capsys, "complete", "--endpoint", "gpu", "hi")
    assert code == 1 and err == "tandem: error: Endpoint 'gpu' reads its API key from $GPU_KEY, which is not set.\n"


@pytest.mark.parametrize("name,url,what", [
    ("has space", "http://x:1", "not a usable endpoint name"),
    ("ok", "ftp://x", "not an http(s) address"),
    ("ok", "http://x:99999", "invalid port"),
])
def test_bad_names_and_urls_are_one_line(capsys, name, url, what):
    code, _, err = run(capsys, "endpoints", "add", name, url)
    assert code == 1 and what in err and err.count("\n") == 1


def test_unknown_endpoint(capsys):
    code, _, err = run(capsys, "chat", "--endpoint", "nowhere", "hi")
    assert code == 1 and "No endpoint named 'nowhere'" in err


def test_endpoints_test_lists_models_and_capabilities(srv, capsys):
    srv.routes[("POST", "/v1/completions")] = lambda r: r.json({"error": {"message": "no"}}, 400)
    run(capsys, "endpoints", "add", "box", srv.url)
    code, out, _ = run(capsys, "endpoints", "test", "box", "--json")
    report = json.loads(out)
    assert code == 0 and report["engine"] == "openai" and report["models"][0]["id"] == "m"
    caps = report["models"][0]["capabilities"]
    assert caps["scoring"] is False and "checking this OpenAI-compatible server's logprobs failed" in caps["scoring_note"]


def test_urls():
    assert normalize_base_url("gpu-box:8000/v1/") == "http://gpu-box:8000"
    assert normalize_base_url("https://[::1]:9/api") == "https://[::1]:9/api"
    for url in ("http://localhost:1", "http://127.0.0.5:1", "http://[::1]:1", "http://a.localhost"):
        assert is_loopback_url(url)
    for url in ("http://gpu-box:1", "http://10.0.0.1", "http://127.0.0.1.example.com", "http://localhost.evil.com"):
        assert not is_loopback_url(url)


def test_offline_refuses_remote_endpoints_before_any_dns_lookup(monkeypatch, srv, capsys):
    save_settings(load_settings().__class__(offline=True))
    looked_up = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: looked_up.append(a) or [])
    with pytest.raises(OfflineError, match="will not contact the server at gpu-box.example.com"):
        connect("http://gpu-box.example.com:8000")
    code, _, err = run(capsys, "complete", "--endpoint", "http://gpu-box.example.com:8000", "hi")
    assert code == 1 and "Offline mode is on" in err
    assert looked_up == []
    monkeypatch.undo()
    # loopback stays allowed offline
    m = connect(srv.url, verify=False)
    assert m.facts.engine == "openai"
    m.close()


def test_offline_via_hf_hub_offline_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        connect("http://10.1.2.3:8000")


def test_compare_mixes_endpoints_with_the_same_json_shape(srv, capsys):
    def chat(r):
        r.sse_start()
        for i, t in enumerate(["Hello", "!"]):
            r.sse({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": "stop" if i else None,
                                "logprobs": {"content": [{"token": t, "logprob": -0.5, "bytes": list(t.encode()),
                                                          "top_logprobs": [{"token": t, "logprob": -0.5}]}]}}]})
        r.raw(b"data: [DONE]\n\n")
    srv.routes[("POST", "/v1/chat/completions")] = chat
    code, out, err = run(capsys, "compare", "--base-endpoint", srv.url, "--instruct-endpoint", srv.url,
                         "--json", "--logprobs", "1", "Say hi")
    assert code == 0, err
    result = json.loads(out)
    assert result["base"]["text"] == "Hi" and result["instruct"]["text"] == "Hello!"
    assert result["instruct"]["tokens"] == [{"text": "Hello", "logprob": -0.5, "top": [{"text": "Hello", "logprob": -0.5}]},
                                            {"text": "!", "logprob": -0.5, "top": [{"text": "!", "logprob": -0.5}]}]
    body = [b for _, p, _, b in srv.requests if p == "/v1/chat/completions"][-1]
    assert body["messages"] == [{"role": "user", "content": "Say hi"}] and body["top_logprobs"] == 1
