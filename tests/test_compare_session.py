"""Compare's Qt-free run state and pair request: what the pane and `tandem compare` share."""

from __future__ import annotations

from desktop.compare import record
from desktop.compare.analysis import ModelView, Scored
from desktop.compare.pair import PairRequest, with_run_seed
from desktop.compare.presets import DEFAULT_FEW_SHOT_TEMPLATE, FEW_SHOT_STOP, wrap_few_shot
from desktop.compare.session import CompareSession
from desktop.core.errors import ContextOverflow
from desktop.engine.types import (
    FinalEvent,
    GenerationStats,
    SamplingParams,
    ScoredToken,
    ScoreResult,
    TokenEvent,
)


def test_a_pair_request_wraps_only_the_base_side():
    params = SamplingParams(seed=5, stop=("###",))
    plain = PairRequest.make("Name an animal.", params)
    assert plain.base_input == "Name an animal." and plain.base_params == params and not plain.few_shot
    few = PairRequest.make("Name an animal.", params, few_shot_template=DEFAULT_FEW_SHOT_TEMPLATE)
    assert few.base_input == wrap_few_shot(DEFAULT_FEW_SHOT_TEMPLATE, "Name an animal.")
    assert few.base_params.stop == ("###", FEW_SHOT_STOP) and few.params.stop == ("###",) and few.few_shot
    assert few.messages == [{"role": "user", "content": "Name an animal."}]


def test_one_seed_is_drawn_for_the_run_unless_pinned():
    assert with_run_seed(SamplingParams(seed=7)).seed == 7
    drawn = with_run_seed(SamplingParams())
    assert drawn.seed is not None and 0 <= drawn.seed < 2**31


def test_a_session_ends_when_both_sides_did_and_tells_its_observers():
    session, seen = CompareSession(), []
    session.subscribe(seen.append)
    request = PairRequest.make("Hi", SamplingParams(seed=3))
    session.start(request, {"base": "/m/base.gguf", "instruct": "/m/instruct.gguf"})
    serial = session.serial
    assert not session.finish("base", FinalEvent("stop", "Hello"))
    assert session.finish("instruct", FinalEvent("length", "Hey"))
    assert not session.finish("instruct", FinalEvent("length", "Hey"))  # ends once
    assert seen == ["started", "finished", "finished", "ended", "finished"]
    assert session.seed == 3 and session.serial == serial and session.failed_sides() == []
    session.replace()
    assert session.serial == serial + 1  # results still on their way belong to the old run


def test_a_view_records_scores_and_names_what_failed():
    session = CompareSession()
    session.start(PairRequest.make("Hi", SamplingParams(seed=1)), {})
    own = Scored(ScoreResult((ScoredToken("Hello", 5, -0.5),)), 5, 5)
    view = ModelView(own, ContextOverflow("too long", 10, 8), ())
    outcome = session.apply_view("base", view, str)
    assert session.scores["base"]["own"] is own.result and session.scored_chars["base"]["own"] == 5
    assert session.scores["instruct"]["cross"] is None
    assert outcome.failed == [("instruct", "Could not score the instruct output under the base model: too long")]
    assert outcome.first == () and session.first["base"] == ()
    assert session.problems == [outcome.failed[0][1]]


def test_a_saved_run_opens_back_into_a_session():
    session = CompareSession()
    session.start(PairRequest.make("Hi", SamplingParams(seed=9, temperature=0.5)), {"base": "b.gguf",
                                                                                    "instruct": "i.gguf"})
    session.templated("<|im_start|>user\nHi<|im_end|>\n")
    events = {"base": [TokenEvent("Hel", 1, -0.1), TokenEvent("lo", 2, -0.2)], "instruct": []}
    session.finish("base", FinalEvent("stop", "Hello", GenerationStats(completion_tokens=2, seed=9)))
    session.finish("instruct", FinalEvent("error", "", error=RuntimeError("no template")))
    data = session.builder(events, "Q: {prompt}\nA:")()
    assert data["version"] == record.RUN_VERSION and data["seed"] == 9 and data["base"]["model"] == "b.gguf"

    opened = CompareSession()
    got = opened.open(42, data, updated_at=1.0)
    assert opened.run_id == 42 and opened.prompt == "Hi" and opened.seed == 9 and opened.ended
    assert [e.text for e in got["base"]] == ["Hel", "lo"] and got["instruct"] == []
    assert opened.finals["base"].text == "Hello" and opened.finals["instruct"].finish_reason == "error"
    assert opened.errors["instruct"] == "no template"
    assert opened.inputs["instruct"].startswith("<|im_start|>user")
    assert opened.params is not None and opened.params.temperature == 0.5


def test_the_session_docstring_names_every_event_it_emits():
    """Its docstring is how a new view learns what to observe: every ``_changed("...")`` is named there."""
    import ast
    import inspect

    from desktop.compare import session as module

    tree = ast.parse(inspect.getsource(module))
    emitted = {node.args[0].value for node in ast.walk(tree)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "_changed" and node.args and isinstance(node.args[0], ast.Constant)}
    assert "analysed" in emitted and len(emitted) >= 8
    missing = [what for what in sorted(emitted) if f'"{what}"' not in module.__doc__]
    assert not missing, missing
