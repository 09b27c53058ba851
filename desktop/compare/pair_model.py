"""Both sides' models of a Compare pane, as a plain object: the base and the instruct ``PaneModel``, their
load state and capabilities, and one place to observe both. No Qt, no widgets.

``pair.events.loaded`` / ``lost`` / ``failed`` / ``picked`` re-emit each side's event with ``event.side``
set, so the Compare pane and its controllers (scoring, lens, history) observe the pair, not two widgets.
"""

from __future__ import annotations

from typing import Any

from desktop.compare.events import EmitterGroup, Event
from desktop.compare.pair import SIDES
from desktop.compare.pane_model import EVENTS, PaneModel


class PairModel:
    """The two models of a compare: ``pair["base"]``, ``pair["instruct"]``, each a ``PaneModel``."""

    def __init__(self) -> None:
        self.sides: dict[str, PaneModel] = {side: PaneModel(side) for side in SIDES}
        self.events = EmitterGroup(self, EVENTS)
        for model in self.sides.values():
            for name in EVENTS:
                model.events[name].connect(self._forward)

    def _forward(self, event: Event) -> None:
        self.events[event.type](event.value, side=event.side)

    def __getitem__(self, side: str) -> PaneModel:
        return self.sides[side]

    def handles(self) -> dict[str, Any]:
        """Each side's loaded handle (None where not loaded)."""
        return {side: model.handle for side, model in self.sides.items()}

    def both_loaded(self) -> bool:
        return all(model.loaded for model in self.sides.values())

    def paths(self) -> dict[str, str]:
        return {side: model.path for side, model in self.sides.items()}

    def capabilities(self) -> dict[str, Any]:
        return {side: model.capabilities for side, model in self.sides.items()}
