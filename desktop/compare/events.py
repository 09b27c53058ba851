"""Typed events for Qt-free models, in the style of napari's evented models
(``napari/utils/events/evented_model.py``): a model has an ``events`` group with one emitter per thing that
can change, ``model.events.loaded.connect(callback)``, and each callback gets an ``Event`` saying what
changed (``type``), on which object (``source``) and the new value.

Small on purpose: no pydantic, no Qt, no weak references; listeners run synchronously on the thread that
changed the model (the GUI thread, for the panes' models).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One change: ``type`` is the emitter's name, ``source`` the model, ``value`` what it changed to, and
    ``side`` which side of a pair it came from (None for a one-model pane)."""

    type: str
    source: Any
    value: Any = None
    side: str | None = None


Callback = Callable[[Event], None]


@dataclass
class EventEmitter:
    """Calls its callbacks, in the order they connected, with each Event it emits."""

    type: str
    source: Any
    _callbacks: list[Callback] = field(default_factory=list)

    def connect(self, callback: Callback) -> Callback:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __call__(self, value: Any = None, side: str | None = None) -> Event:
        event = Event(self.type, self.source, value, side)
        for callback in list(self._callbacks):
            callback(event)
        return event


class EmitterGroup:
    """One ``EventEmitter`` per name, as attributes (``group.loaded``); the names are fixed when it is made,
    so a misspelt event is an AttributeError, not a silent no-op."""

    def __init__(self, source: Any, names: tuple[str, ...]):
        self.names = names
        for name in names:
            setattr(self, name, EventEmitter(name, source))

    def __getitem__(self, name: str) -> EventEmitter:
        if name not in self.names:
            raise KeyError(name)
        return getattr(self, name)
