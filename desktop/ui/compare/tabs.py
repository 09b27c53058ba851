"""The Compare pane's details tabs, in order: the only place a tab's index comes from.

Adding a tab is one new module that defines its view and a ``Tab`` (``desktop.ui.compare.tab``), plus one
line in ``TABS``. The layout adds each tab's view and toggle button, the pane wires the toggles and builds
each controller; nothing else names a tab.
"""

from __future__ import annotations

from desktop.ui.compare import lens
from desktop.ui.compare.compare_controls import TEMPLATE_TAB
from desktop.ui.compare.compare_details import FIRST_STEP_TAB, INPUTS_TAB
from desktop.ui.compare.tab import Tab

TABS: tuple[Tab, ...] = (
    INPUTS_TAB,
    FIRST_STEP_TAB,
    TEMPLATE_TAB,
    lens.TAB,
)


def keys() -> tuple[str, ...]:
    return tuple(tab.key for tab in TABS)


def index(key: str) -> int:
    """The tab's position in the details area (ValueError for a key that is not registered)."""
    return keys().index(key)
