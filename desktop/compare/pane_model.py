"""One pane's model, as a plain object: which model file (or remote ref) the pane uses, whether it is
loaded, the loaded handle and what it can do. No Qt, no widgets.

The pane owns it; its ``ModelBar`` only shows it and lets a person pick (the bar reports what the shared
model manager did into this object). Panes read the handle from here, never from the widget, and observe
the load state through ``events`` (``desktop.compare.events``):

- ``picked``  value = the path chosen ("" for none)
- ``loading`` value = the path being loaded
- ``loaded``  value = the handle (the model can be used)
- ``failed``  value = a one-line reason it could not be loaded
- ``lost``    the handle went away (unloaded, another model picked, none picked)

Completion and Chat hold one; Compare holds a ``PairModel`` of two (``desktop.compare.pair_model``).
"""

from __future__ import annotations

from typing import Any

from desktop.compare.events import EmitterGroup

STATUSES = ("empty", "loading", "loaded", "failed", "unloaded")
EVENTS = ("picked", "loading", "loaded", "failed", "lost")


class PaneModel:
    """The model a pane uses: its path, its load ``status`` (one of STATUSES), the handle once loaded, the
    error when loading failed. ``side`` names it within a pair (None for a one-model pane)."""

    def __init__(self, side: str | None = None):
        self.side = side
        self.path = ""
        self.handle: Any = None  # a desktop.engine.model.Model once loaded
        self.status = "empty"
        self.error = ""
        self.events = EmitterGroup(self, EVENTS)

    # --- what the pane reads ---------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.handle is not None

    @property
    def info(self):
        """The loaded model's LoadInfo (or a remote model's info), None until loaded."""
        return None if self.handle is None else self.handle.info

    @property
    def capabilities(self):
        """What the loaded model can do (scoring, server template…), None until loaded."""
        return None if self.handle is None else self.handle.capabilities

    def needs_load(self) -> bool:
        """A model is picked but not loaded and nothing is loading it (never loaded, unloaded, failed)."""
        return self.handle is None and self.status != "loading"

    # --- what the model bar reports --------------------------------------------------------------

    def pick(self, path: str) -> None:
        """A person (or the pane restoring its state) chose ``path`` ("" for none); loading it follows."""
        self.path = path
        self.events.picked(path, side=self.side)

    def start_loading(self) -> None:
        self.status, self.error = "loading", ""
        self.events.loading(self.path, side=self.side)

    def set_loaded(self, handle: Any) -> None:
        self.handle, self.status, self.error = handle, "loaded", ""
        self.events.loaded(handle, side=self.side)

    def set_failed(self, message: str) -> None:
        self.handle, self.status, self.error = None, "failed", message
        self.events.failed(message, side=self.side)

    def set_unloaded(self) -> None:
        """The manager unloaded it (the Unload button, memory): always said, loaded or not."""
        self.handle, self.status, self.error = None, "unloaded", ""
        self.events.lost(None, side=self.side)

    def drop(self, status: str = "empty") -> None:
        """Let go of the handle (another model is being picked); ``lost`` only when there was one."""
        had = self.handle is not None
        self.handle, self.status, self.error = None, status, ""
        if had:
            self.events.lost(None, side=self.side)
