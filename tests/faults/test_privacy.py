"""Privacy: offline mode opens no network socket for a whole session of use (searching, downloading,
loading, generating, chatting; the window included), nothing connects anywhere unless the user asked the
hub for something, and the Hugging Face token never lands in Tandem's logs, history, settings, sidecars or
crash reports."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from faults_common import THREADS, add

from desktop.core.errors import OfflineError
from desktop.core.settings import Settings, load_settings, save_settings
from desktop.engine import LoadOptions, SamplingParams, load_model

OPTS = LoadOptions(threads=THREADS, n_ctx=512, gpu_layers=0)
REPO = "tandem-test/Tiny-GGUF"


@pytest.fixture
def no_network(monkeypatch):
    """Fails on any connect or name lookup that is not a Unix socket (the engine's pipes are socketpairs,
    which never connect). Records every attempt so the test can report them all."""
    attempts: list = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(real):
        def connect(self, address):
            if self.family != getattr(socket, "AF_UNIX", None):
                attempts.append(address)
                raise OSError(f"network use while it must not happen: {address!r}")
            return real(self, address)
        return connect

    def lookup(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"name lookup while it must not happen: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guard(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guard(real_connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket, "gethostbyname", lookup)
    yield attempts
    add("privacy")
    assert attempts == [], attempts


def _inet_sockets(pid: int) -> list[str]:
    """The TCP/UDP sockets a process holds (Linux), by matching its socket fds with /proc/net tables."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        found += [f"{table}: {ln.strip()}" for ln in lines if ln.split()[9] in inodes]
    return found


def test_offline_session_opens_no_socket(no_network, tandem_home, tiny_base, tiny_instruct, tmp_path):
    from desktop.core.history import HistoryStore
    from desktop.core.library import Library
    from desktop.hub.download import DownloadManager
    from desktop.hub.files import list_gguf_files
    from desktop.hub.search import search_models

    save_settings(Settings(offline=True))
    for call in (lambda: search_models("qwen"), lambda: list_gguf_files(REPO)):
        with pytest.raises(OfflineError):
            call()
    manager = DownloadManager(tmp_path / "dl")
    event = manager.wait(manager.download(REPO, "tiny-base-Q8_0.gguf"), timeout=10)
    assert event.kind == "error" and isinstance(event.error, OfflineError)
    assert Library(tiny_base.parent, discover=True).scan()
    store = HistoryStore()
    chat = store.create_chat("offline")
    with load_model(tiny_instruct, OPTS) as model:
        if os.path.isdir(f"/proc/{model.pid}"):
            assert _inet_sockets(model.pid) == []
        reply = model.chat([{"role": "user", "content": "hello"}], SamplingParams(max_tokens=6, seed=1)).text()
        store.add_message(chat, "user", "hello")
        store.add_message(chat, "assistant", reply)
        model.render_chat([{"role": "user", "content": "hello"}])
        assert _inet_sockets(model.pid) == [] if os.path.isdir(f"/proc/{model.pid}") else True
    with load_model(tiny_base, OPTS) as model:
        model.complete("Once upon a time", SamplingParams(max_tokens=6)).text()
    store.close()


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "online-but-idle"])
def test_the_window_sends_nothing_unasked(no_network, qtbot, tandem_home, tiny_base, tiny_instruct, offline):
    """A session in the window: every page shown, a completion and a chat reply. Offline nothing may
    connect; online nothing may either, because the user asked the hub for nothing."""
    import shutil

    from PySide6.QtWidgets import QComboBox, QWidget

    from desktop.app import create_main_window

    folder = tandem_home / "my-models"
    folder.mkdir()
    for model in (tiny_base, tiny_instruct):
        shutil.copy(model, folder / model.name)
    save_settings(Settings(models_dir=str(folder), threads=THREADS, gpu_layers="0", offline=offline))
    window = create_main_window()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.context.library_scanned, timeout=20_000)
    for name in ("modelsPage", "comparePane", "chatPane", "completionPane"):
        page = window.findChild(QWidget, name)
        assert page is not None, name
        stack = page.parentWidget()
        if hasattr(stack, "setCurrentWidget"):
            stack.setCurrentWidget(page)
        qtbot.wait(300)
    completion = window.findChild(QWidget, "completionPane")
    combo = completion.findChild(QComboBox, "modelPicker")
    combo.setCurrentIndex(next(i for i in range(combo.count()) if tiny_base.name in combo.itemText(i)))
    qtbot.waitUntil(lambda: completion.model.handle is not None or bool(completion.model.error),
                    timeout=60_000)
    completion.editor.setPlainText("Once upon a time")
    with qtbot.waitSignal(completion.generationEnded, timeout=60_000) as ended:
        completion.generate()
    assert ended.args[0].error is None
    chat = window.findChild(QWidget, "chatPane")
    combo = chat.findChild(QComboBox, "modelPicker")
    combo.setCurrentIndex(next(i for i in range(combo.count()) if tiny_instruct.name in combo.itemText(i)))
    qtbot.waitUntil(lambda: chat.model.handle is not None or bool(chat.model.error), timeout=60_000)
    with qtbot.waitSignal(chat.generationEnded, timeout=60_000) as ended:
        chat.send("hello there")
    assert ended.args[0].error is None
    window.close()


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits


@pytest.fixture
def token_store(tmp_path, monkeypatch):
    """huggingface_hub fixes its token file paths at import: point them at this test's folder (as the hub
    tests do), so the test never touches the machine's real token store."""
    from huggingface_hub import constants

    home = tmp_path / "hf-token-store"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


def test_the_token_never_lands_in_our_files(fake_hub, token_store, tandem_home, tiny_base, tiny_instruct,
                                            tmp_path, capfd):
    """Set a token through the hub's auth helper, then use the app: downloads (a gated one, a missing one,
    a cancelled one), searches, chats saved to history, settings saved, a worker crash (its log kept), a
    logged internal error and CLI errors. Then grep every file under TANDEM_HOME (logs, history, settings,
    cache, models and their sidecars) for the token."""
    from fakehub import GOOD_TOKEN

    from desktop.cli import main as cli
    from desktop.core.history import HistoryStore
    from desktop.core.logs import log_exception, setup_logging
    from desktop.hub.auth import set_token, token_status
    from desktop.hub.download import DownloadManager, download_blocking
    from desktop.hub.search import search_models

    setup_logging(logging.DEBUG)
    data = tiny_base.read_bytes()
    fake_hub.add_repo(REPO, {"tiny-base-Q8_0.gguf": data, "tiny-instruct-Q8_0.gguf": tiny_instruct.read_bytes()})
    fake_hub.add_repo("tandem-test/Gated-GGUF", {"gated-Q8_0.gguf": data}, gated=True)
    status = set_token(GOOD_TOKEN)
    assert status.present and token_status().present and (token_store / "token").read_text() == GOOD_TOKEN
    models = load_settings().resolved_models_dir()
    assert models.is_relative_to(tandem_home)

    search_models("tiny")
    download_blocking("tandem-test/Gated-GGUF", "gated-Q8_0.gguf", models)
    assert fake_hub.file_gets("gated-Q8_0.gguf")[-1].headers.get("authorization") == f"Bearer {GOOD_TOKEN}"
    fake_hub.drop_after = 100_000
    download_blocking(REPO, "tiny-base-Q8_0.gguf", models)
    for bad in ("missing.gguf", "../x.gguf"):
        assert cli(["models", "download", REPO, bad, "--dir", str(models)]) == 1
    fake_hub.delay = 0.05
    manager = DownloadManager(models)
    job = manager.download(REPO, "tiny-instruct-Q8_0.gguf")
    deadline = time.monotonic() + 30
    while manager.status(job).kind in ("queued", "started") and time.monotonic() < deadline:  # bytes are flowing
        time.sleep(0.01)
    manager.pause(job)
    manager.wait(job, timeout=10)  # paused: its .part.json state stays on disk
    fake_hub.delay = 0

    save_settings(Settings(offline=False, threads=THREADS))
    store = HistoryStore()
    chat = store.create_chat("token test")
    with load_model(models / "tiny-base-Q8_0.gguf", OPTS) as model:
        store.add_message(chat, "user", "Once upon a time")
        store.add_message(chat, "assistant", model.complete("Once upon a time", SamplingParams(max_tokens=5)).text())
        stream = model.complete("Once upon a time", SamplingParams(max_tokens=400, grammar="root ::= [a-z ] root"))
        next(iter(stream))
        os.kill(model.pid, signal.SIGKILL)  # a crash: the worker's log is kept as the crash report
        list(stream)
    store.close()
    try:
        raise RuntimeError("a bug of ours")
    except RuntimeError:
        log_exception("privacy test")
    assert cli(["complete", "--model", str(tmp_path / "nope.gguf"), "hello"]) == 1
    cli(["models", "list", "--json"])
    out, err = capfd.readouterr()

    assert list((tandem_home / "logs").iterdir()), "nothing was logged: the grep would prove nothing"
    assert (tandem_home / "data" / "history.sqlite3").exists()
    token = GOOD_TOKEN.encode()
    for needle in (token, token[3:]):  # with and without the hf_ prefix
        assert _files_containing(tandem_home, needle) == []
        assert needle.decode() not in out + err
    add("privacy", 2)
