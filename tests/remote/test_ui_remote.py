"""Remote models in the window: Settings → Endpoints against a REAL llama-server, its model in the Chat and
Compare pickers, a reply streamed from it, and the faults a person sees in the panes (a server killed
mid-reply, a stalled server and Stop, offline mode).

The servers are the session fixtures of tests/remote/conftest.py (llama-server built from the installed
llama-cpp-python, serving the real SmolLM2-135M-Instruct on loopback); the window fixtures are the ui tests'
own (tests/ui/conftest.py), on this test's TANDEM_HOME. The keyring is the in-memory one of conftest.py.
"""
# ruff: noqa: F811  (the ui fixtures are imported by name below, then taken as test parameters)

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from desktop.core.endpoints import KEYRING_SERVICE, EndpointStore
from desktop.core.paths import settings_path
from desktop.core.settings import load_settings, save_settings
from desktop.engine.remote import VERIFY_PROMPT
from tests.remote.conftest import _start
from tests.remote.faultserver import completion_chunk, free_port, openai_server
from tests.ui.conftest import make_window, ui_models, ui_settings, window  # noqa: F401
from tests.ui.ui_helpers import LOAD_TIMEOUT_MS

SECRET = "sk-tandem-test-4f9a1c"  # a key that must never reach the settings file, a log or the history


def add_endpoint(qtbot, window, name: str, url: str, key: str = ""):
    """Settings → Endpoints, the way a person does it: the form, then Save endpoint."""
    settings = window.open_settings()
    qtbot.addWidget(settings)
    dialog = settings.open_endpoints()
    qtbot.addWidget(dialog)
    dialog.name.setText(name)
    dialog.url.setText(url)
    dialog.key.setText(key)
    with qtbot.waitSignal(window.context.remote.changed, timeout=30_000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    return settings, dialog


def items(combo: QComboBox) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def pick_remote(qtbot, combo: QComboBox, bar, model_id: str, endpoint: str = "box"):
    index = next(i for i in range(combo.count()) if combo.itemData(i) == f"endpoint:{endpoint}/{model_id}")
    combo.setCurrentIndex(index)
    qtbot.waitUntil(lambda: bar.model.handle is not None or bool(bar.model.error), timeout=LOAD_TIMEOUT_MS)
    assert bar.model.error == "", bar.model.error
    return bar.model.handle


def served_model(url: str) -> str:
    import httpx

    return httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]


def test_endpoints_dialog_tests_the_real_server_and_keeps_the_key_in_the_keyring(qtbot, window, llama_server,
                                                                                 memory_keyring, tandem_home):
    _settings, dialog = add_endpoint(qtbot, window, "box", llama_server, SECRET)
    assert dialog.message.text().startswith("Saved box")
    assert memory_keyring.store == {(KEYRING_SERVICE, "box"): SECRET}
    assert EndpointStore().get("box").url == llama_server
    # the list shows where the key is, never the key
    line = dialog.list.item(0).text()
    assert line == f"box — {llama_server} · key in the keyring" and SECRET not in line
    assert dialog.key.text() == "" and "stored in the keyring" in dialog.key.placeholderText()

    # Test connection, off the GUI thread: the model and what it can do, checked
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    assert not dialog.test_button.isEnabled()  # the window is not waiting on the server
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=60_000)
    assert dialog.message.text() == "Connected: 1 model.", dialog.message.text()
    result = dialog.result.toPlainText()
    model_id = served_model(llama_server)
    assert result.startswith("llama-server") and model_id in result
    assert "scoring given text: no (cross-scoring needs a server that scores given text (vLLM, SGLang); " \
           "this llama-server can't)" in result
    assert "chat template rendering: yes" in result and "top-k logprobs: up to 20" in result

    # an edit that leaves the key field empty keeps the stored key
    dialog.url.setText(llama_server + "/v1/")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert memory_keyring.store == {(KEYRING_SERVICE, "box"): SECRET}
    assert EndpointStore().get("box").url == llama_server

    # the model appears in every picker, under the endpoint's name
    for combo in (window.completion_pane.model_bar.combo, window.chat_pane.model_bar.combo,
                  window.compare_pane.columns["base"].bar.combo, window.compare_pane.columns["instruct"].bar.combo):
        texts = items(combo)
        heading = texts.index("box (llama-server)")
        assert texts[heading + 1].strip() == "SmolLM2-135M-Instruct.Q4_1.gguf  ·  remote"  # its file name
        assert model_id in combo.itemData(heading + 1, Qt.ItemDataRole.ToolTipRole)  # the whole id

    # the key is only in the keyring: not in the settings file, the logs or anywhere under TANDEM_HOME
    window.close()
    assert SECRET not in settings_path().read_text()
    for path in Path(tandem_home).rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    # removing it removes its key
    EndpointStore().remove("box")
    assert memory_keyring.store == {}


def test_a_test_connection_fault_is_one_line(qtbot, window):
    settings = window.open_settings()
    qtbot.addWidget(settings)
    dialog = settings.open_endpoints()
    qtbot.addWidget(dialog)
    dialog.url.setText(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=30_000)
    text = dialog.message.text()
    assert "\n" not in text and "Traceback" not in text and "127.0.0.1" in text
    assert "#c0392b" in dialog.message.styleSheet()
    dialog.name.setText("bad name!")
    dialog.url.setText("http://127.0.0.1:1")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "is not a usable endpoint name" in dialog.message.text()
    assert load_settings().endpoints == {}


def test_without_a_keyring_the_dialog_says_so_and_offers_the_environment(qtbot, window, no_keyring, monkeypatch):
    settings = window.open_settings()
    qtbot.addWidget(settings)
    dialog = settings.open_endpoints()
    qtbot.addWidget(dialog)
    assert not dialog.keyring_label.isHidden() and "No OS keyring" in dialog.keyring_label.text()
    assert "\n" not in dialog.keyring_label.text()
    assert not dialog.key.isEnabled()
    dialog.name.setText("envbox")
    dialog.url.setText("http://127.0.0.1:8000")
    dialog.key_env.setText("TANDEM_TEST_KEY")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert load_settings().endpoints == {"envbox": {"url": "http://127.0.0.1:8000", "api_key_env": "TANDEM_TEST_KEY"}}
    assert dialog.list.item(0).text().endswith("key from $TANDEM_TEST_KEY")


def test_chat_streams_from_the_server_and_the_status_bar_names_it(qtbot, window, llama_server):
    add_endpoint(qtbot, window, "box", llama_server)
    pane = window.chat_pane
    window.show_page("chat")
    model_id = served_model(llama_server)
    handle = pick_remote(qtbot, pane.model_bar.combo, pane.model_bar, model_id)
    host = llama_server.split("://")[1]
    assert handle.capabilities.remote and handle.info.backend == f"llama-server @ {host}"
    assert pane.model_bar.badge.text().strip() == "INSTRUCT"
    assert window.backend_label.text() == f"Backend: llama-server @ {host}"
    assert "over the network" in window.backend_label.toolTip() and "box" in window.backend_label.toolTip()

    pane.sampling.max_tokens.setValue(12)
    pane.sampling.temperature.setValue(0.0)
    pane.input.setPlainText("What is the capital of France?")
    with qtbot.waitSignal(pane.generationEnded, timeout=60_000) as ended:
        qtbot.mouseClick(pane.send_button, Qt.MouseButton.LeftButton)
    final = ended.args[0]
    assert final.error is None and final.text.strip()
    assert final.stats.completion_tokens > 0
    assert pane.turns[-1].content == final.text and final.text.strip() in pane.transcript.toPlainText()
    chat = window.context.history.get_chat(pane.chat_id)
    assert chat.messages[1].content == final.text and chat.messages[1].complete
    assert chat.model == f"endpoint:box/{model_id}"

    # Show prompt: the server's own rendering (llama-server's /apply-template) of the conversation
    qtbot.mouseClick(pane.show_prompt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "<|im_start|>user\nWhat is the capital of France?<|im_end|>"
                    in pane.prompt_view.toPlainText(), timeout=20_000)
    assert pane.prompt_view.toPlainText().endswith("<|im_start|>assistant\n")


def test_compare_a_local_base_with_a_remote_instruct(qtbot, window, llama_server):
    add_endpoint(qtbot, window, "box", llama_server)
    pane = window.compare_pane
    window.show_page("compare")
    base, instruct = pane.columns["base"], pane.columns["instruct"]
    base.bar.combo.setCurrentIndex(next(i for i, t in enumerate(items(base.bar.combo)) if "tiny-base.gguf" in t))
    pick_remote(qtbot, instruct.bar.combo, instruct.bar, served_model(llama_server))
    qtbot.waitUntil(lambda: base.bar.model.handle is not None, timeout=LOAD_TIMEOUT_MS)
    pane.sampling.max_tokens.setValue(10)
    pane.controls.prompt_input.setPlainText("Name a colour.")
    with qtbot.waitSignal(pane.runEnded, timeout=90_000):
        qtbot.mouseClick(pane.controls.run_button, Qt.MouseButton.LeftButton)
    assert base.text() and instruct.text()
    qtbot.waitUntil(lambda: pane.session.analysis_done, timeout=90_000)
    # the instruct model's server can't score: one line, where cross-scoring of the base output would be
    note = ("Not scored by the instruct model: cross-scoring needs a server that scores given text "
            "(vLLM, SGLang); this llama-server can't.")
    assert base.surprise.text() == note and "#c0392b" not in base.surprise.styleSheet()
    assert pane.widgets.analysis_label.text() == note
    # the rest keeps working: the local base model scored the instruct output, both first steps are there
    assert instruct.cross is not None and instruct.cross.tokens
    assert pane.session.first.get("base") and pane.session.first.get("instruct")
    # the templated prompt is the server's own rendering
    assert "<|im_start|>user\nName a colour.<|im_end|>" in pane.widgets.views["inputs"].instruct_view.toPlainText()


@pytest.fixture
def dying_server(smollm2, tmp_path):
    """A llama-server of this test's own, for the test to kill."""
    from bench.llama_server import ensure_llama_server

    binary = ensure_llama_server(log=lambda m: print(m, file=sys.stderr)).binary
    port = free_port()
    proc, fh, url = _start([str(binary), "-m", str(smollm2), "--host", "127.0.0.1", "--port", str(port),
                            "-t", "1", "-tb", "1", "-c", "1024", "-np", "1", "--no-webui", "-fa", "off",
                            "--no-repack"],  # see the llama_server fixture in conftest.py
                           "/health", port, tmp_path, "dying")
    yield proc, url
    proc.kill()
    proc.wait(10)
    fh.close()


def test_a_server_killed_mid_reply_leaves_a_marked_partial_reply(qtbot, window, dying_server):
    proc, url = dying_server
    add_endpoint(qtbot, window, "dying", url)
    pane = window.chat_pane
    window.show_page("chat")
    pick_remote(qtbot, pane.model_bar.combo, pane.model_bar, served_model(url), "dying")
    pane.sampling.max_tokens.setValue(600)
    pane.sampling.temperature.setValue(0.0)
    pane.input.setPlainText("Count from 1 to 300, separated by commas.")
    with qtbot.waitSignal(pane.generationEnded, timeout=60_000) as ended:
        qtbot.mouseClick(pane.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(pane._reply_parts) >= 2, timeout=30_000)
        proc.kill()
    final = ended.args[0]
    assert final.finish_reason == "error" and final.error is not None
    kept = pane.turns[-1]
    assert kept.role == "assistant" and kept.content and kept.note.startswith("(cut off")
    assert kept.content in pane.transcript.toPlainText() and "(cut off" in pane.transcript.toPlainText()
    message = pane.notice.text()
    assert "partial reply is kept" in message and "\n" not in message
    # in the history too, marked: reopening the chat shows the same text and mark
    stored = window.context.history.get_chat(pane.chat_id).messages[-1]
    assert stored.content == kept.content and stored.meta["finish_reason"] == "error"
    assert "partial reply is kept" in stored.meta["error"]
    pane.open_chat(pane.chat_id)
    assert pane.turns[-1].note.startswith("(cut off") and pane.turns[-1].content == kept.content


def test_stop_on_a_stalled_server_ends_the_pane_within_200ms(qtbot, window):
    srv = openai_server("stall-model")

    def completions(r):
        if r.body.get("prompt") == VERIFY_PROMPT:  # the scoring check when the model opens: refuse it
            r.json({"error": {"message": "no"}}, 400)
            return
        r.sse_start()
        r.sse(completion_chunk(" Paris", -0.25))
        srv.release.wait(30)  # then nothing: a stalled server

    srv.routes[("POST", "/v1/completions")] = completions
    try:
        add_endpoint(qtbot, window, "stall", srv.url)
        pane = window.completion_pane
        window.show_page("completion")
        pick_remote(qtbot, pane.model_bar.combo, pane.model_bar, "stall-model", "stall")
        pane.editor.setPlainText("The capital city of France is")
        with qtbot.waitSignal(pane.generationEnded, timeout=30_000) as ended:
            qtbot.mouseClick(pane.generate_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: pane.editor.toPlainText().endswith(" Paris"), timeout=20_000)
            pressed = time.monotonic()
            qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
        took = time.monotonic() - pressed
        assert ended.args[0].finish_reason == "cancelled"
        assert took < 0.2, f"Stop took {took * 1000:.0f} ms"
        assert pane.editor.toPlainText() == "The capital city of France is Paris"
    finally:
        srv.stop()


def test_offline_mode_refuses_a_far_endpoint_before_any_lookup(qtbot, ui_settings, make_window, monkeypatch):
    save_settings(dataclasses.replace(load_settings(), offline=True,
                                      endpoints={"far": {"url": "http://gpu-box.invalid:8000"}}))
    looked_up: list = []
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: looked_up.append(host) or real(host, *a, **k))
    window = make_window()
    qtbot.waitUntil(lambda: window.context.remote.scanned, timeout=20_000)
    texts = items(window.chat_pane.model_bar.combo)
    heading = next(t for t in texts if t.startswith("far"))
    assert heading.startswith("far · Offline mode is on, so Tandem will not contact the server at gpu-box.invalid")
    assert "gpu-box.invalid" not in looked_up


def test_compare_both_sides_on_one_server(qtbot, window, llama_server):
    add_endpoint(qtbot, window, "box", llama_server)
    pane = window.compare_pane
    window.show_page("compare")
    model_id = served_model(llama_server)
    for side in ("base", "instruct"):
        pick_remote(qtbot, pane.columns[side].bar.combo, pane.columns[side].bar, model_id)
    assert pane.columns["base"].bar.model.handle is pane.columns["instruct"].bar.model.handle  # one connection, shared
    pane.sampling.max_tokens.setValue(8)
    pane.controls.prompt_input.setPlainText("Say hello.")
    with qtbot.waitSignal(pane.runEnded, timeout=90_000) as ended:
        qtbot.mouseClick(pane.controls.run_button, Qt.MouseButton.LeftButton)
    assert all(f.error is None for f in ended.args[0].values())
    assert pane.columns["base"].text() and pane.columns["instruct"].text()
    qtbot.waitUntil(lambda: pane.session.analysis_done, timeout=90_000)
    for side, other in (("base", "instruct"), ("instruct", "base")):
        assert pane.columns[side].surprise.text().startswith(f"Not scored by the {other} model: cross-scoring")


def test_test_connection_sends_the_typed_key_only_as_a_header_and_a_refusal_is_one_line(qtbot, window):
    srv = openai_server()
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"error": {"message": "Invalid API key"}}, 401)
    try:
        settings = window.open_settings()
        qtbot.addWidget(settings)
        dialog = settings.open_endpoints()
        qtbot.addWidget(dialog)
        dialog.url.setText(srv.url)
        dialog.key.setText(SECRET)
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=30_000)
        text = dialog.message.text()
        assert "refused the request (401: Invalid API key)" in text and "API key" in text and "\n" not in text
        assert SECRET not in text
        (method, path, headers, body), *_ = srv.requests
        assert (method, path, headers["Authorization"], body) == ("GET", "/v1/models", f"Bearer {SECRET}", None)
        assert all(SECRET not in p for _m, p, _h, _b in srv.requests)  # never in a URL
    finally:
        srv.stop()


def test_an_endpoint_added_while_page_state_is_being_saved_is_kept(qtbot, window):
    """The page-state writer (a background thread) and the endpoints store write one settings file: an
    endpoint added between a page-state change and its save must survive both, in memory and on disk."""
    context = window.context
    store = context.endpoint_store()
    for i in range(20):  # each change schedules a background save of the settings as they are then
        context.set_ui_state("race-probe", {"i": i})
        store.add(f"box{i}", f"http://127.0.0.1:{9000 + i}")
    context.flush_settings()
    names = {f"box{i}" for i in range(20)}
    assert names <= set(context.settings.endpoints)
    on_disk = load_settings()
    assert names <= set(on_disk.endpoints)
    assert on_disk.ui_state["race-probe"] == {"i": 19}
    assert {ep.name for ep in EndpointStore().list()} >= names  # the CLI's store reads the same file
