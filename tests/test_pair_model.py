"""The Qt-free pane and pair models: what a pane reads (handle, status, capabilities) and the typed events
it observes, driven with a real tiny model's handle."""

from __future__ import annotations

import pytest

from desktop.compare.events import EmitterGroup
from desktop.compare.pair_model import PairModel
from desktop.compare.pane_model import PaneModel
from desktop.engine import load_model
from desktop.engine.types import LoadOptions


@pytest.fixture(scope="module")
def handle(tiny_base):
    model = load_model(str(tiny_base), LoadOptions(threads=1, n_ctx=256))
    yield model
    model.close()


def test_a_pane_model_goes_through_its_states_and_says_each_one(handle, tiny_base):
    model = PaneModel()
    seen = []
    for name in ("picked", "loading", "loaded", "failed", "lost"):
        model.events[name].connect(lambda e: seen.append((e.type, e.value, e.source is model)))
    assert model.status == "empty" and model.needs_load() and model.capabilities is None
    model.pick(str(tiny_base))
    model.start_loading()
    assert model.status == "loading" and not model.needs_load()
    model.set_loaded(handle)
    assert model.loaded and model.info.kind == "base" and model.capabilities is handle.capabilities
    model.drop()
    model.drop()  # no handle any more: nothing to say
    model.set_failed("no such file")
    assert model.status == "failed" and model.error == "no such file" and model.needs_load()
    model.set_unloaded()
    assert [s[0] for s in seen] == ["picked", "loading", "loaded", "lost", "failed", "lost"]
    assert seen[0][1] == str(tiny_base) and seen[2][1] is handle and seen[4][1] == "no such file"
    assert all(s[2] for s in seen)


def test_the_pair_model_forwards_each_side_with_its_name(handle):
    pair = PairModel()
    seen = []
    pair.events.loaded.connect(lambda e: seen.append(("loaded", e.side, e.source is pair)))
    pair.events.lost.connect(lambda e: seen.append(("lost", e.side, e.source is pair)))
    pair["instruct"].set_loaded(handle)
    assert not pair.both_loaded()
    pair["base"].set_loaded(handle)
    assert pair.both_loaded() and pair.handles() == {"base": handle, "instruct": handle}
    pair["base"].drop()
    assert seen == [("loaded", "instruct", True), ("loaded", "base", True), ("lost", "base", True)]
    assert pair.capabilities()["base"] is None and pair.capabilities()["instruct"] is handle.capabilities


def test_an_event_group_knows_its_names():
    group = EmitterGroup(object(), ("a",))
    calls = []
    callback = group.a.connect(calls.append)
    group.a(1)
    group.a.disconnect(callback)
    group.a(2)
    assert [e.value for e in calls] == [1]
    with pytest.raises(AttributeError):
        group.b  # noqa: B018 - a misspelt event must fail loudly
    with pytest.raises(KeyError):
        group["b"]
