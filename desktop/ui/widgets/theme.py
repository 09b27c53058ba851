"""Light, dark, or whatever the system uses.

Qt's own colour scheme is asked first (``QStyleHints.setColorScheme``, Qt 6.8+), so native dialogs follow
too. Where the platform theme can't honour it (X11 without a desktop theme, offscreen, some Windows
versions) a Fusion palette of the asked scheme is set directly, so "dark" always means dark.
Fusion is used everywhere: the one style that renders both schemes well on every platform.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

_SCHEMES = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark, "system": Qt.ColorScheme.Unknown}


def dark_palette() -> QPalette:
    p = QPalette()
    R, G = QPalette.ColorRole, QPalette.ColorGroup  # noqa: N806
    base, window, text = QColor(30, 31, 34), QColor(43, 45, 48), QColor(223, 225, 229)
    for role, color in ((R.Window, window), (R.WindowText, text), (R.Base, base), (R.AlternateBase, QColor(38, 40, 43)),
                        (R.ToolTipBase, QColor(50, 52, 56)), (R.ToolTipText, text), (R.Text, text),
                        (R.Button, QColor(54, 56, 60)), (R.ButtonText, text), (R.BrightText, QColor(255, 90, 90)),
                        (R.Link, QColor(110, 160, 255)), (R.Highlight, QColor(61, 95, 184)),
                        (R.HighlightedText, QColor(255, 255, 255)), (R.PlaceholderText, QColor(140, 143, 150)),
                        (R.Light, QColor(70, 72, 76)), (R.Midlight, QColor(60, 62, 66)), (R.Mid, QColor(48, 50, 54)),
                        (R.Dark, QColor(22, 23, 25)), (R.Shadow, QColor(10, 10, 10))):
        p.setColor(role, color)
    for role in (R.WindowText, R.Text, R.ButtonText):
        p.setColor(G.Disabled, role, QColor(120, 122, 128))
    return p


def apply_theme(theme: str, app: QApplication | None = None) -> None:
    """``theme`` is "system", "light" or "dark" (Settings.theme)."""
    app = app or QApplication.instance()
    if app is None:
        return
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    hints = QGuiApplication.styleHints()
    wanted = _SCHEMES.get(theme, Qt.ColorScheme.Unknown)
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+; "Unknown" goes back to following the system
        hints.setColorScheme(wanted)
    if theme == "dark" and hints.colorScheme() != Qt.ColorScheme.Dark:
        app.setPalette(dark_palette())
    elif theme == "light" and hints.colorScheme() == Qt.ColorScheme.Dark:
        app.setPalette(QPalette(QColor(239, 239, 239)))  # Fusion's light palette, derived from its button grey
    else:
        app.setPalette(app.style().standardPalette())


def is_dark(widget: QWidget | None = None) -> bool:
    """Is the background dark? A widget's own (its Base role: an editor's paper, so a styled editor counts),
    or without one the app's window."""
    if widget is not None:
        return widget.palette().color(QPalette.ColorRole.Base).lightness() < 128
    app = QApplication.instance()
    return bool(app) and app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def compare_icon(palette: QPalette, size: int = 20) -> QIcon:
    """Compare's navigation icon: two columns side by side, drawn in the palette's text colour so it reads
    on a light and a dark bar alike (Fusion's stock chevron is black on both). Redrawn on a theme switch."""
    icon = QIcon()
    for scale in (1, 2):
        pixmap = QPixmap(size * scale, size * scale)
        pixmap.setDevicePixelRatio(scale)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = palette.color(QPalette.ColorRole.WindowText)
        painter.setPen(QPen(color, 1.6))
        half = size / 2
        for x in (2.0, half + 1.0):
            painter.drawRoundedRect(QRectF(x, 3.0, half - 3.0, size - 6.0), 2.0, 2.0)
        painter.setPen(QPen(color, 1.2))
        for i in range(3):  # a few "lines of text" in each column
            y = 7.0 + 3.2 * i
            painter.drawLine(QRectF(4.0, y, half - 7.0, 0).topLeft(), QRectF(4.0, y, half - 7.0, 0).topRight())
            painter.drawLine(QRectF(half + 3.0, y, half - 7.0, 0).topLeft(),
                             QRectF(half + 3.0, y, half - 7.0, 0).topRight())
        painter.end()
        icon.addPixmap(pixmap)
    return icon
