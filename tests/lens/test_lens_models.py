"""Token shift on real llama.cpp runs of tiny random-weight models (no mocks): ranks, 100 % on the same
file, fewer unshifted tokens for a sibling with other weights, and the vocabulary refusal."""

from __future__ import annotations

import pytest

from desktop.core import synth
from desktop.core.errors import EngineError, VocabMismatch
from desktop.engine import LoadOptions, SamplingParams, load_model
from desktop.lens import analyze

OPTS = LoadOptions(threads=1, n_ctx=2048)
PROMPTS = ("Once upon a time", "List three colours.", "Who won the world cup?")


@pytest.fixture(scope="module")
def base(tiny_base):
    with load_model(tiny_base, OPTS) as handle:
        yield handle


@pytest.fixture(scope="module")
def base_again(tiny_base):
    """The same file in a second worker: "base and instruct given the same file"."""
    with load_model(tiny_base, OPTS) as handle:
        yield handle


@pytest.fixture(scope="module")
def instruct(tiny_instruct):
    with load_model(tiny_instruct, OPTS) as handle:
        yield handle


def test_ranks_and_top_k_agree_with_the_engines_own_top_k(base):
    """A sampled continuation (so not every token is the first choice), then scored by its own ids."""
    params = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                            max_tokens=24, seed=11, logprobs=10)
    events = [e for e in base.complete("The king", params) if hasattr(e, "token_id")]
    ids = [e.token_id for e in events]
    scored = base.score("The king", ids, top_k=10).tokens
    assert [t.token_id for t in scored] == ids
    ranks = []
    for streamed, t in zip(events, scored):
        assert [a.token_id for a in t.top] == [a.token_id for a in streamed.top]
        assert t.logprob == pytest.approx(streamed.logprob, abs=1e-3)
        in_top = [a.token_id for a in streamed.top]
        if t.token_id in in_top:
            assert t.rank == in_top.index(t.token_id) + 1
        else:
            assert t.rank > 10
        ranks.append(t.rank)
    assert any(r > 1 for r in ranks)  # the check saw more than first choices
    # the engine's second choice at the first position, scored alone, has rank 2
    second = events[0].top[1].token_id
    assert base.score("The king", [second], top_k=3).tokens[0].rank == 2
    shift, _, _ = analyze.shift_answer(base, base, "The king", ids)
    s = shift.shares
    assert s.n == len(ids) and s.unshifted + s.marginal + s.shifted == pytest.approx(100.0)


def test_score_checks_its_new_arguments(base):
    with pytest.raises(EngineError, match="top_k"):
        base.score("a", "b", top_k=-1)
    with pytest.raises(EngineError, match="not in this model's vocabulary"):
        base.score("a", [10**7])
    plain = base.score("The king", " won the world cup")
    assert all(t.rank is None and t.top == () for t in plain.tokens)


@pytest.mark.parametrize("context", ["plain", "urial", "icl"])
def test_same_file_greedy_is_exactly_all_unshifted(base, base_again, context):
    for prompt in PROMPTS:
        record = analyze.run_prompt(base, base_again, prompt, context=context, params=analyze.greedy(24))
        shift = record["shift"]
        assert shift["context"] == context and shift["instruct_context"] == "same as base"
        assert shift["shares"]["n"] == 24
        assert shift["shares"]["unshifted"] == 100.0
        assert all(t["rank"] == 1 for t in shift["tokens"])
        assert shift["mean_kl"] == pytest.approx(0.0, abs=1e-9)
        cross = record["cross"]["instruct_answer"]
        assert cross["own"] == pytest.approx(cross["other"], rel=1e-4)


def test_a_sibling_with_other_weights_gives_a_lower_unshifted_share(base, base_again, instruct, tiny_base,
                                                                    tiny_instruct):
    assert tiny_base.read_bytes() != tiny_instruct.read_bytes()
    assert base.vocab_id == instruct.vocab_id  # same vocabulary, other weights (seeds 1 and 2)
    same, other = [], []
    for prompt in PROMPTS:
        same.append(analyze.run_prompt(base, base_again, prompt, params=analyze.greedy(24))["shift"]["shares"])
        other.append(analyze.run_prompt(base, instruct, prompt, params=analyze.greedy(24))["shift"]["shares"])
    pooled = sum(s["unshifted"] * s["n"] for s in other) / sum(s["n"] for s in other)
    assert pooled < min(s["unshifted"] for s in same) == 100.0
    assert all(s["unshifted"] + s["marginal"] + s["shifted"] == pytest.approx(100.0) for s in other)


def test_different_vocabularies_are_refused_in_one_line(base, models_dir, tiny_base, monkeypatch):
    bigger = synth.write_llama_gguf(models_dir / "tiny-bigger-vocab.gguf", instruct=True, seed=4,
                                    shape=synth.ModelShape(extra_vocab=7))
    tokens, scores, types = synth.vocab()
    renamed = list(tokens)
    renamed[-1] = renamed[-1] + "x"  # the same count, one token's text differs
    monkeypatch.setattr(synth, "vocab", lambda extra=0: (renamed, scores, types))
    same_size = synth.write_llama_gguf(models_dir / "tiny-renamed-vocab.gguf", instruct=True, seed=5)
    for path, detail in ((bigger, "vs"), (same_size, "different token texts")):
        with load_model(path, OPTS) as other:
            assert other.vocab_id != base.vocab_id
            assert other.vocab_id.split(":")[0] == str(other.info.n_vocab)
            with pytest.raises(VocabMismatch) as exc:
                analyze.shift_answer(base, other, "hello", "hello there")
            message = str(exc.value)
            assert detail in message and "sibling pair" in message and "\n" not in message


def test_a_backend_without_ranks_is_refused_with_its_own_reason(base):
    """A remote backend declares what it can't do through capabilities; the lens reads the flag."""
    from desktop.engine.model import Capabilities

    class RanklessServer:  # the local model behind a server that reports no ranks
        def __init__(self, inner):
            self.inner = inner
            self.info = inner.info
            self.vocab_id = inner.vocab_id
            self.capabilities = Capabilities(score_ranks=False,
                                             scoring_note="this server returns no token ranks")

    with pytest.raises(EngineError, match="instruct model can't be used for token shift: this server"):
        analyze.shift_answer(base, RanklessServer(base), "hello", "hello there")


def test_an_experiment_stopped_mid_prompt_keeps_what_is_done_and_resumes(base, instruct, tmp_path):
    """What Compare's "Run a prompt set…" will do from a worker thread: progress, a stop, a later resume."""
    from desktop.lens.experiment import Experiment, Prompt, Settings, prompts_sha

    prompts = [Prompt(f"q{i}", t) for i, t in enumerate(PROMPTS)]
    settings = Settings(base="b", instruct="i", vocab_id=base.vocab_id, context="plain", temperature=0.0, seed=0,
                        max_tokens=200, top_k=5, system=None, prompts_sha=prompts_sha(prompts))
    seen = []
    polls = 0

    def stop_in_the_second_prompt() -> bool:
        nonlocal polls
        if seen and seen[-1].current == "q1":
            polls += 1
        return polls > 3

    exp = Experiment(tmp_path / "e", settings, prompts)
    report = exp.run(base, instruct, progress=seen.append, should_stop=stop_in_the_second_prompt)
    assert [p.current for p in seen] == ["q0", "q1", ""] and seen[1].eta_s is not None
    done = exp.done_indices()  # q1 is recorded only if it finished before the stop reached the worker
    assert done in ({0}, {0, 1}) and exp.failures == {}
    assert "run the same command again" in report.read_text()
    seen.clear()
    Experiment(tmp_path / "e", settings, prompts).run(base, instruct, progress=seen.append)
    assert seen[0].skipped == len(done)
    assert [p.current for p in seen] == [f"q{i}" for i in range(3) if i not in done] + [""]
    assert [r["id"] for r in json_records(tmp_path / "e")] == ["q0", "q1", "q2"]


def json_records(folder):
    import json

    return json.loads((folder / "results.json").read_text())["records"]


def test_same_instruct_file_reading_its_own_chat_template_is_all_unshifted(instruct, tiny_instruct):
    """Compare's check: the base side reads the query through its own chat template, as the instruct side did."""
    with load_model(tiny_instruct, OPTS) as again:
        for prompt in PROMPTS:
            gen = analyze.generate_instruct(instruct, prompt, analyze.greedy(24))
            shift, _, _ = analyze.shift_answer(again, instruct, prompt, list(gen.token_ids),
                                               context=analyze.CHAT_CONTEXT)
            assert shift.context == "chat" and shift.shares.n == len(gen.token_ids) > 0
            assert shift.shares.unshifted == 100.0
            plain, _, _ = analyze.shift_answer(again, instruct, prompt, list(gen.token_ids))
            assert [t.token_id for t in plain.tokens] == list(gen.token_ids)
