"""Fixtures for driving the real window with the real tiny models (pytest-qt, offscreen, one thread)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop.core.settings import Settings, save_settings

TEST_THREADS = 1


@pytest.fixture
def ui_models(tandem_home, tiny_base, tiny_instruct) -> Path:
    """A models folder under this test's TANDEM_HOME holding copies of both tiny models."""
    folder = tandem_home / "my-models"
    folder.mkdir()
    shutil.copy(tiny_base, folder / tiny_base.name)
    shutil.copy(tiny_instruct, folder / tiny_instruct.name)
    return folder


@pytest.fixture
def ui_settings(ui_models) -> Settings:
    settings = Settings(models_dir=str(ui_models), threads=TEST_THREADS, gpu_layers="0")
    save_settings(settings)
    return settings


@pytest.fixture
def make_window(qtbot, ui_settings):
    """Build a main window (as many times as a test wants, on the same TANDEM_HOME); closed at the end."""
    from desktop.app import create_main_window

    windows = []

    def make():
        window = create_main_window()
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.context.library_scanned, timeout=10_000)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.isVisible():
            window.close()


@pytest.fixture
def window(make_window):
    return make_window()
