"""What a Compare details tab is: its key and title, the widget it shows, the toggle that opens it, and an
optional controller that owns the tab's state. Tabs are listed, in order, in ``desktop.ui.compare.tabs``.

A controller is built once the pane is wired, with a ``TabHost`` (the run's session, the pair's models,
the pane's widgets) and the tab's own view; it observes the session and the models itself. The pane never
reaches into a controller, and a controller never reaches into the pane: it gets what it needs here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from desktop.compare.pair_model import PairModel
    from desktop.compare.session import CompareSession
    from desktop.ui.compare.compare_layout import CompareWidgets


@dataclass(frozen=True)
class Toggle:
    """The checkable button beside the options that opens (and closes) the tab."""

    text: str
    name: str  # its object name
    tip: str


@dataclass(frozen=True)
class Tab:
    key: str
    title: str
    view: Callable[[], QWidget]  # builds the tab's widget
    toggle: Toggle | None = None  # None: opened from elsewhere (the template's "Edit template…")
    controller: Callable[[TabHost, Any], TabController] | None = None


@dataclass
class TabHost:
    """What the Compare pane hands its controllers."""

    session: CompareSession
    models: PairModel
    widgets: CompareWidgets
    parent: QWidget  # for dialogs
    is_running: Callable[[], bool]
    on_prompt_options: Callable[[], None]  # the prompt's options changed: the pane redraws its hint

    def showing(self, view: QWidget) -> bool:
        """Whether the details area is open on ``view``."""
        details = self.widgets.details
        return details.isVisible() and details.currentWidget() is view


class TabController:
    """Base of a tab's controller: it owns its state; ``shutdown()`` when the window closes."""

    def __init__(self, host: TabHost, view: Any):
        self.host = host
        self.view = view

    def shutdown(self) -> None:
        """Drop any work still running."""
