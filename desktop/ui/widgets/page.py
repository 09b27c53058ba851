"""What every page offers the main window, and the state saving the panes share.

The main window calls these hooks on the visible page (Ctrl+Enter, Esc, Ctrl+N) and ``shutdown()`` on every
page when it closes; a page overrides the ones it has a use for. A page with remembered state sets
``state_key``, returns the state from ``state()`` and calls ``_save_state_later()`` when it changed; the
save is debounced and a settings file that can't be written is logged and shown on the page, never raised.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from desktop.compare.pane_model import PaneModel
from desktop.ui.runtime.context import AppContext
from desktop.ui.runtime.workers import StreamJob
from desktop.ui.widgets.layout import make_timer
from desktop.ui.widgets.model_bar import ModelBar
from desktop.ui.widgets.notice import Notice
from desktop.ui.widgets.stats import error_text

log = logging.getLogger(__name__)
SAVE_AFTER_MS = 800


class Page(QWidget):
    """A page of the main window. Subclasses set ``state_key`` and call ``_page_ready()`` at the end of
    their constructor (state restored while building is not saved back)."""

    state_key = ""
    notice: Notice | None = None  # where the page tells the person about a problem, if it has one

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self._ready = False
        self._state_timer = make_timer(self, SAVE_AFTER_MS, self._save_state)

    def _page_ready(self) -> None:
        self._ready = True

    # --- the main window's hooks -----------------------------------------------------------------

    def primary_action(self) -> None:
        """Ctrl+Enter: generate, send, run or search."""

    def stop(self) -> None:
        """Esc: stop what is running."""

    def new_item(self) -> None:
        """Ctrl+N: a fresh document, chat or run."""

    def is_generating(self) -> bool:
        return False

    def shutdown(self) -> None:
        """The window is closing: stop work and save what must survive."""

    # --- remembered state ------------------------------------------------------------------------

    def state(self) -> dict:
        return {}

    def _can_save_state(self) -> bool:
        return self._ready and bool(self.state_key)

    def _save_state_later(self) -> None:
        if self._ready:
            self._state_timer.start()

    def _save_state(self) -> None:
        if not self._can_save_state():
            return
        try:
            self.context.set_ui_state(self.state_key, self.state())
        except Exception as exc:  # a settings file we can't write must not break the page
            log.warning("could not save the %s page's state: %s", self.state_key, exc)
            self.show_state_problem(error_text(exc))

    def show_state_problem(self, text: str) -> None:
        if self.notice is not None:
            self.notice.show_message(text, "warning")


class SingleModelPage(Page):
    """A page with one model and one generation at a time (Completion, Chat). ``model`` (a PaneModel) holds
    the loaded handle; the page's ``ModelBar`` shows it and picks. The model's events call the page's
    ``_on_model_ready(handle)``, ``_on_model_lost()`` and ``_on_model_failed(message)``. The last-used model
    loads when the page is first shown, not at start-up; ``generationEnded`` carries each run's FinalEvent."""

    generationEnded = Signal(object)  # FinalEvent: a generation (or reply) ended, however it ended

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(context, parent)
        self.job: StreamJob | None = None
        self._restore_model = ""  # the last-used model's path, loaded on the first show
        self.model = PaneModel()
        self.model.events.loaded.connect(lambda e: self._on_model_ready(e.value))
        self.model.events.lost.connect(lambda _e: self._on_model_lost())
        self.model.events.failed.connect(lambda e: self._on_model_failed(e.value))
        self.model_bar: ModelBar | None = None  # set by the subclass, on ``self.model``

    def _on_model_ready(self, handle) -> None:
        """The model loaded and can be used."""

    def _on_model_lost(self) -> None:
        """The handle went away (unloaded, another model picked)."""

    def _on_model_failed(self, message: str) -> None:
        """The model could not be loaded."""

    def is_generating(self) -> bool:
        return self.job is not None and self.job.running

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._restore_model and self.model_bar is not None:
            path, self._restore_model = self._restore_model, ""
            if not self.model_bar.current_path():
                self.model_bar.select_path(path)
