"""`tandem complete / chat / score / doctor / compare` as a script would use them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def tandem(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_complete_streams_plain_text(tiny_base):
    args = ("complete", "--model", str(tiny_base), "--max-tokens", "8", "--seed", "1", "--threads", "1")
    r = tandem(*args, "Once upon a time")
    assert r.returncode == 0, r.stderr
    expected = json.loads(tandem(*args, "--json", "Once upon a time").stdout)["text"]
    assert expected
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")  # text-mode pipes translate newlines
    # the streamed text is exactly the generated text (plus a final newline when it lacks one)
    assert r.stdout == expected + ("" if expected.endswith("\n") else "\n")


def test_complete_json_shape_with_logprobs(tiny_base):
    r = tandem("complete", "--model", str(tiny_base), "--max-tokens", "6", "--seed", "2", "--threads", "1",
               "--logprobs", "3", "--json", "The king")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"text", "finish_reason", "stats", "tokens"}
    assert set(out["stats"]) == {"prompt_tokens", "prompt_eval_tokens", "completion_tokens", "ttft_s",
                                 "prefill_tps", "decode_tps"}
    assert out["finish_reason"] in ("stop", "length")
    assert "".join(t["text"] for t in out["tokens"]) == out["text"]
    assert all(len(t["top"]) == 3 and set(t["top"][0]) == {"text", "logprob"} for t in out["tokens"])


def test_complete_json_without_logprobs_has_no_tokens_and_same_seed_reproduces(tiny_base):
    args = ("complete", "--model", str(tiny_base), "--max-tokens", "10", "--seed", "42", "--threads", "1",
            "--temperature", "1.5", "--top-k", "0", "--json", "The king")
    a, b = tandem(*args), tandem(*args)
    assert a.returncode == 0 and b.returncode == 0
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert "tokens" not in ja
    assert ja["text"] == jb["text"]


def test_chat_show_prompt_prints_the_template(tiny_instruct):
    r = tandem("chat", "--model", str(tiny_instruct), "--threads", "1", "--system", "Be brief.", "--show-prompt",
               "Who won the World Cup?")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWho won the World Cup?"
                        "<|im_end|>\n<|im_start|>assistant\n")


def test_chat_json(tiny_instruct):
    r = tandem("chat", "--model", str(tiny_instruct), "--threads", "1", "--max-tokens", "5", "--seed", "1",
               "--json", "hello")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["finish_reason"] in ("stop", "length")


def test_chat_on_a_base_model_is_one_clear_line(tiny_base):
    r = tandem("chat", "--model", str(tiny_base), "--threads", "1", "hello")
    assert r.returncode == 1
    assert r.stderr.startswith("tandem: error: This is a base model")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content", [b"", b"just some text\n", b"GGUF" + b"\x00" * 3])
def test_bad_model_files_are_one_line_errors(tmp_path, content):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    r = tandem("complete", "--model", str(bad), "--threads", "1", "hi")
    assert r.returncode == 1
    assert r.stderr.startswith("tandem: error: ") and len(r.stderr.strip().splitlines()) == 1


def test_truncated_file_is_one_line_error(tmp_path, tiny_base):
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(tiny_base.read_bytes()[:300_000])
    r = tandem("complete", "--model", str(bad), "--threads", "1", "hi")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("tandem: error: ") and len(r.stderr.strip().splitlines()) == 1


def test_invalid_grammar_is_one_line_error(tiny_base):
    r = tandem("complete", "--model", str(tiny_base), "--threads", "1", "--grammar", "root ::= (", "hi")
    assert r.returncode == 1
    assert r.stderr.startswith("tandem: error: The grammar is not valid GBNF")


def test_context_overflow_is_one_line_error(tiny_base):
    r = tandem("complete", "--model", str(tiny_base), "--threads", "1", "--ctx", "256", "word " * 600)
    assert r.returncode == 1
    assert "context holds 256" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(tiny_base):
    r = tandem("complete", "--model", str(tiny_base), "--temperature", "-1", "hi")
    assert r.returncode == 2 and "temperature" in r.stderr
    r = tandem("complete", "--model", str(tiny_base), "--max-tokens", "lots", "hi")
    assert r.returncode == 2
    r = tandem("complete", "hi")  # no --model
    assert r.returncode == 2 and "--model" in r.stderr


def test_score_json(tiny_base):
    r = tandem("score", "--model", str(tiny_base), "--threads", "1", "--prompt", "Once upon",
               "--continuation", " a time", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["tokens"] and all(t["logprob"] <= 0 for t in out["tokens"])
    assert out["mean_logprob"] == pytest.approx(sum(t["logprob"] for t in out["tokens"]) / len(out["tokens"]),
                                                abs=1e-4)


def test_compare_json_runs_both(tiny_base, tiny_instruct):
    r = tandem("compare", "--base", str(tiny_base), "--instruct", str(tiny_instruct), "--threads", "1",
               "--max-tokens", "6", "--seed", "3", "--json", "Who won the World Cup?")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"base", "instruct"}
    for side in out.values():
        assert side["finish_reason"] in ("stop", "length") and "stats" in side


def test_doctor_json():
    r = tandem("doctor", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert {"build_backend", "gpu_offload_supported", "cpu_features", "gpus"} <= set(report)
