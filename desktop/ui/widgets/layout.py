"""Pieces the panes share: their three-column frame, their timers, and updates that don't re-lay out or
repaint a page when nothing changed (``restyle``, ``set_progress``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QProgressBar, QScrollArea, QSplitter, QVBoxLayout, QWidget


def make_timer(parent: QObject, ms: int, slot: Callable[[], object], *, single_shot: bool = True) -> QTimer:
    """A timer owned by ``parent`` calling ``slot`` every ``ms`` (once per start when ``single_shot``)."""
    timer = QTimer(parent)
    timer.setSingleShot(single_shot)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer


def three_columns(pane: QWidget, name: str, sidebar: QWidget, center: QWidget, sampling: QWidget,
                  sizes: Sequence[int], *, sampling_min_width: int | None = 240) -> QSplitter:
    """The panes' frame: history sidebar | the work | the sampling panel (scrollable), in a splitter that
    fills ``pane``. The middle column takes the extra width and can't be collapsed."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(sampling)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    if sampling_min_width is not None:
        scroll.setMinimumWidth(sampling_min_width)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.setObjectName(name)
    for widget in (sidebar, center, scroll):
        splitter.addWidget(widget)
    splitter.setStretchFactor(1, 1)
    splitter.setCollapsible(1, False)
    splitter.setSizes(list(sizes))
    layout = QVBoxLayout(pane)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(splitter)
    return splitter


def restyle(widget: QWidget, css: str) -> None:
    """``widget.setStyleSheet(css)`` only when it differs: setting a style sheet, even the same one, re-polishes
    the widget and re-lays out its window (word-wrapped labels re-shape their text), which a per-event update
    (a download's progress) turned into a 20-40 ms GUI stall each time."""
    if widget.styleSheet() != css:
        widget.setStyleSheet(css)


def set_progress(bar: QProgressBar, value: int, text: str | None = None) -> None:
    """Set a progress bar's value (and format) for the next paint. ``QProgressBar.setValue`` repaints at once,
    synchronously, whenever the change is visible; with updates held it paints in the next paint pass
    instead, together with everything else that changed."""
    if bar.value() == value and (text is None or bar.format() == text):
        return
    held = bar.updatesEnabled()
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
        if text is not None:
            bar.setFormat(text)
    finally:
        bar.setUpdatesEnabled(held)  # True again: schedules an ordinary update()
