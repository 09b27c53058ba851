"""`tandem eval` on the real pair (Gemma 3 270M base, SmolLM2-135M-Instruct), the bundled multiple-choice
task, all three runs (base, instruct raw, instruct chat), with --limit to keep the tier's time sane.

Every choice's loglikelihood lm-eval reports must equal what the engine's own ``score_tokens`` gives for the
same token ids, built here the way lm-eval builds them (context and continuation split as its
``_encode_pair`` does, the model's BOS first by llama.cpp's add_bos rule). Accuracy must equal the test's
own, except where two choices are within the tolerance.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.real.conftest import REPO, THREADS

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("lm_eval") is None, reason="lm-eval (the eval extra) not installed")

LIMIT = 10  # questions; three runs x 4 choices each: about two minutes on one thread of a 2-core VM
TOL = 0.02


def lm_eval_ids(model, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's TemplateLM._encode_pair over the server's /tokenize (special text parsed, no BOS), then
    the BOS the ``tandem`` model class puts before a context for a model whose tokenizer adds one."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
    whole = model.tokenize(context + continuation, True, add_bos=False)
    ctx = model.tokenize(context, True, add_bos=False)
    cont = whole[len(ctx):]
    if model.info.add_bos and (not ctx or ctx[0] != model.info.bos_id):
        ctx = [model.info.bos_id, *ctx]
    return ctx, cont


def loglikelihood(model, ctx: list[int], cont: list[int]) -> float:
    scores = model.score_tokens(ctx + cont)
    return sum(t.logprob for t in scores.tokens[len(ctx):])


@pytest.fixture(scope="module")
def evaluated(real_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-real")
    args = ["eval", "--base", str(real_models.gemma), "--instruct", str(real_models.smol), "--tasks", "tandem_mc",
            "--limit", str(LIMIT), "--threads", str(THREADS), "--gpu-layers", "0", "--out", str(out), "--json"]
    code = "from desktop.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                            timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(ln) for ln in (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    return out, json.loads(result.stdout), rows


@pytest.mark.timeout(1800)
def test_three_runs_one_row_per_question(evaluated):
    out, summary, rows = evaluated
    assert [r["run"] for r in summary["runs"]] == ["base", "instruct-raw", "instruct-chat"]
    by_run = {r["run"]: r for r in summary["runs"]}
    assert by_run["base"]["bos_added"] is True  # Gemma's tokenizer adds BOS; lm-eval's API path would not
    assert by_run["instruct-raw"]["bos_added"] is False  # SmolLM2's adds none
    for run in ("base", "instruct-raw", "instruct-chat"):
        assert sorted(r["doc_id"] for r in rows if r["run"] == run) == list(range(LIMIT))
    for name in ("report.md", "results.json", "plots/metrics.png", "plots/agreement.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| tandem_mc | acc |" in report and "instruct-chat − base" in report


@pytest.mark.timeout(1800)
def test_each_choice_equals_the_engines_own_score(evaluated, gemma, smol):
    _out, summary, rows = evaluated
    models = {"base": gemma, "instruct-raw": smol, "instruct-chat": smol}
    checked = 0
    bos_moved = 0.0
    for row in rows:
        model = models[row["run"]]
        own = []
        for choice, reported in zip(row["choices"], row["loglikelihoods"], strict=True):
            ctx, cont = lm_eval_ids(model, row["prompt"], choice)
            ll = loglikelihood(model, ctx, cont)
            assert ll == pytest.approx(reported, abs=TOL), (row["run"], row["doc_id"], choice)
            own.append(ll)
            checked += 1
            if row["run"] == "base" and row["doc_id"] == 0:  # what leaving Gemma's BOS out would have given
                bos_moved = max(bos_moved, abs(loglikelihood(model, ctx[1:], cont) - ll))
        ranked = sorted(own, reverse=True)
        if ranked[0] - ranked[1] > TOL:  # no near-tie: the choice and its correctness are the test's own
            mine = own.index(ranked[0])
            assert row["choice"] == mine, (row["run"], row["doc_id"])
            assert row["correct"] == (mine == row["target"])
    assert checked == 3 * LIMIT * 4
    assert bos_moved > TOL  # the BOS is really there, and it matters
    for metric in summary["metrics"]:
        if metric["metric"] != "acc":
            continue
        for run, value in metric["values"].items():
            mine = [r["correct"] for r in rows if r["run"] == run]
            assert math.isclose(value, sum(mine) / len(mine), abs_tol=1e-9), run


@pytest.mark.timeout(1800)
def test_chat_run_scores_after_the_models_own_template(evaluated, smol):
    _out, _summary, rows = evaluated
    for row in (r for r in rows if r["run"] == "instruct-chat"):
        question = f"Question: {row['question']}\nAnswer:"
        assert row["prompt"] == smol.render_chat([{"role": "user", "content": question}])
    raw = {r["doc_id"]: r for r in rows if r["run"] == "instruct-raw"}
    assert all(raw[r["doc_id"]]["prompt"] == f"Question: {r['question']}\nAnswer:"
               for r in rows if r["run"] == "instruct-chat")


def test_report_mentions_bos_rule(evaluated):
    out, _summary, _rows = evaluated
    assert "BOS added by the model's rule" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.timeout(900)
def test_a_model_on_an_endpoint_scores_as_the_same_model_run_locally(smol, real_models, tmp_path):
    """--base-endpoint: lm-eval talks to a vLLM-shaped server (here `tandem serve` of SmolLM2) directly."""
    from desktop.serve import ServerConfig, ServerHandle

    handle = ServerHandle({"smol": smol}, ServerConfig(port=0))
    handle.start()
    try:
        out = tmp_path / "out"
        args = ["eval", "--base-endpoint", handle.url, "--base", "smol", "--instruct", str(real_models.smol),
                "--tasks", "tandem_mc", "--limit", "4", "--instruct-template", "raw", "--threads", str(THREADS),
                "--gpu-layers", "0", "--out", str(out), "--json"]
        code = "from desktop.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                                timeout=800)
    finally:
        handle.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["runs"][0]["model"] == f"smol @ {handle.url}"
    rows = [json.loads(ln) for ln in (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    remote = {r["doc_id"]: r["loglikelihoods"] for r in rows if r["run"] == "base"}
    local = {r["doc_id"]: r["loglikelihoods"] for r in rows if r["run"] == "instruct-raw"}
    assert sorted(remote) == [0, 1, 2, 3]
    for doc_id, lls in remote.items():  # the same file, over the endpoint and served by tandem eval itself
        assert lls == pytest.approx(local[doc_id], abs=1e-3)
