"""A theme switched with the window open (issue 22 item 10a): Compare's navigation icon is drawn in the new
palette's colours (Fusion's stock chevron was black, dim on the dark bar)."""

from __future__ import annotations

from desktop.ui.widgets.theme import is_dark


def icon_lightness(window) -> float:
    """Mean lightness of the Compare icon's visible pixels."""
    image = window.nav.item(3).icon().pixmap(20, 20).toImage()
    values = [image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height())]
    visible = [c.lightness() for c in values if c.alpha() > 128]
    assert visible, "the icon draws nothing"
    return sum(visible) / len(visible)


def test_compare_navigation_icon_reads_on_the_dark_bar_after_a_switch(qtbot, make_window):
    window = make_window()
    assert window.nav.item(3).text() == "Compare"
    window.context.update_settings(theme="light")
    qtbot.waitUntil(lambda: not is_dark(), timeout=5_000)
    assert icon_lightness(window) < 100  # dark lines on the light bar
    window.context.update_settings(theme="dark")
    qtbot.waitUntil(lambda: is_dark() and icon_lightness(window) > 160, timeout=5_000)
    window.context.update_settings(theme="system")
