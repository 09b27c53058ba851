"""Compare opened while the pair is still downloading (issue 12, item 5): only the base model is in the
library. Run both says which model to choose; when the instruct model lands, the empty side fills with it,
unless the person chose something for that side already."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt
from ui_helpers import LOAD_TIMEOUT_MS

from desktop.core.settings import Settings, save_settings


@pytest.fixture
def half_pair(tandem_home, tiny_base, tiny_instruct):
    """A models folder holding only the base model; returns a function that lands the instruct one."""
    folder = tandem_home / "half-pair"  # not ui_models' folder: this one starts with the base model alone
    folder.mkdir()
    shutil.copy(tiny_base, folder / tiny_base.name)
    save_settings(Settings(models_dir=str(folder), threads=1, gpu_layers="0"))
    return lambda: shutil.copy(tiny_instruct, folder / tiny_instruct.name)


def test_the_second_model_fills_the_empty_side_when_it_lands(qtbot, make_window, half_pair, tiny_instruct):
    window = make_window()
    window.show_page("compare")
    pane = window.compare_pane
    base_bar, instruct_bar = pane.columns["base"].bar, pane.columns["instruct"].bar
    qtbot.waitUntil(lambda: base_bar.model.handle is not None, timeout=LOAD_TIMEOUT_MS)
    assert instruct_bar.current_path() == ""

    pane.controls.prompt_input.setPlainText("Hello")
    qtbot.mouseClick(pane.controls.run_button, Qt.MouseButton.LeftButton)
    assert pane.notice.isVisible() and pane.notice.level == "warning"
    text = pane.notice.label.text()
    assert "instruct model" in text and "\n" not in text and not pane.jobs

    half_pair()
    with qtbot.waitSignal(window.context.libraryChanged, timeout=10_000):
        window.context.refresh_library()
    assert instruct_bar.current_path().endswith(tiny_instruct.name)
    assert base_bar.current_path().endswith("tiny-base.gguf")  # the filled side did not move


def test_a_side_the_person_emptied_on_purpose_is_left_alone(qtbot, make_window, half_pair):
    window = make_window()
    window.show_page("compare")
    pane = window.compare_pane
    base_bar, instruct_bar = pane.columns["base"].bar, pane.columns["instruct"].bar
    qtbot.waitUntil(lambda: base_bar.model.handle is not None, timeout=LOAD_TIMEOUT_MS)
    instruct_bar.combo.setCurrentIndex(0)  # "Choose a model…": the person's own choice
    instruct_bar.combo.activated.emit(0)
    half_pair()
    with qtbot.waitSignal(window.context.libraryChanged, timeout=10_000):
        window.context.refresh_library()
    assert instruct_bar.current_path() == ""
