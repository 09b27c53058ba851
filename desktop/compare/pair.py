"""One prompt through a base model and its instruct sibling at once: the pair runner the CLI's
``tandem compare`` and the Compare pane share.

The base model gets the prompt as raw text (``complete``; wrapped in the few-shot template when asked, with
the template's stop string added), the instruct model gets it as a user message through its chat template
(``chat``). Both decode at the same time, so each gets its share of the cores (``split_threads``). The pane
runs each side's ``start`` on its own stream job; the CLI calls ``run_pair``, which drains both here.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass

from desktop.compare.presets import FEW_SHOT_STOP, wrap_few_shot
from desktop.engine.backends import split_threads
from desktop.engine.model import GenerationStream, Model
from desktop.engine.types import FinalEvent, SamplingParams, TokenEvent
from desktop.lens import preset as lens_preset

SIDES = ("base", "instruct")


@dataclass(frozen=True)
class PairRequest:
    """What each side of one run is sent."""

    prompt: str
    params: SamplingParams  # the instruct side's (and the run's) sampling
    base_input: str  # the prompt, or the prompt wrapped in the few-shot template
    base_params: SamplingParams  # ``params`` plus the few-shot stop string, when few-shot
    system: str | None = None
    few_shot: bool = False

    @classmethod
    def make(cls, prompt: str, params: SamplingParams, *, few_shot_template: str | None = None,
             system: str | None = None) -> PairRequest:
        """``few_shot_template``: wrap the base model's input in it (None: the raw prompt)."""
        if few_shot_template is None:
            return cls(prompt, params, prompt, params, system)
        base_params = params
        if FEW_SHOT_STOP not in params.stop:
            base_params = dataclasses.replace(params, stop=(*params.stop, FEW_SHOT_STOP))
        return cls(prompt, params, wrap_few_shot(few_shot_template, prompt), base_params, system, True)

    @classmethod
    def in_context(cls, prompt: str, params: SamplingParams, system: str | None = None) -> PairRequest:
        """The base model under the in-context alignment preset (``desktop.lens.preset``: a preamble and
        three stylistic examples before a ``# Query:`` wrapper), stopping where it would start a new query."""
        stops = tuple(dict.fromkeys((*params.stop, *lens_preset.STOP)))
        return cls(prompt, params, lens_preset.wrap_prompt(prompt), dataclasses.replace(params, stop=stops),
                   system)

    @property
    def uses_preset(self) -> bool:
        return is_in_context(self.prompt, self.base_input)

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]


def is_in_context(prompt: str, base_input: str) -> bool:
    """Whether a run's base input is the in-context alignment preset around its prompt (a reopened run too)."""
    return bool(prompt.strip()) and base_input == lens_preset.wrap_prompt(prompt)


def with_run_seed(params: SamplingParams) -> SamplingParams:
    """One seed for both sides: the pinned one, else one drawn for this run (shown, and saved with it)."""
    return params if params.seed is not None else dataclasses.replace(params, seed=random.randrange(2**31))


def start(side: str, model: Model, request: PairRequest, threads: int | None) -> GenerationStream:
    """Start one side's stream (it waits while its model is busy with another request)."""
    if side == "base":
        return model.complete(request.base_input, request.base_params, threads=threads)
    return model.chat(request.messages, request.params, system=request.system, threads=threads)


def pair_threads(base: Model, instruct: Model) -> int | None:
    """Threads per model while both decode (one model in both columns keeps its own count)."""
    return split_threads([base, instruct])


def run_pair(base: Model, instruct: Model, request: PairRequest
             ) -> dict[str, tuple[FinalEvent, list[TokenEvent]]]:
    """Stream both sides concurrently and wait; Ctrl+C stops both. Returns side -> (final, tokens)."""
    threads = pair_threads(base, instruct)
    streams = {"base": start("base", base, request, threads), "instruct": start("instruct", instruct, request, threads)}
    results: dict[str, tuple[FinalEvent, list[TokenEvent]]] = {}

    def drain(side: str) -> None:
        tokens: list[TokenEvent] = []
        for event in streams[side]:
            if isinstance(event, FinalEvent):
                results[side] = (event, tokens)
            else:
                tokens.append(event)

    workers = [threading.Thread(target=drain, args=(side,), daemon=True) for side in streams]
    for t in workers:
        t.start()
    try:
        for t in workers:
            while t.is_alive():
                t.join(0.1)
    except KeyboardInterrupt:
        for s in streams.values():
            s.cancel()
        for t in workers:
            t.join(10)
    return results
