"""Token distribution shift (Lin et al., "The Unlocking Spell on Base LLMs", URIAL, ICLR 2024), pure maths.

For an instruct model's answer o to a query q, the *rank* η of each o_t among the base model's next-token
choices given q + o<t says whether instruction tuning changed that token: η = 1 unshifted (the base model
would have said it too), 2-3 marginal, > 3 shifted. This module turns two scored passes over the same
tokens (the base's with ranks, the instruct's with its own top-k) into per-token rows, per-answer shares,
and a per-position divergence. It knows nothing about how the passes were made: no engine, no Qt.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from desktop.core.errors import VocabMismatch
from desktop.engine.types import TopToken

ShiftClass = Literal["unshifted", "marginal", "shifted"]
CLASSES: tuple[ShiftClass, ...] = ("unshifted", "marginal", "shifted")
# Position buckets of an answer's tokens: the paper finds the shift concentrated at the start.
POSITION_BUCKETS: tuple[tuple[str, int, int | None], ...] = (("1-5", 0, 5), ("6-20", 5, 20), ("21+", 20, None))
KL_NOTE = ("KL(instruct || base) over the union of both models' top-{k} tokens; a token missing from one "
           "model's top-{k} gets that model's k-th probability (an upper bound); both renormalised over the union.")

# How a base model's context was built (the result says which).
CONTEXT_NOTES = {
    "plain": "the plain query, as in the paper",
    "urial": "the URIAL code's '# Query:' ... '# Answer:' wrapper around the query",
    "icl": "the in-context alignment preset (preamble + 3 examples) and the '# Query:' wrapper",
    "chat": "the query through its own chat template, as the instruct side read it",
}


@dataclass(frozen=True, slots=True)
class PaperRow:
    """One pair's token-shift split as the URIAL paper reports it (percent of answer tokens)."""

    pair: str
    unshifted: float
    marginal: float
    shifted: float


PAPER_ROWS: tuple[PaperRow, ...] = (
    PaperRow("Llama-2-7b → Llama-2-7b-chat", 77.7, 14.5, 7.8),
    PaperRow("Mistral-7B → Mistral-7B-Instruct", 82.2, 12.5, 5.2),
)


def classify(rank: int) -> ShiftClass:
    """The paper's classes: rank 1 unshifted, 2-3 marginal, above 3 shifted."""
    if rank < 1:
        raise ValueError(f"a rank starts at 1, got {rank}")
    return "unshifted" if rank == 1 else "marginal" if rank <= 3 else "shifted"


def check_same_vocab(base_id: str, instruct_id: str, base_name: str = "the base model",
                     instruct_name: str = "the instruct model") -> None:
    """Token shift compares token ranks, so both models must share one vocabulary: refuse in one line."""
    if not base_id or not instruct_id:
        raise VocabMismatch(f"Can't tell whether {base_name} and {instruct_name} share a vocabulary; "
                            "token shift needs a sibling pair from one family.")
    if base_id == instruct_id:
        return
    n_base, n_inst = base_id.split(":", 1)[0], instruct_id.split(":", 1)[0]
    if n_base != n_inst:
        detail = f"{int(n_base):,} vs {int(n_inst):,} tokens" if n_base.isdigit() and n_inst.isdigit() else "sizes differ"
    else:
        detail = f"both {int(n_base):,} tokens, but different token texts" if n_base.isdigit() else "texts differ"
    raise VocabMismatch(f"{base_name} and {instruct_name} have different vocabularies ({detail}): token shift "
                        "needs a base/instruct sibling pair from one family (e.g. a catalog pair).")


@dataclass(frozen=True, slots=True)
class TokenShift:
    """One answer token: its rank among the base model's choices and what each model thought of it."""

    position: int  # 0-based index in the answer
    text: str
    token_id: int
    rank: int
    cls: ShiftClass
    base_logprob: float
    instruct_logprob: float | None  # None where the instruct pass tokenized this stretch differently
    base_top: tuple[TopToken, ...]  # the base model's top-3
    kl: float | None  # KL(instruct || base) on the truncated top-k distributions (see KL_NOTE)

    def as_json(self) -> dict:
        return {
            "position": self.position, "text": self.text, "token_id": self.token_id, "rank": self.rank,
            "class": self.cls, "base_logprob": _r(self.base_logprob), "instruct_logprob": _r(self.instruct_logprob),
            "base_top": [{"text": a.text, "token_id": a.token_id, "logprob": _r(a.logprob)} for a in self.base_top],
            "kl": _r(self.kl),
        }


@dataclass(frozen=True, slots=True)
class Shares:
    """Percent of tokens per class (None when there are no tokens)."""

    n: int
    unshifted: float | None
    marginal: float | None
    shifted: float | None

    @classmethod
    def of(cls, classes: Sequence[str]) -> Shares:
        n = len(classes)
        if not n:
            return cls(0, None, None, None)
        counts = Counter(classes)
        return cls(n, *(100.0 * counts[c] / n for c in CLASSES))

    def as_json(self) -> dict:
        return {"n": self.n, "unshifted": _r(self.unshifted, 3), "marginal": _r(self.marginal, 3),
                "shifted": _r(self.shifted, 3)}


@dataclass(frozen=True, slots=True)
class ShiftResult:
    """The token shift of one answer. ``context`` names how the base model's context was built."""

    context: str  # "plain" | "urial" | "icl" (see CONTEXT_NOTES), or "chat" (analyze.CHAT_CONTEXT)
    instruct_context: str  # "chat template" or, for a model without one, "same as base"
    top_k: int
    tokens: tuple[TokenShift, ...]

    @property
    def shares(self) -> Shares:
        return Shares.of([t.cls for t in self.tokens])

    def shares_by_position(self) -> dict[str, Shares]:
        return {label: Shares.of([t.cls for t in self.tokens[lo:hi]]) for label, lo, hi in POSITION_BUCKETS}

    def top_shifted(self, n: int = 10) -> list[tuple[str, int]]:
        return top_shifted_tokens([self], n)

    @property
    def mean_kl(self) -> float | None:
        values = [t.kl for t in self.tokens if t.kl is not None]
        return sum(values) / len(values) if values else None

    def as_json(self, with_tokens: bool = True) -> dict:
        out = {
            "context": self.context, "context_note": CONTEXT_NOTES.get(self.context, self.context),
            "instruct_context": self.instruct_context,
            "shares": self.shares.as_json(),
            "shares_by_position": {k: v.as_json() for k, v in self.shares_by_position().items()},
            "top_shifted": [{"text": t, "count": c} for t, c in self.top_shifted()],
            "mean_kl": _r(self.mean_kl), "kl_note": KL_NOTE.format(k=self.top_k),
        }
        if with_tokens:
            out["tokens"] = [t.as_json() for t in self.tokens]
        return out


def top_shifted_tokens(results: Sequence[ShiftResult], n: int = 10) -> list[tuple[str, int]]:
    """The most frequent shifted tokens (by text, stripped of surrounding spaces), most frequent first;
    ties in first-seen order."""
    counts: Counter[str] = Counter()
    for result in results:
        for t in result.tokens:
            if t.cls == "shifted":
                key = t.text.strip() or repr(t.text)
                counts[key] += 1
    return counts.most_common(n)


def topk_kl(p_top: Sequence[tuple[int, float]], q_top: Sequence[tuple[int, float]]) -> float | None:
    """KL(P || Q) over the union of two top-k lists of (token id, logprob); see KL_NOTE for the truncation."""
    if not p_top or not q_top:
        return None
    p, q = dict(p_top), dict(q_top)
    p_floor, q_floor = min(p.values()), min(q.values())
    union = sorted(set(p) | set(q))
    pv = [math.exp(p.get(i, p_floor)) for i in union]
    qv = [math.exp(q.get(i, q_floor)) for i in union]
    ps, qs = sum(pv), sum(qv)
    kl = 0.0
    for a, b in zip(pv, qv):
        a, b = a / ps, b / qs
        if a > 0:
            kl += a * math.log(a / b)
    return max(kl, 0.0)


def token_shift(base_tokens: Sequence, instruct_tokens: Sequence | None, *, context: str,
                instruct_context: str, top_k: int) -> ShiftResult:
    """Per-token rows from the base model's scored pass (``ScoredToken`` with ``rank`` and ``top``) over
    the answer, joined with the instruct model's pass over the same answer where the tokens match.

    The passes are joined by token id (difflib's longest matching blocks): when both were scored from the
    same ids they match one to one; a stretch tokenized differently has no instruct values."""
    inst_for: dict[int, object] = {}
    if instruct_tokens:
        a = [t.token_id for t in base_tokens]
        b = [t.token_id for t in instruct_tokens]
        if a == b:
            inst_for = dict(enumerate(instruct_tokens))
        else:
            for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
                for k in range(block.size):
                    inst_for[block.a + k] = instruct_tokens[block.b + k]
    rows = []
    for i, t in enumerate(base_tokens):
        if t.rank is None:
            raise ValueError("the base model's pass carries no ranks: score it with top_k > 0")
        inst = inst_for.get(i)
        kl = None
        if inst is not None and inst.top and t.top:
            kl = topk_kl([(a.token_id, a.logprob) for a in inst.top], [(a.token_id, a.logprob) for a in t.top])
        rows.append(TokenShift(
            position=i, text=t.text, token_id=t.token_id, rank=t.rank, cls=classify(t.rank),
            base_logprob=t.logprob, instruct_logprob=None if inst is None else inst.logprob,
            base_top=tuple(t.top[:3]), kl=kl))
    return ShiftResult(context=context, instruct_context=instruct_context, top_k=top_k, tokens=tuple(rows))


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far two answers from one vocabulary agree, token for token: the in-context-aligned base
    model's own answer against the instruct model's (does prompting alone make the base say the same?)."""

    n_a: int
    n_b: int
    common_prefix: int  # tokens both answers start with, in order
    matched: int  # tokens in stretches both answers share (difflib's matching blocks), counted once per answer

    @property
    def share(self) -> float | None:
        """Percent of both answers' tokens that sit in shared stretches (None for two empty answers)."""
        total = self.n_a + self.n_b
        return 200.0 * self.matched / total if total else None


def answer_agreement(a_ids: Sequence[int], b_ids: Sequence[int]) -> Agreement:
    """The common start and the shared stretches of two answers' token ids (same vocabulary)."""
    a, b = list(a_ids), list(b_ids)
    prefix = 0
    for x, y in zip(a, b):
        if x != y:
            break
        prefix += 1
    blocks = SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return Agreement(len(a), len(b), prefix, sum(block.size for block in blocks))


def pooled_shares(results: Sequence[ShiftResult]) -> Shares:
    """Shares over every token of every answer (token-weighted, as the paper's ratios)."""
    return Shares.of([t.cls for r in results for t in r.tokens])


def pooled_by_position(results: Sequence[ShiftResult]) -> dict[str, Shares]:
    return {label: Shares.of([t.cls for r in results for t in r.tokens[lo:hi]])
            for label, lo, hi in POSITION_BUCKETS}


def _r(x: float | None, digits: int = 6) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(x, digits)
