"""Light, dark, or whatever the system uses: Qt's own colour scheme, so every widget follows at once.

Fusion is used everywhere: it is the one style that renders both schemes well on Linux, Windows and macOS,
and it keeps screenshots and tests consistent across platforms.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

_SCHEMES = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark, "system": Qt.ColorScheme.Unknown}


def apply_theme(theme: str, app: QApplication | None = None) -> None:
    """``theme`` is "system", "light" or "dark" (Settings.theme)."""
    app = app or QApplication.instance()
    if app is None:
        return
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    hints = QGuiApplication.styleHints()
    scheme = _SCHEMES.get(theme, Qt.ColorScheme.Unknown)
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+; "Unknown" goes back to following the system
        hints.setColorScheme(scheme)


def is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    if hints.colorScheme() == Qt.ColorScheme.Dark:
        return True
    app = QApplication.instance()
    return bool(app) and app.palette().window().color().lightness() < 128
