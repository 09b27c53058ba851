"""The proof with a real client: lm-evaluation-harness 0.4.13 against ``tandem serve`` of both real models at once.

``python -m desktop serve`` serves Gemma 3 270M (base) and SmolLM2-135M-Instruct together; lm-eval runs fully
offline with ``--model local-completions`` and its default tokenizer discovery (``/tokenizer_info``, ``/tokenize``
and ``/detokenize`` at each model's root, found by cutting ``/v1/completions`` off the per-model base URL), one
request at a time, on the project's own tasks. Then every choice's loglikelihood lm-eval logged must equal, within
0.01:
- (a) the engine's own ``score_tokens`` for the same token ids, and
- (b) llama-cpp-python's ``Llama(logits_all=True)`` reading the logits directly (tests/real/llama_reference.py, no
  Tandem code), for the ids lm-eval builds (``_encode_pair``, no BOS: lm-eval's API backends send none, and the
  server scores token ids exactly as given);
and lm-eval's accuracy must be the reference's. The short-answer task's generations must be the reference's greedy
continuations. ``TANDEM_LMEVAL_LIMIT=N`` runs the first N questions of each task (default: all of them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.lmeval_run import LmEvalRun, choice_requests, generation, run_lm_eval
from bench.serve_refs import RunningServer, free_port, served_id, tandem_serve_cmd
from tests.real.conftest import THREADS
from tests.real.llama_reference import LlamaReference, choice_accuracy, encode_pair
from tests.test_eval_tasks import require_lm_eval

pytestmark = pytest.mark.timeout(3600)

TOLERANCE = 0.01  # nats per choice
LIMIT = int(os.environ["TANDEM_LMEVAL_LIMIT"]) if os.environ.get("TANDEM_LMEVAL_LIMIT") else None


@dataclass
class Served:
    server: RunningServer
    paths: dict[str, Path]  # "gemma" / "smol" -> the GGUF file

    def base_url(self, key: str) -> str:
        return f"{self.server.url}/models/{served_id(self.paths[key])}/v1/completions"


@pytest.fixture(scope="module")
def served(real_models, tmp_path_factory) -> Iterator[Served]:
    require_lm_eval()
    port = free_port()
    paths = {"gemma": real_models.gemma, "smol": real_models.smol}
    log = tmp_path_factory.mktemp("tandem-serve") / "serve.log"
    with RunningServer(tandem_serve_cmd(list(paths.values()), port, threads=THREADS), port, "/health", log) as server:
        yield Served(server, paths)


@pytest.fixture(scope="module")
def runs(served, tmp_path_factory) -> dict[str, LmEvalRun]:
    """lm-eval on both tasks for each model, one after the other, against the one server serving both."""
    out = {}
    for key in ("gemma", "smol"):
        model_args = {"base_url": served.base_url(key), "model": served_id(served.paths[key]),
                      "num_concurrent": 1, "max_retries": 1}
        run = run_lm_eval("local-completions", model_args, ["tandem_mc", "tandem_short"],
                          tmp_path_factory.mktemp(f"lm-eval-{key}"), limit=LIMIT)
        assert run.ok, f"lm-eval failed on {key} ({run.returncode}): {run.failure()}\n{run.log[-3000:]}"
        assert "Using remote tokenizer" in run.log, "lm-eval did not find the server's tokenizer"
        out[key] = run
    served.server.stop()  # the engine's and the reference's scoring below get the CPU to themselves
    return out


@pytest.fixture(scope="module", params=["gemma", "smol"])
def key(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def reference(key, real_models) -> Iterator[LlamaReference]:
    ref = LlamaReference(getattr(real_models, key), threads=THREADS)
    yield ref
    ref.close()


def test_loglikelihoods_equal_the_engine_and_the_reference(key, runs, reference, request):
    engine = request.getfixturevalue(key)  # tests/real/conftest.py's session model: Tandem's own engine
    samples = runs[key].samples["tandem_mc"]
    assert len(samples) == (LIMIT or 120)
    worst_engine = worst_ref = 0.0
    ref_lls, choices, gold, close = [], [], [], []
    for sample in samples:
        row = []
        for context, continuation, ll, greedy in choice_requests(sample):
            ctx, cont = encode_pair(reference.tokenize, context, continuation)
            ectx, econt = encode_pair(lambda t: engine.tokenize(t, special=True, add_bos=False), context, continuation)
            assert (ectx, econt) == (ctx, cont), f"the engine and llama-cpp-python tokenize {context + continuation!r} apart"
            ids = ctx + cont
            ref = reference.score(ids, len(ctx))
            scores = engine.score_tokens(ids)
            own = sum(t.logprob for t in scores.tokens[len(ctx):])
            worst_ref = max(worst_ref, abs(ll - ref.loglikelihood))
            worst_engine = max(worst_engine, abs(ll - own))
            assert ll == pytest.approx(ref.loglikelihood, abs=TOLERANCE), (sample["doc"]["id"], continuation)
            assert ll == pytest.approx(own, abs=TOLERANCE), (sample["doc"]["id"], continuation)
            assert greedy == ref.is_greedy, (sample["doc"]["id"], continuation)
            row.append(ref.loglikelihood)
        ref_lls.append(row)
        choices.append(sample["doc"]["choices"])
        gold.append(sample["doc"]["answer"])
        top = np.sort(row)
        close.append(top[-1] - top[-2] < 2 * TOLERANCE)
    print(f"{key}: lm-eval vs reference max {worst_ref:.2e}, vs engine max {worst_engine:.2e} nats per choice")

    # The accuracy is the reference's: per question the same pick, except where two choices are within the
    # tolerance (then either pick is right by this test's measure).
    acc, acc_norm = choice_accuracy(ref_lls, choices, gold)
    for sample, row, tie in zip(samples, ref_lls, close):
        picked = int(np.argmax([ll for *_, ll, _ in choice_requests(sample)]))
        assert tie or picked == int(np.argmax(row)), sample["doc"]["id"]
    n_close = sum(close)
    assert abs(runs[key].metric("tandem_mc", "acc") - acc) <= n_close / len(samples) + 1e-9
    assert abs(runs[key].metric("tandem_mc", "acc_norm") - acc_norm) <= n_close / len(samples) + 1e-9
    print(f"{key}: acc {runs[key].metric('tandem_mc', 'acc'):.3f} (reference {acc:.3f}), acc_norm "
          f"{runs[key].metric('tandem_mc', 'acc_norm'):.3f} (reference {acc_norm:.3f}), {n_close} close calls")


def test_generations_equal_the_reference_greedy(key, runs, reference):
    """tandem_short (generate_until): lm-eval sends the context's token ids (no BOS) with temperature 0 and its
    stop strings; the text back must be the reference's argmax continuation, cut at the first stop string."""
    samples = runs[key].samples["tandem_short"]
    assert len(samples) == (LIMIT or 30)
    eos = reference.llm.detokenize([reference.llm.token_eos()], special=True).decode("utf-8", "replace")
    differ = []
    for sample in samples:
        context, gen_kwargs, text = generation(sample)
        stop = [*gen_kwargs["until"], eos]
        expected = reference.greedy(reference.tokenize(context), int(gen_kwargs["max_gen_toks"]), stop)
        if text != expected:
            differ.append((sample["doc"]["id"], text, expected))
    assert differ == []
    assert 0.0 <= runs[key].metric("tandem_short", "exact_match,remove_whitespace") <= 1.0
