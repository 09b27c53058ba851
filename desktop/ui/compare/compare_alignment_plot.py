"""The alignment view's small pictures, drawn with QPainter: the class colours and the position profile.

The profile answers the paper's "where": one thin bar per answer token, as tall as the base model's rank for it
(log scale) and coloured by its class, with the 1-5 / 6-20 / 21+ buckets marked and their shifted share
written under them. Plain Qt, so nothing heavy (matplotlib is for reports) sits on the app's path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.lens.shift import POSITION_BUCKETS, ShiftResult

# unshifted / marginal / shifted, as translucent highlights so they read on a light and a dark theme
_CLASS_RGB = {"unshifted": (46, 160, 67), "marginal": (230, 160, 0), "shifted": (214, 50, 48)}
CLASS_WORDS = {"unshifted": "unshifted (rank 1)", "marginal": "marginal (rank 2-3)", "shifted": "shifted (rank > 3)"}


def class_colour(cls: str, dark: bool = False, alpha: int | None = None) -> QColor:
    """The highlight of a token of class ``cls`` (solid with ``alpha=255``, for the plot's bars)."""
    r, g, b = _CLASS_RGB[cls]
    return QColor(r, g, b, alpha if alpha is not None else (110 if dark else 70))


def legend_html(dark: bool = False) -> str:
    parts = []
    for cls, word in CLASS_WORDS.items():
        c = class_colour(cls, dark)
        parts.append(f"<span style='background: rgba({c.red()},{c.green()},{c.blue()},{c.alpha()});'>"
                     f"&nbsp;{word}&nbsp;</span>")
    return "&nbsp;".join(parts)


class PositionProfile(QWidget):
    """Each answer token's base-model rank by position (log scale), coloured by class."""

    MAX_RANK = 1000  # taller bars are clipped: the class, not the exact rank, is the point

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("alignmentProfile")
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip("Position profile: one bar per answer token, as tall as the base model's rank for it "
                        "(log scale, rank 1 is the thin baseline). The paper finds shifted tokens early in "
                        "the answer; the numbers under the buckets are their shifted shares.")
        self._ranks: list[int] = []
        self._classes: list[str] = []
        self._buckets: list[tuple[str, int, int, float | None]] = []

    def sizeHint(self) -> QSize:
        return QSize(320, 110)

    def set_result(self, result: ShiftResult | None) -> None:
        self._ranks = [t.rank for t in result.tokens] if result else []
        self._classes = [t.cls for t in result.tokens] if result else []
        self._buckets = []
        if result:
            n = len(result.tokens)
            for (label, lo, hi), shares in zip(POSITION_BUCKETS, result.shares_by_position().values()):
                if shares.n:
                    self._buckets.append((label, lo, min(hi or n, n), shares.shifted))
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        pal = self.palette()
        text_pen = QPen(pal.placeholderText().color())
        fm = painter.fontMetrics()
        caption = fm.height() + 2
        plot = QRectF(4, 4, self.width() - 8, self.height() - 8 - caption)
        painter.fillRect(plot, pal.alternateBase())
        if not self._ranks:
            painter.setPen(text_pen)
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "no answer measured")
            return
        n = len(self._ranks)
        step = plot.width() / n
        top = math.log10(self.MAX_RANK)
        for i, (rank, cls) in enumerate(zip(self._ranks, self._classes)):
            h = max(2.0, plot.height() * min(1.0, math.log10(max(rank, 1)) / top))
            bar = QRectF(plot.left() + i * step, plot.bottom() - h, max(1.0, step - (1 if step > 3 else 0)), h)
            painter.fillRect(bar, class_colour(cls, alpha=255))
        painter.setPen(text_pen)
        painter.drawText(plot.adjusted(4, 2, -4, 0), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
                         "base rank per token (log scale) →  position in the answer")
        for label, lo, hi, shifted in self._buckets:
            x0, x1 = plot.left() + lo * step, plot.left() + hi * step
            if lo:
                painter.drawLine(int(x0), int(plot.top()), int(x0), int(plot.bottom()))
            words = f"{label}: {shifted:.0f}% shifted" if shifted is not None else label
            if fm.horizontalAdvance(words) > x1 - x0:
                words = f"{shifted:.0f}%" if shifted is not None else ""
            painter.drawText(QRectF(x0, plot.bottom() + 1, x1 - x0, caption), Qt.AlignmentFlag.AlignHCenter, words)

    def bars(self) -> Sequence[tuple[int, str]]:
        """(rank, class) per drawn bar, in position order (what the plot shows, for tests)."""
        return list(zip(self._ranks, self._classes))
