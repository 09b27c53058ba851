"""Settings → Endpoints (issue 22 items 10b and 10d): an endpoint switched to an environment variable leaves
no key behind in the keyring, and "Refresh models" asks the servers again so a model loaded on a server
since appears in the pickers without a restart."""

# ruff: noqa: F811  (the ui fixtures are imported by name below, then taken as test parameters)
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop.core.endpoints import KEYRING_SERVICE, EndpointStore
from desktop.core.settings import load_settings
from tests.remote.faultserver import openai_server
from tests.remote.test_ui_remote import add_endpoint, items
from tests.ui.conftest import make_window, ui_models, ui_settings, window  # noqa: F401

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def srv():
    s = openai_server("first-model")
    yield s
    s.stop()


def test_switching_an_endpoint_to_an_env_var_removes_its_stored_key(qtbot, window, srv, memory_keyring):
    _settings, dialog = add_endpoint(qtbot, window, "box", srv.url, SECRET)
    assert memory_keyring.store == {(KEYRING_SERVICE, "box"): SECRET}
    dialog.list.setCurrentRow(0)  # edit it: the key now comes from $BOX_KEY
    dialog.key_env.setText("BOX_KEY")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert load_settings().endpoints == {"box": {"url": srv.url, "api_key_env": "BOX_KEY"}}
    assert memory_keyring.store == {}, "the old key stayed in the keyring"
    assert dialog.list.item(0).text().endswith("key from $BOX_KEY")
    # and the store's own API does the same (the CLI's path when the variable is unset at add time)
    store = EndpointStore()
    store.add("other", srv.url, api_key=SECRET)
    store.add("other", srv.url, api_key_env="OTHER_KEY")
    assert (KEYRING_SERVICE, "other") not in memory_keyring.store


def test_refresh_models_shows_a_model_the_server_started_serving_since(qtbot, window, srv):
    _settings, dialog = add_endpoint(qtbot, window, "box", srv.url)
    combo = window.completion_pane.model_bar.combo
    assert "    first-model  ·  remote" in items(combo)
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"object": "list", "data": [
        {"id": "first-model", "object": "model"}, {"id": "new-model", "object": "model"}]})
    assert "    new-model  ·  remote" not in items(combo)  # nothing asks the server on its own
    assert dialog.refresh_button.isEnabled()
    with qtbot.waitSignal(window.context.remote.changed, timeout=30_000):
        qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    assert "    new-model  ·  remote" in items(combo)
    assert dialog.message.text() == "Refreshed. box: 2 models.", dialog.message.text()
    srv.stop()  # a server that is gone says so, in the same line
    with qtbot.waitSignal(window.context.remote.changed, timeout=30_000):
        qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    text = dialog.message.text()
    assert text.startswith("Refreshed. box: ") and "\n" not in text and "#c0392b" in dialog.message.styleSheet()
