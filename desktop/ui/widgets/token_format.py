"""How generated tokens look: probability colours, the generated-text tint, special tokens, the hover card.

Split from ``token_view`` (which tracks where tokens lie) so the Chat transcript and the exact-inputs view
style special tokens the same way as every output does.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor, QFont, QPalette, QTextCharFormat
from PySide6.QtWidgets import QWidget

from desktop.ui.widgets.theme import is_dark

if TYPE_CHECKING:
    from desktop.ui.widgets.token_view import TokenSpan

SPECIAL_COLOR = "#c2185b"  # the exact-inputs view's colour for special tokens
SPECIAL_TOOLTIP = "A special token: a marker in the model's vocabulary, not text"


def apply_special(fmt: QTextCharFormat, dark: bool) -> QTextCharFormat:
    """Style ``fmt`` as a special token (as the exact-inputs view does): pink, bold, a pink tint unless the
    format already has a background (a probability colour keeps its meaning)."""
    fmt.setForeground(QColor("#f06292" if dark else SPECIAL_COLOR))
    fmt.setFontWeight(QFont.Weight.Bold)
    if not fmt.hasProperty(QTextCharFormat.Property.BackgroundBrush):
        fmt.setBackground(QColor(194, 24, 91, 60 if dark else 40))
    fmt.setToolTip(SPECIAL_TOOLTIP)
    return fmt


def percent(p: float) -> str:
    """A probability for a person: 42.0%, 0.13%, 0.00042%."""
    return f"{p * 100:.1f}%" if p >= 0.001 else f"{p * 100:.2g}%"


def probability_color(probability: float | None, dark: bool) -> QColor:
    """Red (unlikely) → yellow → green (sure), translucent so text stays readable in both themes."""
    if probability is None:
        return QColor(128, 128, 128, 60)
    p = min(1.0, max(0.0, probability))
    hue = int(120 * p ** 0.5)  # the sqrt spreads the interesting low-probability range
    color = QColor.fromHsv(hue, 200 if dark else 170, 200 if dark else 255)
    color.setAlpha(110 if dark else 120)
    return color


def marked_color(widget: QWidget) -> QColor:
    color = QColor(widget.palette().color(QPalette.ColorRole.Highlight))
    color.setAlpha(70 if is_dark(widget) else 45)
    return color


def visible_token(text: str) -> str:
    """A token's text with its invisible characters shown (for tooltips and menus)."""
    if text == "":
        return "∅"
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "⇥").replace("\r", "␍")


def alternatives_html(span: TokenSpan, limit: int = 10) -> str:
    """The hover card: the chosen token and what else the model considered."""
    rows = []
    chosen = span.probability
    head = (f"<b>{html.escape(visible_token(span.text))}</b> &nbsp; "
            f"{percent(chosen) if chosen is not None else 'probability not recorded'}")
    if span.special:
        head += "<br><i>a special token (a marker in the model's vocabulary), not text</i>"
    for alt in span.top[:limit]:
        p = math.exp(alt.logprob) if math.isfinite(alt.logprob) else 0.0
        bar = "█" * max(1, round(p * 20)) if p > 0.004 else "▏"
        mark = " ◀" if alt.text == span.text else ""
        rows.append(f"<tr><td><code>{html.escape(visible_token(alt.text))}</code></td>"
                    f"<td align='right'>&nbsp;{percent(p)}&nbsp;</td><td>{bar}{mark}</td></tr>")
    table = f"<table cellspacing='0' cellpadding='1'>{''.join(rows)}</table>" if rows else ""
    hint = "<br><i>Click to continue from an alternative.</i>" if span.top else ""
    return f"<div>{head}{table}{hint}</div>"
