"""The state of the run the Compare pane shows, as a plain object: no Qt, no widgets.

The pane keeps its widgets and the loaded models are its ``PairModel``; everything about *the run* lives here:
what was sent (the ``PairRequest``), the models' paths, each side's final event, the scores and how much of
each text they cover, the first steps, the analysis' problems, and the history id once saved. The pane and
its controllers observe it: ``subscribe(fn)`` calls ``fn(what)`` after each change ("started", "finished",
"ended", "scored", "analysed" once the analysis of an ended run is over, "opened", "cleared", "saved"), and
they update the widgets from the session. A new view of a run (a details tab's controller) reads the same
object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from desktop.compare import record
from desktop.compare.analysis import ModelView, Scored
from desktop.compare.pair import SIDES, PairRequest
from desktop.core.errors import ScoringUnavailable
from desktop.engine.types import FinalEvent, SamplingParams, ScoreResult, TokenEvent, TopToken

KINDS = ("own", "cross")


def _per_side() -> dict[str, dict[str, object]]:
    return {s: {k: None for k in KINDS} for s in SIDES}


@dataclass
class Outcome:
    """What one model's analysis changed, for the pane to show: scores per (side, kind) and problems."""

    scored: list[tuple[str, str, Scored]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (side, the problem) of a cross score
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # (side, why the model can't score at all)
    first: tuple[TopToken, ...] | None = None
    problems: list[str] = field(default_factory=list)


class CompareSession:
    """One compare run: started here, ended side by side, analysed, saved, or opened from the history."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str], None]] = []
        self.serial = 0  # which run this is: results of an older one must not land on it
        self._reset()

    def _reset(self) -> None:
        self.run_id: int | None = None
        self.prompt = ""
        self.few_shot = False
        self.params: SamplingParams | None = None
        self.seed: int | None = None
        self.models: dict[str, str] = {}
        self.inputs: dict[str, str] = {"base": "", "instruct": ""}
        self.finals: dict[str, FinalEvent] = {}
        self.errors: dict[str, str] = {}  # an opened run's saved error text per side
        self.scores: dict[str, dict] = {}
        self.scored_chars: dict[str, dict] = {}
        self.first: dict[str, tuple[TopToken, ...]] = {}
        self.problems: list[str] = []
        self.analysis_done = False
        self.ended = False  # both sides have their final event
        self.updated_at: float | None = None

    # --- observing -------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def _changed(self, what: str) -> None:
        for listener in list(self._listeners):
            listener(what)

    # --- a run -----------------------------------------------------------------------------------

    def start(self, request: PairRequest, models: dict[str, str]) -> None:
        """A new run replaces the shown one (which stays in the history)."""
        self.serial += 1
        self._reset()
        self.prompt, self.few_shot, self.params = request.prompt, request.few_shot, request.params
        self.seed = request.params.seed
        self.models = dict(models)
        self.inputs = {"base": request.base_input, "instruct": ""}
        self.scores, self.scored_chars = _per_side(), _per_side()
        self._changed("started")

    def templated(self, text: str) -> None:
        """The instruct model's exact input, once its template was rendered."""
        self.inputs["instruct"] = text

    def finish(self, side: str, final: FinalEvent) -> bool:
        """One side ended; True when that was the last one (the run has ended)."""
        self.finals[side] = final
        self._changed("finished")
        if len(self.finals) < len(SIDES) or self.ended:
            return False
        self.ended = True
        self._changed("ended")
        return True

    def stop_unfinished(self, texts: dict[str, str]) -> None:
        """The run is being replaced mid-stream: what each side wrote so far counts as stopped."""
        for side, text in texts.items():
            self.finals.setdefault(side, FinalEvent("cancelled", text))

    def replace(self) -> None:
        """Move on (a new run, an opened one): results still on their way belong to the old serial."""
        self.serial += 1

    def failed_sides(self) -> list[str]:
        return [s for s in SIDES if s in self.finals and self.finals[s].error is not None]

    # --- the analysis ----------------------------------------------------------------------------

    def apply_view(self, model: str, view: ModelView, describe: Callable[[BaseException], str]) -> Outcome:
        """Record one model's view (its scores of both texts and its first step)."""
        other = "instruct" if model == "base" else "base"
        out = Outcome()
        for side, kind, scored in ((model, "own", view.own), (other, "cross", view.cross)):
            if isinstance(scored, ScoringUnavailable):  # the model can't score at all: one line, in the column
                if kind == "cross":
                    out.problems.append(f"Not scored by the {model} model: {scored.note}.")
                    out.unavailable.append((side, out.problems[-1]))
                continue
            if isinstance(scored, BaseException):
                out.problems.append(f"Could not score the {side} output under the {model} model: "
                                    f"{describe(scored)}")
                if kind == "cross":
                    out.failed.append((side, out.problems[-1]))
                continue
            self.scores[side][kind] = scored.result
            self.scored_chars[side][kind] = scored.chars
            out.scored.append((side, kind, scored))
        if isinstance(view.first, BaseException):
            out.problems.append(f"No first step from the {model} model: {describe(view.first)}")
        else:
            self.first[model] = view.first
            out.first = view.first
        self.problems.extend(out.problems)
        self._changed("scored")
        return out

    def analysis_failed(self, problem: str) -> None:
        self.problems.append(problem)

    def analysis_finished(self) -> None:
        self.analysis_done = True
        self._changed("analysed")

    # --- the history -----------------------------------------------------------------------------

    def builder(self, events: dict[str, list[TokenEvent]], few_shot_template: str) -> Callable[[], dict]:
        """A function that builds the run's history record from a snapshot taken now. The snapshot is cheap
        (immutable events and scores); building thousands of tokens' JSON can happen off the GUI thread."""
        sides = {side: (self.models.get(side, ""), self.inputs.get(side, ""), self.finals.get(side),
                        list(events.get(side, ())), dict(self.scores.get(side, {})),
                        dict(self.scored_chars.get(side, {}))) for side in SIDES}
        head = {"version": record.RUN_VERSION, "prompt": self.prompt, "few_shot": self.few_shot,
                "few_shot_template": few_shot_template, "seed": self.seed,
                "sampling": record.sampling_json(self.params) if self.params else {}, "created": time.time()}
        tops = {side: self.first.get(side, ()) for side in SIDES}

        def build() -> dict:
            data = dict(head)
            for side, (model, model_input, final, side_events, scores, chars) in sides.items():
                data[side] = record.side_json(model, model_input, final, side_events, scores.get("own"),
                                              scores.get("cross"), own_chars=chars.get("own"),
                                              cross_chars=chars.get("cross"))
            if tops["base"] or tops["instruct"]:
                data["first_step"] = {side: record.tops_json(t) for side, t in tops.items()}
            return data

        return build

    def saved(self, run_id: int) -> None:
        self.run_id = run_id
        self._changed("saved")

    def open(self, run_id: int, data: dict, updated_at: float) -> dict[str, list[TokenEvent]]:
        """Load a saved run; returns each side's token events (empty when they don't add up to its text)."""
        self.replace()
        self._reset()
        self.run_id, self.updated_at = run_id, updated_at
        self.prompt = str(data.get("prompt", ""))
        self.few_shot = bool(data.get("few_shot", False))
        self.seed = data.get("seed") if isinstance(data.get("seed"), int) else None
        self.params = record.sampling_from(data.get("sampling"))
        events: dict[str, list[TokenEvent]] = {}
        for side in SIDES:
            side_data = record.side_of(data, side)
            tokens = record.tokens_from(side_data.get("tokens"))
            final = record.final_from(side_data)
            events[side] = tokens if tokens and "".join(e.text for e in tokens) == final.text else []
            self.finals[side] = final
            self.errors[side] = str(side_data.get("error", ""))
            self.models[side] = str(side_data.get("model", ""))
            self.inputs[side] = str(side_data.get("input", ""))
            self.scores[side] = {k: record.score_from(side_data.get(k)) for k in KINDS}
            self.scored_chars[side] = {k: record.score_chars(side_data.get(k)) for k in KINDS}
        steps = data.get("first_step") if isinstance(data.get("first_step"), dict) else {}
        self.first = {side: tops for side in SIDES if (tops := record.tops_from(steps.get(side)))}
        self.ended = self.analysis_done = True
        self._changed("opened")
        return events

    def clear(self) -> None:
        self.replace()
        self._reset()
        self._changed("cleared")

    def score_of(self, side: str, kind: str) -> ScoreResult | None:
        return self.scores.get(side, {}).get(kind)
