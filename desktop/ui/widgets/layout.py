"""Pieces the panes share: their three-column frame and their timers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QScrollArea, QSplitter, QVBoxLayout, QWidget


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
