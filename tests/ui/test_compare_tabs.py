"""The recipe for a new Compare tab (docs/ARCHITECTURE.md): one module with a view, a controller and a
``Tab``, plus one line in ``tabs.TABS``. Here the "module" is this test's classes and the line a
monkeypatched ``TABS``: the pane gets the tab, its toggle and its controller, and nothing else was edited."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from desktop.ui.compare import tabs
from desktop.ui.compare.tab import Tab, TabController, Toggle


class WordCountView(QLabel):
    pass


class WordCounter(TabController):
    """Counts the words of each ended run's outputs: it observes the session and owns its count."""

    def __init__(self, host, view):
        super().__init__(host, view)
        self.runs = 0
        self.closed = False
        host.session.subscribe(self._on_session)

    def _on_session(self, what: str) -> None:
        if what == "cleared":
            self.runs = 0
            self.view.setText("")

    def shutdown(self) -> None:
        self.closed = True


def test_a_new_tab_is_one_module_and_one_line(qtbot, monkeypatch, make_window):
    tab = Tab("words", "Words", WordCountView, Toggle("Words", "showWordsButton", "Words per side"), WordCounter)
    monkeypatch.setattr(tabs, "TABS", (*tabs.TABS, tab))  # the one line
    window = make_window()
    pane = window.compare_pane
    view, controller, button = pane.widgets.views["words"], pane.controllers["words"], pane.controls.tab_buttons["words"]
    assert isinstance(view, WordCountView) and isinstance(controller, WordCounter) and controller.view is view
    assert pane.widgets.details.tabText(tabs.index("words")) == "Words"

    window.show_page("compare")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # its toggle opens it, like the built-in tabs
    assert pane.widgets.details.isVisible() and pane.widgets.details.currentWidget() is view
    pane.show_details("inputs")
    assert not button.isChecked() and pane.controls.tab_buttons["inputs"].isChecked()

    view.setText("12 words")
    pane.new_item()  # the session says "cleared": the controller heard it
    assert view.text() == ""
    window.close()
    assert controller.closed
