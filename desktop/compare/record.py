"""A compare run as it is saved in the history and exported: plain JSON values, no Qt.

The history store keeps whatever dict the pane gives it (``HistoryStore.save_compare_run``); this module
decides that dict's shape, reads it back tolerantly (a run saved by an older Tandem, or one edited by hand,
still opens with what it has), and renders it as Markdown with both columns, the settings and the stats.

Shape (version 1)::

    {"version": 1, "prompt": str, "few_shot": bool, "few_shot_template": str, "seed": int | None,
     "sampling": {SamplingParams fields}, "created": float,
     "base": SIDE, "instruct": SIDE, "first_step": {"base": TOPS, "instruct": TOPS} | absent}
    SIDE = {"model": path, "input": exact text the model saw, "text": output, "finish_reason": str,
            "error": str, "stats": {...}, "tokens": [[text, id, logprob, TOPS], ...],
            "own": SCORE | None, "cross": SCORE | None}
    TOPS = [[text, id, logprob], ...]
    SCORE = {"mean_logprob": float, "chars": int | None (scored prefix; None = all), "tokens": TOPS}
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from desktop.compare.analysis import Surprise, describe_ratio, overlap
from desktop.core.special_tokens import summary_line
from desktop.engine.types import (
    FINISH_WORDS,
    FinalEvent,
    GenerationStats,
    SamplingParams,
    ScoredToken,
    ScoreResult,
    TokenEvent,
    TopToken,
    finish_words,
)

RUN_VERSION = 1
SIDES = ("base", "instruct")


# --- to JSON -------------------------------------------------------------------------------------------


def _num(x: float) -> float | None:
    """JSON has no NaN/inf (the store refuses them): an unrecorded logprob becomes null."""
    return round(float(x), 6) if isinstance(x, (int, float)) and math.isfinite(x) else None


def tops_json(tops) -> list[list]:
    return [[t.text, t.token_id, _num(t.logprob)] for t in tops]


def tokens_json(events: list[TokenEvent]) -> list[list]:
    return [[e.text, e.token_id, _num(e.logprob), tops_json(e.top)] for e in events]


def score_json(result: ScoreResult | None, chars: int | None = None) -> dict | None:
    """``chars``: how many characters of the text the score covers (None: all of it)."""
    if result is None:
        return None
    return {"mean_logprob": _num(result.mean_logprob) if result.tokens else None, "chars": chars,
            "tokens": [[t.text, t.token_id, _num(t.logprob)] for t in result.tokens]}


def stats_json(final: FinalEvent) -> dict[str, Any]:
    s = final.stats
    out = s.as_json()
    out.update(prefill_s=round(s.prefill_s, 6), decode_s=round(s.decode_s, 6), seed=s.seed)
    return out


def side_json(model: str, input_text: str, final: FinalEvent | None, tokens: list[TokenEvent],
              own: ScoreResult | None = None, cross: ScoreResult | None = None, *,
              own_chars: int | None = None, cross_chars: int | None = None) -> dict[str, Any]:
    text = final.text if final is not None else "".join(e.text for e in tokens)
    return {"model": model, "input": input_text, "text": text,
            "finish_reason": final.finish_reason if final is not None else "cancelled",
            "error": str(final.error) if final is not None and final.error is not None else "",
            "stats": stats_json(final) if final is not None else {},
            "tokens": tokens_json(tokens), "own": score_json(own, own_chars),
            "cross": score_json(cross, cross_chars)}


def sampling_json(params: SamplingParams) -> dict[str, Any]:
    out = dataclasses.asdict(params)
    out["stop"] = list(params.stop)
    return out


# --- from JSON (tolerant) -------------------------------------------------------------------------------


def _float(x, default: float = math.nan) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else default


def tops_from(value) -> tuple[TopToken, ...]:
    out = []
    for row in value if isinstance(value, list) else []:
        if isinstance(row, list) and len(row) >= 3 and isinstance(row[0], str):
            out.append(TopToken(row[0], int(row[1]) if isinstance(row[1], int) else -1, _float(row[2])))
    return tuple(out)


def tokens_from(value) -> list[TokenEvent]:
    out = []
    for row in value if isinstance(value, list) else []:
        if isinstance(row, list) and len(row) >= 3 and isinstance(row[0], str):
            out.append(TokenEvent(row[0], int(row[1]) if isinstance(row[1], int) else -1, _float(row[2]),
                                  tops_from(row[3] if len(row) > 3 else [])))
    return out


def score_from(value) -> ScoreResult | None:
    if not isinstance(value, dict):
        return None
    return ScoreResult(tuple(ScoredToken(t.text, t.token_id, t.logprob) for t in tops_from(value.get("tokens"))))


def score_chars(value) -> int | None:
    chars = value.get("chars") if isinstance(value, dict) else None
    return chars if isinstance(chars, int) and not isinstance(chars, bool) and chars >= 0 else None


def final_from(side: dict[str, Any]) -> FinalEvent:
    stats = side.get("stats") if isinstance(side.get("stats"), dict) else {}
    known = {f.name for f in dataclasses.fields(GenerationStats)}
    clean = {k: v for k, v in stats.items() if k in known and (v is None or isinstance(v, (int, float)))}
    reason = side.get("finish_reason") if side.get("finish_reason") in FINISH_WORDS else "stop"
    error = RuntimeError(side["error"]) if isinstance(side.get("error"), str) and side["error"] else None
    return FinalEvent(reason if error is None else "error", str(side.get("text", "")),
                      GenerationStats(**clean), error)


def sampling_from(value) -> SamplingParams | None:
    if not isinstance(value, dict):
        return None
    known = {f.name for f in dataclasses.fields(SamplingParams)}
    fields = {k: v for k, v in value.items() if k in known}
    if isinstance(fields.get("stop"), list):
        fields["stop"] = tuple(str(s) for s in fields["stop"])
    try:
        return SamplingParams(**fields).validate()
    except (TypeError, ValueError):
        return None


def side_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


# --- Markdown ------------------------------------------------------------------------------------------


def _fence(text: str, info: str = "text") -> str:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _stats_line(side: dict[str, Any]) -> str:
    s = side.get("stats") if isinstance(side.get("stats"), dict) else {}
    parts = [finish_words(str(side.get("finish_reason", "")))]
    if s.get("completion_tokens"):
        parts.append(f"{s['completion_tokens']} tokens")
    if s.get("decode_tps"):
        parts.append(f"{s['decode_tps']:.1f} tok/s")
    if s.get("ttft_s"):
        parts.append(f"first token {s['ttft_s'] * 1000:.0f} ms")
    if s.get("prompt_tokens"):
        parts.append(f"prompt {s['prompt_tokens']} tokens")
    return " · ".join(p for p in parts if p)


def _surprise_line(name: str, other: str, side: dict[str, Any]) -> str:
    own, cross = score_from(side.get("own")), score_from(side.get("cross"))
    if cross is None or not cross.tokens:
        return ""
    c = Surprise.of(cross)
    line = f"Under the {other} model: mean logprob {c.mean_logprob:.3f}, perplexity {c.perplexity:.2f}"
    if own is not None and own.tokens:
        o = Surprise.of(own)
        line += (f"; under the {name} model itself: {o.mean_logprob:.3f}, perplexity {o.perplexity:.2f} "
                 f"(the {other} model finds it {describe_ratio(o, c)})")
    return line + "."


def run_to_markdown(data: dict[str, Any], title: str = "") -> str:
    """Both columns, the exact inputs, the settings, the stats and the analysis, for a person to read."""
    prompt = str(data.get("prompt", ""))
    created = _float(data.get("created"), time.time())
    lines = [f"# {title or 'Compare run'}", "",
             f"_Base vs instruct · {time.strftime('%Y-%m-%d %H:%M', time.localtime(created))} · "
             "exported from Tandem_", "", "## Prompt", "", _fence(prompt), ""]
    params = sampling_from(data.get("sampling"))
    if params is not None:
        stop = (", ".join(repr(s) for s in params.stop) or "none").replace("|", "\\|")
        lines += ["## Settings (the same for both)", "", "| setting | value |", "|---|---|",
                  f"| temperature | {params.temperature} |", f"| top-k | {params.top_k} |",
                  f"| top-p | {params.top_p} |", f"| min-p | {params.min_p} |",
                  f"| repeat penalty | {params.repeat_penalty} |", f"| max tokens | {params.max_tokens or 'no limit'} |",
                  f"| stop at | {stop} |", f"| seed | {data.get('seed', params.seed)} |",
                  f"| few-shot (base) | {'yes' if data.get('few_shot') else 'no'} |", ""]
    for name, other, how in (("base", "instruct", "continues the raw prompt"),
                             ("instruct", "base", "answers it as a user message through its chat template")):
        side = side_of(data, name)
        model = Path(str(side.get("model", ""))).name
        lines += [f"## {name.title()}{': `' + model + '`' if model else ''} — {how}", ""]
        if side.get("input"):
            lines += ["Exact input:", "", _fence(str(side["input"])), ""]
        lines += ["Output:", "", _fence(str(side.get("text", ""))), "", *filter(None, [summary_line(str(side.get("text", "")))]), ""]
        if side.get("error"):
            lines += [f"Error: {side['error']}", ""]
        lines += [f"_{_stats_line(side)}_", ""]
        surprise = _surprise_line(name, other, side)
        if surprise:
            lines += [surprise, ""]
    steps = data.get("first_step") if isinstance(data.get("first_step"), dict) else {}
    base_top, inst_top = tops_from(steps.get("base")), tops_from(steps.get("instruct"))
    if base_top or inst_top:
        ov = overlap(base_top, inst_top)
        lines += ["## First step: the next-token distributions", "",
                  f"{len(ov.shared)} of the top {ov.k} tokens are shared; shared probability "
                  f"{ov.mass * 100:.1f}%; {'the same' if ov.same_top else 'a different'} most likely token.", "",
                  "| # | base | p | instruct | p |", "|---|---|---|---|---|"]
        for i in range(max(len(base_top), len(inst_top))):
            cells = []
            for tops in (base_top, inst_top):
                if i < len(tops):
                    shown = repr(tops[i].text).replace("\\\\x", "\\x")  # the engine's byte escapes, once
                    cells += [f"`{shown}`", f"{math.exp(tops[i].logprob) * 100:.2f}%"]
                else:
                    cells += ["", ""]
            lines.append(f"| {i + 1} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
