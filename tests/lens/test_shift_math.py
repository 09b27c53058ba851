"""The token-shift maths without a model: classes, shares, the top-k KL, the vocabulary check, the preset."""

from __future__ import annotations

import math

import pytest

from desktop.core.errors import VocabMismatch
from desktop.engine.types import ScoredToken, TopToken
from desktop.lens import preset
from desktop.lens.shift import (
    PAPER_ROWS,
    Shares,
    check_same_vocab,
    classify,
    token_shift,
    topk_kl,
)


def test_classes_follow_the_paper():
    assert [classify(r) for r in (1, 2, 3, 4, 50)] == ["unshifted", "marginal", "marginal", "shifted", "shifted"]
    with pytest.raises(ValueError):
        classify(0)


def test_paper_rows_are_the_published_splits():
    rows = {p.pair: (p.unshifted, p.marginal, p.shifted) for p in PAPER_ROWS}
    assert rows["Llama-2-7b → Llama-2-7b-chat"] == (77.7, 14.5, 7.8)
    assert rows["Mistral-7B → Mistral-7B-Instruct"] == (82.2, 12.5, 5.2)


def test_shares_add_up_and_empty_is_none():
    s = Shares.of(["unshifted"] * 7 + ["marginal"] * 2 + ["shifted"])
    assert (s.n, s.unshifted, s.marginal, s.shifted) == (10, 70.0, 20.0, 10.0)
    assert Shares.of([]).unshifted is None


def _tok(tid: int, rank: int, logprob: float, top: list[tuple[int, float]]) -> ScoredToken:
    return ScoredToken(f"t{tid}", tid, logprob, rank, tuple(TopToken(f"t{i}", i, lp) for i, lp in top))


def test_kl_is_zero_for_equal_distributions_and_grows_with_difference():
    p = [(1, math.log(0.6)), (2, math.log(0.3)), (3, math.log(0.1))]
    assert topk_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    near = [(1, math.log(0.5)), (2, math.log(0.4)), (3, math.log(0.1))]
    far = [(3, math.log(0.7)), (4, math.log(0.2)), (1, math.log(0.1))]
    assert 0 < topk_kl(p, near) < topk_kl(p, far)
    assert topk_kl([], p) is None


def test_token_shift_joins_the_two_passes_by_token_id_and_positions_bucket():
    top = [(5, -0.1), (6, -2.0), (7, -3.0)]
    base = [_tok(5, 1, -0.1, top), _tok(6, 2, -2.0, top), _tok(9, 40, -8.0, top)] + \
           [_tok(5, 1, -0.1, top)] * 22
    inst = [_tok(5, 1, -0.05, top), _tok(6, 1, -0.3, top), _tok(9, 1, -0.2, top)] + \
           [_tok(5, 1, -0.1, top)] * 22
    r = token_shift(base, inst, context="plain", instruct_context="chat template", top_k=3)
    assert [t.cls for t in r.tokens[:3]] == ["unshifted", "marginal", "shifted"]
    assert r.tokens[2].instruct_logprob == -0.2 and r.tokens[2].base_top[0].token_id == 5
    s = r.shares
    assert s.unshifted + s.marginal + s.shifted == pytest.approx(100.0)
    by = r.shares_by_position()
    assert (by["1-5"].n, by["6-20"].n, by["21+"].n) == (5, 15, 5)
    assert r.top_shifted() == [("t9", 1)]
    # an instruct pass that tokenized one stretch differently: that token has no instruct values
    odd = inst[:1] + [_tok(77, 1, -1.0, top)] + inst[2:]
    r2 = token_shift(base, odd, context="plain", instruct_context="chat template", top_k=3)
    assert r2.tokens[1].instruct_logprob is None and r2.tokens[2].instruct_logprob == -0.2


def test_vocab_check_refuses_in_one_line():
    check_same_vocab("806:abc", "806:abc")
    with pytest.raises(VocabMismatch) as e:
        check_same_vocab("262144:aa", "49152:bb", "Gemma", "SmolLM2")
    assert "262,144 vs 49,152" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(VocabMismatch, match="different token texts"):
        check_same_vocab("806:aa", "806:bb")
    with pytest.raises(VocabMismatch):
        check_same_vocab("", "806:bb")


def test_preset_has_a_preamble_three_examples_and_stops_at_the_next_query():
    text = preset.wrap_prompt("Why is the sea salty?")
    assert text.count(preset.QUERY_HEADER) == 4 and text.count(preset.ANSWER_HEADER) == 4
    assert len(preset.EXAMPLES) == 3
    assert text.startswith(preset.PREAMBLE)
    assert text.endswith(preset.wrap_query("Why is the sea salty?"))
    assert preset.STOP == ("# Query:",)
    continuation = "Because rivers carry minerals.\n```\n\n# Query:\n```\nNext?"
    assert preset.clean_answer(continuation) == "Because rivers carry minerals."


def test_matplotlib_is_imported_only_when_a_report_is_drawn():
    import subprocess
    import sys

    code = ("import sys, desktop.app, desktop.cli, desktop.cli.lens_cmds, desktop.lens.report, "
            "desktop.lens.experiment, desktop.lens.analyze; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_answer_agreement_counts_the_common_start_and_the_shared_stretches():
    from desktop.lens.shift import answer_agreement

    same = answer_agreement([5, 6, 7], [5, 6, 7])
    assert (same.common_prefix, same.matched, same.share) == (3, 3, 100.0)
    # the base+preamble answer starts like the instruct one, then one token differs and they meet again
    a = answer_agreement([1, 2, 3, 9, 4, 5], [1, 2, 3, 8, 4, 5, 6, 7])
    assert a.common_prefix == 3 and a.matched == 5
    assert a.share == pytest.approx(100.0 * 2 * 5 / 14)
    apart = answer_agreement([1, 2], [3, 4])
    assert (apart.common_prefix, apart.matched, apart.share) == (0, 0, 0.0)
    assert answer_agreement([], []).share is None
