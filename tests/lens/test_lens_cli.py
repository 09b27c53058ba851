"""`tandem shift` and `tandem experiment` as real processes: JSON output, the refusal, and a run killed
with SIGKILL that resumes without redoing finished prompts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.lens.experiment import load_prompts

REAL = Path.home() / ".cache" / "tandem" / "real-models"
GEMMA = REAL / "gemma-3-270m-q4_k_m.gguf"
SMOL = REAL / "SmolLM2-135M-Instruct.Q4_1.gguf"


def tandem(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_shift_json_gives_every_token(tiny_base, tiny_instruct):
    r = tandem("shift", "--base", str(tiny_base), "--instruct", str(tiny_instruct), "--threads", "1",
               "--max-tokens", "10", "--json", "List three colours.")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["context"] == "plain" and out["instruct_context"] == "chat template"
    assert len(out["tokens"]) == out["shares"]["n"] == 10
    assert out["answer"] and all(isinstance(t["token_id"], int) for t in out["tokens"])
    t = out["tokens"][0]
    assert set(t) >= {"rank", "class", "base_top", "base_logprob", "instruct_logprob", "kl"}
    assert len(t["base_top"]) == 3
    s = out["shares"]
    assert s["unshifted"] + s["marginal"] + s["shifted"] == pytest.approx(100.0)


def test_shift_of_a_given_answer_in_text_form(tiny_base):
    r = tandem("shift", "--base", str(tiny_base), "--instruct", str(tiny_base), "--threads", "1", "--urial",
               "--answer", "the world cup was won by france", "Who won?")
    assert r.returncode == 0, r.stderr
    assert "urial" in r.stdout and "(paper)" in r.stdout and "given" in r.stdout


def test_shift_refuses_other_vocabularies_in_one_line(tiny_base, models_dir):
    from desktop.core.synth import ModelShape, write_llama_gguf

    other = write_llama_gguf(models_dir / "cli-other-vocab.gguf", instruct=True, seed=6,
                             shape=ModelShape(extra_vocab=3))
    r = tandem("shift", "--base", str(tiny_base), "--instruct", str(other), "--threads", "1", "hello")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("tandem: error: ")
    assert "different vocabularies" in r.stderr and r.stdout == ""


@pytest.mark.skipif(not (GEMMA.exists() and SMOL.exists()), reason="real models not fetched "
                    "(bash scripts/real_models.sh)")
def test_real_two_family_pair_is_refused_cleanly():
    r = tandem("shift", "--base", str(GEMMA), "--instruct", str(SMOL), "--threads", "1", "Hello")
    assert r.returncode == 1, r.stdout
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "262,144 vs 49,152 tokens" in r.stderr and "sibling pair" in r.stderr


def test_experiment_resumes_after_sigkill_without_redoing_finished_prompts(tiny_base, tiny_instruct, tmp_path):
    prompts = tmp_path / "set.jsonl"
    texts = ["List three colours.", "Explain the sun.", "Write a poem.", "Translate: good day",
             "Who won the world cup?", "Once upon a time", "Summarize: the king and queen", "Tell a story"]
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "kind": "test", "prompt": t}) + "\n"
                               for i, t in enumerate(texts)))
    out = tmp_path / "exp"
    args = [sys.executable, "-m", "desktop", "experiment", "--base", str(tiny_base), "--instruct",
            str(tiny_instruct), "--threads", "1", "--max-tokens", "40", "--prompts", str(prompts),
            "--out", str(out), "--urial"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    records = out / "records"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its model workers, at once
    proc.wait(30)
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in records.glob("*.json")}
    assert 2 <= len(finished) < len(texts), "the run must be killed part-way"
    assert not (out / "report.md").exists()

    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"({len(finished)} done before)" in r.stderr
    for name, (mtime, data) in finished.items():  # nothing already done was run or written again
        p = records / name
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == data
    results = json.loads((out / "results.json").read_text())
    assert [rec["id"] for rec in results["records"]] == [f"p{i}" for i in range(len(texts))]
    assert results["missing"] == [] and results["settings"]["context"] == "urial"
    report = (out / "report.md").read_text()
    for i, t in enumerate(texts):
        assert f"| p{i} |" in report and t in report
    for png in ("class_shares", "shift_by_position", "top_shifted_tokens", "perplexity_own_vs_other"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "77.7 %" in report  # the paper's row beside this pair's
    assert not list(records.glob(".*.tmp"))  # a killed run's half-written file is never a record; it is swept

    # other settings in the same folder are refused, not mixed in
    r = subprocess.run([*args[:-1], "--icl"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "other settings (context)" in r.stderr


def test_experiment_prompts_subset_of_the_builtin_set(tiny_base, tiny_instruct, tmp_path):
    r = tandem("experiment", "--base", str(tiny_base), "--instruct", str(tiny_instruct), "--threads", "1",
               "--max-tokens", "4", "--limit", "2", "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    from desktop.lens.experiment import builtin_prompts_path

    assert [rec["prompt"] for rec in results["records"]] == [p.text for p in load_prompts(builtin_prompts_path())[:2]]
    assert "2/2" in r.stderr and r.stdout.strip().endswith("report.md")
    # a larger part of the same set, in the same folder: only the new prompt runs
    r = tandem("experiment", "--base", str(tiny_base), "--instruct", str(tiny_instruct), "--threads", "1",
               "--max-tokens", "4", "--limit", "3", "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    assert "(2 done before)" in r.stderr
    assert len(json.loads((tmp_path / "e" / "results.json").read_text())["records"]) == 3


def test_a_prompt_the_engine_refuses_is_reported_and_the_others_still_run(tiny_base, tiny_instruct, tmp_path):
    prompts = tmp_path / "set.txt"
    prompts.write_text("the king " * 400 + "\nthe queen\n")
    r = tandem("experiment", "--base", str(tiny_base), "--instruct", str(tiny_instruct), "--threads", "1",
               "--max-tokens", "4", "--ctx", "256", "--prompts", str(prompts), "--out", str(tmp_path / "e"))
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith("tandem: error: prompt 1 failed (The prompt is ")
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert [rec["id"] for rec in results["records"]] == ["2"] and results["missing"] == ["1"]
    assert "context holds 256" in results["failed"]["1"]
    assert "1 failed:" in (tmp_path / "e" / "report.md").read_text()


def test_models_are_found_by_library_name(tiny_base, tiny_instruct):
    for path in (tiny_base, tiny_instruct):
        r = tandem("models", "import", str(path), "--link")
        assert r.returncode == 0, r.stderr
    r = tandem("shift", "--base", "tiny-base", "--instruct", "tiny-instruct", "--threads", "1", "--max-tokens",
               "3", "--json", "Hello")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shares"]["n"] == 3
    r = tandem("shift", "--base", "no-such-model", "--instruct", "tiny-instruct", "hi")
    assert r.returncode == 1 and "no model named 'no-such-model'" in r.stderr


def test_score_top_k_prints_ranks(tiny_base):
    r = tandem("score", "--model", str(tiny_base), "--threads", "1", "--prompt", "the king",
               "--continuation", " and the queen", "--top-k", "4", "--json")
    assert r.returncode == 0, r.stderr
    tokens = json.loads(r.stdout)["tokens"]
    assert tokens and all(t["rank"] >= 1 and len(t["top"]) == 4 for t in tokens)
    for t in tokens:  # a token inside the top-4 has its place there as its rank
        ids = [a["token_id"] for a in t["top"]]
        assert t["rank"] == ids.index(t["token_id"]) + 1 if t["token_id"] in ids else t["rank"] > 4


def test_base_context_template_on_the_same_file_is_exactly_all_unshifted(tiny_base, tiny_instruct, tmp_path):
    """The self-check Compare offers, from the CLI: the base side reads its own chat template."""
    both = ("--base", str(tiny_instruct), "--instruct", str(tiny_instruct), "--threads", "1")
    r = tandem("shift", *both, "--max-tokens", "12", "--base-context", "template", "--json", "List three colours.")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["context"] == "chat" and out["shares"]["n"] > 0 and out["shares"]["unshifted"] == 100.0
    prompts = tmp_path / "set.txt"
    prompts.write_text("List three colours.\nWho won the world cup?\n")
    r = tandem("experiment", *both, "--max-tokens", "12", "--base-context", "template", "--prompts", str(prompts),
               "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["settings"]["context"] == "chat" and len(results["records"]) == 2
    assert results["summary"]["shares"]["unshifted"] == 100.0 and results["summary"]["tokens"] > 0
    # a base model without a chat template can't read one: refused in one line, before any prompt runs
    r = tandem("shift", "--base", str(tiny_base), "--instruct", str(tiny_instruct),
               "--threads", "1", "--base-context", "template", "hello")
    assert r.returncode == 1 and r.stderr.startswith("tandem: error: ") and "no chat template" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = tandem("shift", *both, "--urial", "--base-context", "icl", "hello")
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_a_base_answer_that_retokenizes_longer_is_scored_by_its_ids_and_parts_degrade(tiny_base, tiny_instruct,
                                                                                      tmp_path):
    """Issue 22 item 7. On this random-vocabulary pair the base model's 200-token answer to "the king"
    re-tokenizes (from its text) to ~270 tokens: scoring the text overflowed a 256-token context and the
    whole prompt failed. Scored by its ids it fits; a long system prompt then leaves the instruct model room
    for only the answer's beginning ("cut"); the ICL preset doesn't fit at all, so the base's parts fail by
    name while the instruct answer is kept."""
    from desktop.engine import LoadOptions, load_model

    prompts = tmp_path / "set.txt"
    prompts.write_text("the king\n")
    pair = ("--base", str(tiny_base), "--instruct", str(tiny_instruct), "--threads", "1", "--ctx", "256",
            "--max-tokens", "200", "--prompts", str(prompts))
    r = tandem("experiment", *pair, "--out", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "e" / "results.json").read_text())["records"][0]
    assert rec["base"]["n_tokens"] == 200 and "failed" not in rec
    with load_model(tiny_base, LoadOptions(threads=1, n_ctx=1024)) as base:
        assert base.count_tokens("the king" + rec["base"]["text"]) > 256  # the case: its text is longer
    assert rec["cross"]["base_answer"]["own"] is not None and rec["cross"]["base_answer"]["other"] is not None

    r = tandem("experiment", *pair, "--system", "the queen " * 20, "--out", str(tmp_path / "cut"))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "cut" / "results.json").read_text())["records"][0]
    cut = rec["cut"]["base answer under the instruct model"]
    assert 0 < cut["scored"] < cut["of"] == 200 and rec["cross"]["base_answer"]["other"] is not None
    report = (tmp_path / "cut" / "report.md").read_text()
    assert f"base answer under the instruct model: cut, its first {cut['scored']} of 200 tokens" in report

    r = tandem("experiment", *pair, "--icl", "--out", str(tmp_path / "icl"))
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "icl" / "results.json").read_text())
    rec = results["records"][0]
    assert rec["instruct"]["n_tokens"] > 0 and rec["base"] is None and results["failed"] == {}
    assert set(rec["failed"]) == {"token shift (instruct answer under the base model)", "base answer"}
    assert all("context holds 256" in why for why in rec["failed"].values())
    assert rec["cross"]["instruct_answer"]["own"] is not None and rec["shift"]["shares"]["n"] == 0
    assert "**1**, base answer failed: The prompt is" in (tmp_path / "icl" / "report.md").read_text()
