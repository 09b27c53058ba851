"""Which two models the Compare pane's columns hold: the last-used pair, the library's first pair, a side
that follows when the other is picked, and a side that fills when the pair's second model lands.

Opened while a pair is still downloading, Compare holds the model that has landed; when the other one
arrives (the library changes) the empty side takes it, unless the person picked something for that side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from desktop.compare.pair import SIDES
from desktop.ui.compare.compare_views import OutputColumn
from desktop.ui.runtime.context import AppContext


def _other(side: str) -> str:
    return "instruct" if side == "base" else "base"


class PairPicker:
    """Drives the two columns' model bars for the pane (GUI thread only); ``picked()`` is called after each
    pick (the pane saves its state)."""

    def __init__(self, context: AppContext, columns: dict[str, OutputColumn], picked: Callable[[], None]):
        self.context = context
        self.picked = picked
        self.columns = columns
        self.shown_once = False
        self._restore: dict[str, str] = {}  # the last-used pair, loaded when the pane is first shown
        self._following = False  # a side is being set by the pane, not by the person: the other stays
        self._chosen: set[str] = set()  # sides a person picked in the list (a model landing leaves them alone)
        for side, col in columns.items():
            col.bar.picked.connect(lambda path, side=side: self._on_picked(side, path))
            col.bar.combo.activated.connect(lambda _i, side=side: self._chosen.add(side))
        self.context.libraryChanged.connect(self._on_library)

    def path(self, side: str) -> str:
        return self.columns[side].bar.current_path()

    def restore(self, models: object) -> None:
        if isinstance(models, dict):
            self._restore = {s: models[s] for s in SIDES if isinstance(models.get(s), str) and models[s]}

    def state(self) -> dict[str, str]:
        return {s: self.path(s) or self._restore.get(s, "") for s in SIDES}

    def shown(self) -> None:
        if not self.shown_once:
            self.shown_once = True
            self._pick_default()

    def _on_library(self, _entries: list) -> None:
        if not self.shown_once:
            return
        if not any(self.path(s) for s in SIDES):
            self._pick_default()
            return
        for side in SIDES:  # the pair's second model landed (Compare was opened mid-download): fill its side
            if not self.path(side) and side not in self._chosen:
                path = self.model_for(side)
                if path:
                    self.select(side, path)

    def _pick_default(self) -> None:
        """The last-used pair, else the first base model with an instruct sibling in the library."""
        if any(self.path(s) for s in SIDES):
            return
        wanted = dict(self._restore)
        if not wanted:
            library = [e for e in self.context.library if not e.broken]
            pairs = [e for e in library if e.kind == "base" and e.pair]
            if pairs:
                wanted = {"base": pairs[0].path, "instruct": pairs[0].pair}
            else:
                for side in SIDES:
                    first = next((e.path for e in library if e.kind == side), "")
                    if first:
                        wanted[side] = first
        if not wanted:
            return
        self._restore = {}
        for side, path in wanted.items():
            self.select(side, path)

    def model_for(self, side: str) -> str:
        """What an empty side should hold: the other side's sibling, else the first model of this kind."""
        other = self.path(_other(side))
        entry = self.context.library_entry(other) if other else None
        if entry is not None and entry.pair and self.context.library_entry(entry.pair) is not None:
            return entry.pair
        return next((e.path for e in self.context.library if e.kind == side and not e.broken), "")

    def select(self, side: str, path: str) -> None:
        """Pick a model for one side without the other side following (the pair is chosen as a whole)."""
        self._following = True
        try:
            self.columns[side].bar.select_path(path)
        finally:
            self._following = False

    def _on_picked(self, side: str, path: str) -> None:
        """A person picked one side: the other side follows to its sibling, when the library knows one."""
        self.picked()
        if self._following or not path:
            return
        entry = self.context.library_entry(path)
        other = self.columns[_other(side)].bar
        if entry is None or not entry.pair or other.current_path() == entry.pair:
            return
        self.select(_other(side), entry.pair)

    def select_run_models(self, models: dict[str, str]) -> str:
        """An opened run's models, in the pickers, ready to run again (or remembered until first shown).
        Returns a note for the person when one is no longer in the library."""
        if not self.shown_once:
            self._restore = {s: p for s, p in models.items() if p}
            return ""
        note = ""
        for side in SIDES:
            path, bar = models.get(side, ""), self.columns[side].bar
            if path and bar.current_path() != path and bar.combo.findData(path) >= 0:
                self.select(side, path)
            elif path and bar.combo.findData(path) < 0:
                note = f"{Path(path).name} is no longer in the library; the run shows what it wrote."
        return note

    def missing_text(self, missing: list[str]) -> str:
        """One line naming the model to choose for each empty side."""
        if len(missing) == len(SIDES):
            return ("Pick a base and an instruct model first (the lists hold the models in your library; the "
                    "Models page downloads a pair).")
        side = missing[0]
        where = "left" if side == "base" else "right"
        article = "an" if side == "instruct" else "a"
        path = self.model_for(side)
        if path:
            return f"Choose {article} {side} model on the {where}, e.g. {Path(path).name}, then Run both."
        return (f"Choose {article} {side} model on the {where}: none is in your library yet (if the pair is "
                "still downloading, it appears there when it lands).")
