"""Helpers shared by the UI tests: pick a model the way a person does, wait for a generation."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

LOAD_TIMEOUT_MS = 60_000
GEN_TIMEOUT_MS = 60_000


def pick_model(qtbot, pane, file_name: str):
    """Choose the picker item whose text holds ``file_name`` and wait until the model is loaded."""
    combo = pane.findChild(QComboBox, "modelPicker")
    index = next(i for i in range(combo.count()) if file_name in combo.itemText(i))
    combo.setCurrentIndex(index)
    qtbot.waitUntil(lambda: pane.model.handle is not None or bool(pane.model.error), timeout=LOAD_TIMEOUT_MS)
    assert pane.model.error == "", pane.model.error
    return pane.model.handle


def run_and_wait(qtbot, pane, action, timeout: int = GEN_TIMEOUT_MS):
    """Start a generation with ``action()`` (a click, a shortcut) and wait for it to end: its FinalEvent."""
    with qtbot.waitSignal(pane.generationEnded, timeout=timeout) as ended:
        action()
    return ended.args[0]


# What Qt's text editors store for characters the random tiny models emit: CR, the Unicode line/paragraph
# separators and the noncharacters U+FDD0/U+FDD1 become line breaks, a no-break space a plain space.
_EDITOR_FORM = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n", "\ufdd0": "\n", "\ufdd1": "\n",
                              "\xa0": " "})


def shown(text: str) -> str:
    """``text`` as a QPlainTextEdit/QTextEdit gives it back from toPlainText()."""
    return text.translate(_EDITOR_FORM)

