"""The Server page, driven like a person would: switch the app's server on with the real tiny models loaded in
the panes, talk to it over real HTTP (httpx), and watch the status bar, the served models and the request log.

The server listens on 127.0.0.1 only (port 0: a free port), the API key goes to an in-memory keyring (never the
machine's), and every wait is ``qtbot.waitUntil`` on what a person would see."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import httpx
import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from ui_helpers import LOAD_TIMEOUT_MS, pick_model

from desktop.core import paths
from desktop.core.settings import load_settings
from desktop.ui.runtime.server import KEYRING_NAME, KEYRING_SERVICE
from desktop.ui.server.request_log import RequestLogModel
from desktop.ui.server.served_models import PATH_ROLE

START_MS = 60_000  # importing FastAPI and binding, on a busy 2-core machine
SECRET = "tandem-test-key-4821"


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


@pytest.fixture(autouse=True)
def memory_keyring():
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(fail.Keyring())


def switch(qtbot, window, on: bool, host: str = "127.0.0.1", port: int = 0):
    """Click the page's switch (with this host and port when switching on) and wait until it settles."""
    page = window.server_page
    window.show_page("server")
    if on:
        page.host.setText(host)
        page.port.setValue(port)
    assert page.toggle.isChecked() != on
    page.toggle.click()
    qtbot.waitUntil(lambda: not window.server.busy, timeout=START_MS)
    return page


def served_ids(url: str, headers: dict | None = None) -> list[str]:
    response = httpx.get(f"{url}/v1/models", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return sorted(m["id"] for m in response.json()["data"])


def log_rows(page) -> list[tuple[str, ...]]:
    return [page.log_model.row_texts(i) for i in range(page.log_model.rowCount())]


def row_of(page, model_id: str):
    items = [page.models.topLevelItem(i) for i in range(page.models.topLevelItemCount())]
    return next(item for item in items if item.text(0) == model_id)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_serves_the_loaded_model_and_logs_each_request(qtbot, window):
    pick_model(qtbot, window.completion_pane, "tiny-base.gguf")
    min_width, size = window.minimumSizeHint().width(), window.size()
    page = switch(qtbot, window, True)
    server = window.server
    assert server.running and page.message.text() == ""
    url = server.url
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    assert window.server_label.text() == f"Serving on {url}"
    assert page.toggle.text() == "Stop server" and not page.host.isEnabled()
    assert window.minimumSizeHint().width() <= min_width  # the URL in the status bar doesn't widen the window
    assert window.size() == size

    assert served_ids(url) == ["tiny-base"]
    response = httpx.post(f"{url}/v1/completions", timeout=60,
                          json={"model": "tiny-base", "prompt": "Once upon a time", "max_tokens": 4,
                                "temperature": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["choices"][0]["text"], str)
    used = body["usage"]
    qtbot.waitUntil(lambda: any(r[1].endswith("/v1/completions") for r in log_rows(page)), timeout=10_000)
    row = next(r for r in log_rows(page) if r[1].endswith("/v1/completions"))
    assert row[2] == "tiny-base" and row[3] == "200"
    assert row[4] == f"{used['prompt_tokens']} → {used['completion_tokens']}"
    assert row[5].endswith(("ms", " s"))

    # the model's own URL, copied from its row, is the one lm-eval takes as base_url, and it answers
    page.models.refresh()
    item = page.models.topLevelItem(0)
    assert item.text(0) == "tiny-base"
    page.models.itemWidget(item, 3).click()
    lm_eval_url = QGuiApplication.clipboard().text()
    assert lm_eval_url == server.model_url("tiny-base") + "/completions" == item.text(2)
    again = httpx.post(lm_eval_url, json={"prompt": "Hello", "max_tokens": 1}, timeout=60)
    assert again.status_code == 200, again.text
    page.copy_url.click()
    assert QGuiApplication.clipboard().text() == url

    # a bad request is logged with its status, and the server keeps serving
    bad = httpx.post(f"{url}/v1/completions", json={"model": "no-such-model", "prompt": "x"}, timeout=30)
    assert bad.status_code == 404 and "error" in bad.json()
    qtbot.waitUntil(lambda: any(r[3] == "404" for r in log_rows(page)), timeout=10_000)
    page.clear_log.click()
    assert page.log_model.rowCount() == 0


def test_the_served_set_follows_what_the_panes_load(qtbot, window):
    page = switch(qtbot, window, True)
    url = window.server.url
    assert served_ids(url) == [] and page.no_models.isVisibleTo(page)

    pick_model(qtbot, window.completion_pane, "tiny-base.gguf")
    qtbot.waitUntil(lambda: served_ids(url) == ["tiny-base"], timeout=10_000)
    window.show_page("chat")
    pick_model(qtbot, window.chat_pane, "tiny-instruct.gguf")
    qtbot.waitUntil(lambda: served_ids(url) == ["tiny-base", "tiny-instruct"], timeout=10_000)
    qtbot.waitUntil(lambda: page.models.topLevelItemCount() == 2, timeout=5_000)

    # a model a person unchecks is left out, and comes back when checked again
    item = row_of(page, "tiny-instruct")
    path = item.data(0, PATH_ROLE)
    assert path.endswith("tiny-instruct.gguf")
    item.setCheckState(0, Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: served_ids(url) == ["tiny-base"], timeout=10_000)
    assert window.context.ui_state("server") == {"excluded": [path]}
    qtbot.waitUntil(lambda: row_of(page, "tiny-instruct").text(2) == "not served", timeout=5_000)
    row_of(page, "tiny-instruct").setCheckState(0, Qt.CheckState.Checked)
    qtbot.waitUntil(lambda: served_ids(url) == ["tiny-base", "tiny-instruct"], timeout=10_000)

    # Completion switches to the instruct model too: the base model is unloaded, and no longer served
    window.show_page("completion")
    pick_model(qtbot, window.completion_pane, "tiny-instruct.gguf")
    qtbot.waitUntil(lambda: served_ids(url) == ["tiny-instruct"], timeout=LOAD_TIMEOUT_MS)
    missing = httpx.post(f"{url}/v1/completions", json={"model": "tiny-base", "prompt": "x"}, timeout=30)
    assert missing.status_code == 404, missing.text


def test_a_non_loopback_host_without_a_key_is_refused_in_one_line(qtbot, window):
    page = switch(qtbot, window, True, host="0.0.0.0")
    assert not window.server.running and window.server_label.text() == ""
    text = page.message.text()
    assert text and "\n" not in text and "Traceback" not in text and page.message.isVisible()
    assert "key" in text.lower()
    assert page.toggle.text() == "Start server" and not page.toggle.isChecked() and page.host.isEnabled()


def test_a_port_in_use_is_refused_in_one_line(qtbot, window):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        page = switch(qtbot, window, True, port=port)
        assert not window.server.running
        text = page.message.text()
        assert str(port) in text and "\n" not in text and "Traceback" not in text
    # free again: the same switch now works, and the refusal is gone
    page.toggle.click()
    qtbot.waitUntil(lambda: not window.server.busy, timeout=START_MS)
    assert window.server.running and window.server.url.endswith(f":{port}") and page.message.text() == ""


def test_with_a_key_a_request_without_it_gets_401(qtbot, window, memory_keyring, tandem_home):
    window.show_page("server")
    page = window.server_page
    page.key.setText(SECRET)
    page.save_key.click()
    assert memory_keyring.store == {(KEYRING_SERVICE, KEYRING_NAME): SECRET}
    assert page.key.text() == "" and "keyring" in page.message.text() and page.forget_key.isEnabled()
    switch(qtbot, window, True)
    url = window.server.url
    refused = httpx.get(f"{url}/v1/models", timeout=30)
    assert refused.status_code == 401
    assert set(refused.json()["error"]) >= {"message", "type", "code"}
    assert served_ids(url, headers={"Authorization": f"Bearer {SECRET}"}) == []
    qtbot.waitUntil(lambda: any(r[3] == "401" for r in log_rows(page)), timeout=10_000)
    window.context.flush_settings()
    assert SECRET not in paths.settings_path().read_text(encoding="utf-8")


def test_without_a_keyring_the_key_lasts_for_this_session(qtbot, window):
    keyring.set_keyring(fail.Keyring())
    window.show_page("server")
    page = window.server_page
    page.key.setText(SECRET)
    page.save_key.click()
    assert "this session only" in page.message.text() and "this session only" in page.key_status.text()
    switch(qtbot, window, True)
    assert httpx.get(f"{window.server.url}/v1/models", timeout=30).status_code == 401
    assert served_ids(window.server.url, headers={"Authorization": f"Bearer {SECRET}"}) == []
    page.forget_key.click()
    assert window.server.api_key() is None and not page.forget_key.isEnabled()


def test_turning_it_off_frees_the_port(qtbot, window):
    switch(qtbot, window, True)
    url = window.server.url
    port = int(url.rsplit(":", 1)[1])
    assert not port_is_free(port)
    page = switch(qtbot, window, False)
    assert not window.server.running and window.server_label.text() == "" and page.status.text() == "Off"
    assert port_is_free(port)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=5)


def test_on_host_and_port_persist_and_it_starts_again_with_the_window(qtbot, make_window):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = make_window()
    switch(qtbot, first, True, port=port)
    assert first.server.running
    first.close()
    saved = json.loads(paths.settings_path().read_text(encoding="utf-8"))
    assert (saved["server_enabled"], saved["server_host"], saved["server_port"]) == (True, "127.0.0.1", port)
    assert port_is_free(port)  # closing the window stopped it

    second = make_window()
    qtbot.waitUntil(lambda: second.server.running, timeout=START_MS)
    assert second.server.url == f"http://127.0.0.1:{port}"
    assert second.server_label.text() == f"Serving on http://127.0.0.1:{port}"
    assert second.server_page.port.value() == port
    switch(qtbot, second, False)
    second.close()
    assert load_settings().server_enabled is False

    third = make_window()  # (it waits for the library scan: the window's deferred start has had its turn)
    assert not third.server.running and not third.server.busy


def test_the_log_keeps_the_newest_rows_only(qtbot):
    class Record:  # the fields of desktop.serve.RequestRecord the log shows
        def __init__(self, i):
            self.at, self.route, self.model, self.status = 0.0, f"/r{i}", "m", 200
            self.prompt_tokens, self.completion_tokens, self.duration_s = i, 1, 0.01

    model = RequestLogModel(limit=5)
    model.append([Record(i) for i in range(3)])
    model.append([Record(i) for i in range(3, 9)])
    assert [model.row_texts(r)[1] for r in range(model.rowCount())] == ["/r4", "/r5", "/r6", "/r7", "/r8"]


def test_cold_start_imports_no_server_stack(tandem_home):
    code = ("import sys;"
            "from PySide6.QtWidgets import QApplication; app = QApplication([]);"
            "from desktop.app import create_main_window; w = create_main_window(); w.show(); app.processEvents();"
            "w.show_page('server'); app.processEvents();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette')"
            " or m.startswith('desktop.serve')));"
            "w.close()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_settings_refuse_a_port_or_host_the_server_cant_use(tandem_home):
    from desktop.core.errors import SettingsError
    from desktop.core.settings import Settings, save_settings

    for bad in (Settings(server_port=70000), Settings(server_port=-1), Settings(server_host=""),
                Settings(server_host="http://0.0.0.0")):
        with pytest.raises(SettingsError):
            save_settings(bad)
    save_settings(Settings(server_enabled=True, server_host="0.0.0.0", server_port=0))
    assert (load_settings().server_host, load_settings().server_port) == ("0.0.0.0", 0)
