"""Compare's pure parts: laying scored tokens over a text, the first-step overlap, the few-shot wrapping,
and the saved-run shape (tolerant reading, Markdown)."""

from __future__ import annotations

import math

import pytest

from desktop.compare import record
from desktop.compare.analysis import Surprise, align_scored, describe_ratio, overlap, piece_bytes
from desktop.compare.presets import PRESETS, preset_for_prompt, wrap_few_shot
from desktop.engine.types import (
    FinalEvent,
    GenerationStats,
    SamplingParams,
    ScoredToken,
    ScoreResult,
    TokenEvent,
    TopToken,
)


def tok(text: str, lp: float = -1.0) -> ScoredToken:
    return ScoredToken(text, 0, lp)


def test_align_matches_tokens_to_characters():
    spans = align_scored("Hello world", [tok("Hello"), tok(" world")])
    assert [(s.start, s.end) for s in spans] == [(0, 5), (5, 11)]


def test_align_drops_a_leading_space_the_tokenizer_added():
    # SPM tokenizers score "~x" as " ", "~", "x": the extra space is not part of the text
    spans = align_scored("~x", [tok(" ", -9.0), tok("~", -2.0), tok("x", -3.0)])
    assert [(s.start, s.end, s.logprob) for s in spans] == [(0, 1, -2.0), (1, 2, -3.0)]


def test_align_handles_a_token_merged_with_the_prompt_tail():
    # the first scored token is "d w": the prompt ended with "d", the text starts with " w"
    spans = align_scored(" world", [tok("d w", -5.0), tok("orld", -1.0)])
    assert [(s.start, s.end) for s in spans] == [(0, 2), (2, 6)]


def test_align_byte_tokens_share_their_character():
    text = "a\u00e9b"  # é is two bytes, scored as two byte tokens
    spans = align_scored(text, [tok("a"), tok("\\xc3"), tok("\\xa9"), tok("b")])
    assert [(s.start, s.end) for s in spans] == [(0, 1), (1, 2), (1, 2), (2, 3)]
    assert piece_bytes("\\xc3\\xa9") == "\u00e9".encode()


def test_surprise_and_ratio():
    own = Surprise.of(ScoreResult((tok("a", -1.0), tok("b", -1.0))))
    other = Surprise.of(ScoreResult((tok("a", -2.0), tok("b", -2.0))))
    assert own.perplexity == pytest.approx(math.e)
    assert describe_ratio(own, other) == "2.7\u00d7 more surprising"
    assert describe_ratio(other, own) == "2.7\u00d7 less surprising"
    assert describe_ratio(own, own) == "about as surprising"
    assert math.isnan(Surprise.of(ScoreResult(())).perplexity)


def test_overlap_of_two_top_lists():
    a = [TopToken(" Paris", 1, math.log(0.6)), TopToken(" Lyon", 2, math.log(0.3))]
    b = [TopToken(" Paris", 1, math.log(0.2)), TopToken(" The", 3, math.log(0.7))]
    ov = overlap(a, b)
    assert ov.shared == {" Paris"} and ov.mass == pytest.approx(0.2) and not ov.same_top and ov.k == 2
    assert overlap(a, a).mass == pytest.approx(0.9) and overlap(a, a).same_top


def test_few_shot_wrapping_and_presets():
    assert wrap_few_shot("Q: {prompt}\nA:", "  Who?  ") == "Q: Who?\nA:"
    with pytest.raises(ValueError, match=r"\{prompt\}"):
        wrap_few_shot("Q: A:", "Who?")
    assert preset_for_prompt("Once upon a time ").key == "story"
    assert preset_for_prompt("my own words") is None
    assert len({p.prompt for p in PRESETS}) == len(PRESETS)


def _sample_run() -> dict:
    final = FinalEvent("length", "Paris!", GenerationStats(prompt_tokens=5, completion_tokens=2, ttft_s=0.01,
                                                           decode_tps=50.0, seed=7))
    events = [TokenEvent("Paris", 10, -0.5, (TopToken("Paris", 10, -0.5), TopToken("Lyon", 11, -2.0))),
              TokenEvent("!", 12, float("nan"))]
    score = ScoreResult((tok("Paris", -3.0), tok("!", -1.0)))
    side = record.side_json("/m/base.gguf", "Capital of France?", final, events, own=score, cross=score)
    return {"version": 1, "prompt": "Capital of France?", "seed": 7, "few_shot": False,
            "sampling": record.sampling_json(SamplingParams(seed=7, stop=("a|b",))), "created": 0.0,
            "base": side, "instruct": dict(side, model="/m/instruct.gguf", input="<|im_start|>user\n…"),
            "first_step": {"base": record.tops_json(events[0].top), "instruct": record.tops_json(events[0].top)}}


def test_a_run_round_trips_through_json_values():
    import json

    data = json.loads(json.dumps(_sample_run(), allow_nan=False))  # the store refuses NaN: none is left
    side = record.side_of(data, "base")
    events = record.tokens_from(side["tokens"])
    assert [e.text for e in events] == ["Paris", "!"] and math.isnan(events[1].logprob)
    assert events[0].top[1] == TopToken("Lyon", 11, -2.0)
    final = record.final_from(side)
    assert final.finish_reason == "length" and final.stats.completion_tokens == 2 and final.stats.seed == 7
    assert record.score_from(side["cross"]).mean_logprob == pytest.approx(-2.0)
    assert record.sampling_from(data["sampling"]) == SamplingParams(seed=7, stop=("a|b",))


def test_reading_is_tolerant_of_damaged_runs():
    assert record.tokens_from("nonsense") == [] and record.score_from(None) is None
    assert record.sampling_from({"temperature": -3}) is None
    final = record.final_from({"text": "x", "finish_reason": "weird", "stats": {"ttft_s": "slow"}})
    assert final.finish_reason == "stop" and final.text == "x" and final.stats.ttft_s == 0.0
    assert "Compare run" in record.run_to_markdown({})


def test_markdown_has_both_columns_settings_stats_and_analysis():
    md = record.run_to_markdown(_sample_run(), "Capital")
    assert md.startswith("# Capital\n")
    assert "## Base: `base.gguf`" in md and "## Instruct: `instruct.gguf`" in md
    assert "| seed | 7 |" in md and "a\\|b" in md  # a pipe in a stop string doesn't break the table
    assert "reached the token limit · 2 tokens · 50.0 tok/s · first token 10 ms · prompt 5 tokens" in md
    assert "perplexity 7.39" in md and "about as surprising" in md
    assert "2 of the top 2 tokens are shared" in md
