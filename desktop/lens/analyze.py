"""Token shift and cross-scoring of one prompt on a base/instruct pair, through the ``Model`` protocol only.

Everything here works on any backend that implements ``desktop.engine.model.Model`` with
``score(..., top_k=)`` ranks (local llama.cpp now, remote servers later). The instruct model's answer is
scored by its own token ids, so the base model is asked about exactly the tokens the instruct model
produced (the paper's o_t), never a re-tokenization of their text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from desktop.core.errors import ChatTemplateError, ContextOverflow, EngineError, TandemError
from desktop.engine.types import FinalEvent, SamplingParams
from desktop.lens import preset
from desktop.lens.shift import CONTEXT_NOTES, ShiftResult, check_same_vocab, token_shift

CONTEXTS = tuple(CONTEXT_NOTES)  # "plain", "urial", "icl", "chat"
# The base model reads the query through its *own* chat template, the input the instruct side had (Compare's
# check, the CLI's ``--base-context template``). The same file on both sides, greedy, gives exactly 100 %
# unshifted.
CHAT_CONTEXT = "chat"
CHAT_CONTEXT_NOTE = CONTEXT_NOTES[CHAT_CONTEXT]
DEFAULT_TOP_K = 20  # alternatives per position from each model: the base's top-3 and the KL's support


def greedy(max_tokens: int = 256, seed: int = 0) -> SamplingParams:
    """Pure argmax decoding, as in the paper: no repetition penalty (it would move the argmax)."""
    return SamplingParams(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                          max_tokens=max_tokens, seed=seed)


def base_context(query: str, context: str) -> str:
    """The text the base model sees before an answer: the plain query, the ``# Query:`` wrapper, or the
    in-context alignment preset with the wrapper."""
    if context == "plain":
        return query
    if context == "urial":
        return preset.wrap_query(query)
    if context == "icl":
        return preset.wrap_prompt(query)
    if context == CHAT_CONTEXT:
        raise ValueError("the chat-template context is a conversation, not a text prompt")
    raise ValueError(f"unknown base context {context!r}; use one of {', '.join(CONTEXTS)}")


def has_chat_template(model) -> bool:
    return bool(getattr(model.info, "chat_template", None))


def instruct_context_name(instruct) -> str:
    return "chat template" if has_chat_template(instruct) else "same as base"


def require_sibling(base, instruct) -> None:
    """Raise VocabMismatch (one line) unless both models share one vocabulary, and EngineError when a
    backend can't report token ranks (``capabilities.score_ranks``; a model without the attribute is the
    local engine, which can)."""
    for model, role in ((base, "base"), (instruct, "instruct")):
        caps = getattr(model, "capabilities", None)
        if caps is not None and not (caps.scoring and caps.score_ranks):
            note = caps.scoring_note or "it can't report token ranks"
            raise EngineError(f"The {role} model can't be used for token shift: {note}")
    check_same_vocab(base.vocab_id, instruct.vocab_id, _name(base, "the base model"),
                     _name(instruct, "the instruct model"))


def require_context(base, context: str) -> None:
    """Raise ChatTemplateError (one line) when the base model is asked to read a chat template it lacks."""
    if context == CHAT_CONTEXT and not has_chat_template(base):
        raise ChatTemplateError(f"{_name(base, 'The base model')} has no chat template to read the query "
                                "through; use another base context (plain, urial or icl).")


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str
    seconds: float


def generate(model, prompt: str, params: SamplingParams, *, as_chat: bool, system: str | None = None,
             should_stop: Callable[[], bool] | None = None) -> Generation:
    """Run one generation to its end; the stream's error is raised. ``should_stop`` is polled between
    tokens: when it says so the stream is cancelled and EngineError("...cancelled") raised."""
    t0 = time.perf_counter()
    if as_chat:
        stream = model.chat([{"role": "user", "content": prompt}], params, system=system)
    else:
        stream = model.complete(prompt, params)
    ids: list[int] = []
    final = None
    for event in stream:
        if isinstance(event, FinalEvent):
            final = event
            break
        ids.append(event.token_id)
        if should_stop is not None and should_stop():
            stream.cancel()
    assert final is not None
    if final.error is not None:
        raise final.error
    if final.finish_reason == "cancelled":
        raise EngineError("The generation was cancelled.")
    return Generation(final.text, tuple(ids), final.finish_reason, time.perf_counter() - t0)


def generate_instruct(instruct, query: str, params: SamplingParams, *, context: str = "plain",
                      system: str | None = None, should_stop: Callable[[], bool] | None = None) -> Generation:
    """The instruct model's answer: through its chat template, or (a model without one) from the base's context."""
    if has_chat_template(instruct):
        return generate(instruct, query, params, as_chat=True, system=system, should_stop=should_stop)
    if context == CHAT_CONTEXT:
        raise ChatTemplateError(f"{_name(instruct, 'The instruct model')} has no chat template; the "
                                "chat-template base context needs one on both sides.")
    return generate(instruct, base_context(query, context), params, as_chat=False, should_stop=should_stop)


def generate_base(base, query: str, params: SamplingParams, *, context: str = "plain",
                  system: str | None = None, should_stop: Callable[[], bool] | None = None) -> Generation:
    """The base model's own answer from the same context its ranks are read in. Under the ``# Query:``
    framing it stops at the next ``# Query:`` and drops the closing fence."""
    if context == CHAT_CONTEXT:
        require_context(base, context)
        return generate(base, query, params, as_chat=True, system=system, should_stop=should_stop)
    if context == "plain":
        return generate(base, query, params, as_chat=False, should_stop=should_stop)
    stops = tuple(dict.fromkeys((*params.stop, *preset.STOP)))
    g = generate(base, base_context(query, context), _replace(params, stop=stops), as_chat=False,
                 should_stop=should_stop)
    return Generation(preset.clean_answer(g.text), g.token_ids, g.finish_reason, g.seconds)


def shift_answer(base, instruct, query: str, answer: str | Sequence[int], *, context: str = "plain",
                 top_k: int = DEFAULT_TOP_K, system: str | None = None) -> tuple[ShiftResult, Any, Any]:
    """The token shift of ``answer`` (text, or the instruct model's own token ids) to ``query``.

    Two passes: the instruct model scores the answer in its own context (its logprobs and top-k, and
    the token ids when the answer is text); the base model scores those same ids after its context,
    with ranks. Returns (shift, instruct ScoreResult, base ScoreResult)."""
    require_sibling(base, instruct)
    if top_k < 3:
        raise ValueError("top_k must be 3 or more (the base model's top-3 is part of the result)")
    chat = has_chat_template(instruct)
    ctx = query if context == CHAT_CONTEXT else base_context(query, context)
    inst = instruct.score(query if chat else ctx, answer, as_chat=chat, system=system if chat else None,
                          top_k=top_k)
    ids = [t.token_id for t in inst.tokens]
    if context == CHAT_CONTEXT:  # the base model's own chat template (it must have one)
        base_scored = base.score(query, ids, as_chat=True, system=system, top_k=top_k)
    else:
        base_scored = base.score(ctx, ids, top_k=top_k)
    result = token_shift(base_scored.tokens, inst.tokens, context=context,
                         instruct_context=instruct_context_name(instruct), top_k=top_k)
    return result, inst, base_scored


def perplexity(score_result) -> float | None:
    """exp(-mean logprob) of a scored text; None for no tokens."""
    if not score_result.tokens:
        return None
    return math.exp(-score_result.mean_logprob)


def score_ids(model, query: str, ids: Sequence[int], *, context: str, as_chat: bool,
              system: str | None = None, top_k: int = 0):
    """Score token ids (never their re-tokenized text, which may be longer) after a model's input; when they
    don't all fit its context, their beginning that does. Returns (ScoreResult, how many ids it covers)."""
    ids = list(ids)
    if as_chat:
        call = lambda part: model.score(query, part, as_chat=True, system=system, top_k=top_k)  # noqa: E731
    else:
        call = lambda part: model.score(base_context(query, context), part, top_k=top_k)  # noqa: E731
    try:
        return call(ids), len(ids)
    except ContextOverflow as exc:
        keep = len(ids) - (exc.prompt_tokens - exc.n_ctx + 1)
        if not (exc.n_ctx and exc.prompt_tokens) or keep <= 0:  # the input alone fills the context
            raise
    return call(ids[:keep]), keep


def run_prompt(base, instruct, query: str, *, context: str = "plain", params: SamplingParams | None = None,
               top_k: int = DEFAULT_TOP_K, system: str | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict:
    """Everything the experiment records for one prompt: both outputs, the token shift of the instruct
    answer, and cross-scoring (each answer's perplexity under its own model and under the other).

    Each part is computed apart: one that fails (the engine refuses it, its input doesn't fit) is named with
    its reason under ``"failed"`` and the others are kept. Every answer is scored by its own token ids; where
    those don't fit a model's context with its input, their beginning is, and ``"cut"`` says how much. Raises
    the first error only when no part at all could be computed (the prompt is then tried again on resume)."""
    params = params or greedy()
    t0 = time.perf_counter()
    chat = has_chat_template(instruct)
    base_chat = context == CHAT_CONTEXT
    failed: dict[str, str] = {}
    cut: dict[str, dict[str, int]] = {}
    errors: list[TandemError] = []

    def part(name: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except TandemError as exc:
            if should_stop is not None and should_stop():
                raise  # stopped: the whole prompt runs again next time
            failed[name] = str(exc)
            errors.append(exc)
            return None

    def scored(name: str, model, ids: Sequence[int], as_chat: bool, k: int = 0):
        got = part(name, lambda: score_ids(model, query, ids, context=context, as_chat=as_chat,
                                           system=system if as_chat else None, top_k=k))
        if got is None:
            return None
        result, n = got
        if n < len(ids):
            cut[name] = {"scored": n, "of": len(ids)}
        return result

    require_context(base, context)
    inst_gen = part("instruct answer", lambda: generate_instruct(instruct, query, params, context=context,
                                                                 system=system, should_stop=should_stop))
    shift = inst_scored = base_on_inst = None
    if inst_gen is not None:
        inst_ids = list(inst_gen.token_ids)
        inst_scored = scored("instruct answer under its own model", instruct, inst_ids, chat, top_k)
        if inst_scored is not None:
            ids = [t.token_id for t in inst_scored.tokens]
            base_on_inst = scored("token shift (instruct answer under the base model)", base, ids, base_chat,
                                  top_k)
        if base_on_inst is not None:
            shift = token_shift(base_on_inst.tokens, inst_scored.tokens[:len(base_on_inst.tokens)],
                                context=context, instruct_context=instruct_context_name(instruct), top_k=top_k)
    base_gen = part("base answer", lambda: generate_base(base, query, params, context=context, system=system,
                                                         should_stop=should_stop))
    base_own = base_other = None
    if base_gen is not None and base_gen.token_ids:
        base_ids = list(base_gen.token_ids)
        base_own = scored("base answer under its own model", base, base_ids, base_chat)
        base_other = scored("base answer under the instruct model", instruct, base_ids, chat)
    if inst_gen is None and base_gen is None:
        raise errors[0]
    empty = ShiftResult(context=context, instruct_context=instruct_context_name(instruct), top_k=top_k, tokens=())
    record = {
        "instruct": ({"text": inst_gen.text, "finish_reason": inst_gen.finish_reason,
                      "n_tokens": len(inst_gen.token_ids)} if inst_gen is not None else None),
        "base": ({"text": base_gen.text, "finish_reason": base_gen.finish_reason,
                  "n_tokens": len(base_gen.token_ids)} if base_gen is not None else None),
        "shift": (shift or empty).as_json(),
        "cross": {
            "instruct_answer": {"own": _ppl(perplexity(inst_scored) if inst_scored else None),
                                "other": _ppl(perplexity(base_on_inst) if base_on_inst else None)},
            "base_answer": {"own": _ppl(perplexity(base_own) if base_own else None),
                            "other": _ppl(perplexity(base_other) if base_other else None)},
        },
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if failed:
        record["failed"] = failed
    if cut:
        record["cut"] = cut
    return record


def _ppl(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4)


def _replace(params: SamplingParams, **changes) -> SamplingParams:
    from dataclasses import replace

    return replace(params, **changes)


def _name(model, fallback: str) -> str:
    name = getattr(model.info, "name", "") or ""
    return name or fallback
