"""Process faults: SIGKILL the model's worker mid-stream, mid-load and mid-prefill (the engine recovers and
the next request works), and SIGKILL the whole app while it streams a chat and downloads a model, then
start it again: every committed message is there, the database passes integrity_check, no worker is left
behind, and the download resumes from the bytes on disk."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from faults_common import THREADS, add, one_line

from desktop.core.errors import EngineCrashed, ModelFileError
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, TokenEvent, load_model

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL")

REPO_ROOT = Path(__file__).resolve().parents[2]
FOREVER = 'root ::= [a-z ] root'  # a grammar with no end: the model can't stop by itself


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _works(handle) -> None:
    stream = handle.complete("hello", SamplingParams(max_tokens=4, seed=1))
    stream.text()
    assert stream.final.error is None and stream.final.finish_reason in ("length", "stop")


def test_kill_mid_stream(slow_base):
    with load_model(slow_base, LoadOptions(threads=THREADS, n_ctx=1024, gpu_layers=0)) as model:
        stream = model.complete("Once upon a time", SamplingParams(max_tokens=500, grammar=FOREVER, seed=2))
        tokens = []
        for event in stream:
            if isinstance(event, TokenEvent):
                tokens.append(event)
                if len(tokens) == 5:
                    os.kill(model.pid, signal.SIGKILL)
            else:
                final = event
        assert 5 <= len(tokens) < 500
        assert final.finish_reason == "error" and isinstance(final.error, EngineCrashed)
        assert "SIGKILL" in str(final.error) and one_line(str(final.error))
        add("kills")
        _works(model)  # a fresh worker, the model loaded again
        assert model.alive


def test_kill_mid_prefill(slow_base):
    with load_model(slow_base, LoadOptions(threads=THREADS, n_ctx=4096, gpu_layers=0)) as model:
        pid = model.pid
        stream = model.complete("the king " * 1400, SamplingParams(max_tokens=4))  # ~11 s of prefill here
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
        killer.start()
        t0 = time.perf_counter()
        final = list(stream)[-1]
        assert time.perf_counter() - t0 < 5, "the kill was not noticed promptly"
        assert isinstance(final, FinalEvent) and isinstance(final.error, EngineCrashed)
        assert final.stats.completion_tokens == 0
        add("kills")
        _works(model)
        assert model.pid != pid


def test_kill_mid_load(slow_base, tiny_base):
    """Kill the worker while it loads: a clean one-line error, and the next load works."""
    before = {p.pid for p in multiprocessing.active_children()}
    outcome: list = []

    def load() -> None:
        try:
            outcome.append(load_model(slow_base, LoadOptions(threads=THREADS, n_ctx=4096, gpu_layers=0)))
        except Exception as exc:  # noqa: BLE001 - recorded and checked below
            outcome.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    deadline = time.monotonic() + 20
    victim = None
    while victim is None and time.monotonic() < deadline:
        new = [p for p in multiprocessing.active_children() if p.pid not in before]
        victim = new[0] if new else None
        time.sleep(0.005)
    assert victim is not None, "no worker started"
    time.sleep(0.05)  # inside spawn/import/llama_model_load
    os.kill(victim.pid, signal.SIGKILL)
    loader.join(30)
    assert not loader.is_alive()
    (result,) = outcome
    if not isinstance(result, Exception):  # the load won the race: it must then be a working model
        result.close()
        pytest.skip("the model finished loading before the kill landed")
    assert isinstance(result, (ModelFileError, EngineCrashed)) and one_line(str(result))
    assert "SIGKILL" in str(result)
    add("kills")
    with load_model(tiny_base, LoadOptions(threads=THREADS, n_ctx=256, gpu_layers=0)) as again:
        _works(again)


def test_kill_one_model_the_other_keeps_streaming(tiny_base, tiny_instruct):
    opts = LoadOptions(threads=THREADS, n_ctx=1024, gpu_layers=0)
    with load_model(tiny_base, opts) as a, load_model(tiny_instruct, opts) as b:
        pid = a.pid
        os.kill(pid, signal.SIGKILL)  # while idle, as the OOM killer would
        _works(b)
        deadline = time.monotonic() + 5
        while a.alive and time.monotonic() < deadline:  # reaped (its threads may take a moment to exit)
            time.sleep(0.01)
        add("kills")
        _works(a)  # found dead before the request: started again transparently
        assert a.pid != pid


# --- the whole app ----------------------------------------------------------------------------------------


def _start_app(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("faults_app.py")), *args],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def test_kill_the_whole_app_mid_chat_and_mid_download(fake_hub, tiny_instruct, tiny_base, tandem_home,
                                                      tmp_path):
    repo, filename = "tandem-test/Tiny-GGUF", "tiny-base-Q8_0.gguf"
    fake_hub.add_repo(repo, {filename: tiny_base.read_bytes()})
    fake_hub.delay = 0.05  # ~80 KB/s: the kill lands mid-file
    dest = tmp_path / "models"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TANDEM_HOME": str(tandem_home),
           "HF_ENDPOINT": fake_hub.url}
    app = _start_app(env, str(tiny_instruct), repo, filename, str(dest))
    committed: dict[int, list[tuple[int, str, int]]] = {}  # message id -> its versions, as announced
    worker_pid = None
    deadline = time.monotonic() + 60
    part = dest / f"{filename}.part"
    while time.monotonic() < deadline:
        line = app.stdout.readline()
        assert line, f"the app ended early: {app.stderr.read()}"
        kind, *rest = line.split()
        if kind == "WORKER":
            worker_pid = int(rest[0])
        elif kind == "COMMIT":
            committed.setdefault(int(rest[0]), []).append((int(rest[1]), rest[2], int(rest[3])))
        if len(committed) >= 2 and part.exists() and part.stat().st_size > 20_000:
            break  # a user message and a streaming reply committed, the download under way
    assert time.monotonic() < deadline, "the app never got going"
    app.send_signal(signal.SIGKILL)  # the app only: its worker must notice and go by itself
    app.wait(10)
    for line in app.stdout:  # what it announced before it died
        kind, *rest = line.split()
        if kind == "COMMIT":
            committed.setdefault(int(rest[0]), []).append((int(rest[1]), rest[2], int(rest[3])))
    app.stdout.close()  # our ends of its pipes (unclosed, they are a ResourceWarning, an error here)
    app.stderr.close()
    add("kills")
    have = part.stat().st_size
    assert 0 < have < tiny_base.stat().st_size and not (dest / filename).exists()

    # the worker does not outlive the app
    assert worker_pid is not None
    gone = time.monotonic() + 5
    while _alive(worker_pid) and time.monotonic() < gone:
        time.sleep(0.1)
    assert not _alive(worker_pid), "the model's worker outlived the killed app"

    # the database: intact, with every committed message exactly as committed
    db = tandem_home / "data" / "history.sqlite3"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    from desktop.core.history import HistoryStore

    store = HistoryStore()
    (item,) = store.list_items("chat")
    messages = {m.id: m for m in store.get_chat(item.id).messages}
    for message_id, versions in committed.items():
        # the last version announced, or (killed between announcing a reply's version and saving it) the one
        # before: never a torn or mixed one
        m = messages[message_id]
        saved = (len(m.content), _digest(m.content))
        assert saved in [(length, digest) for length, digest, _c in versions[-2:]], message_id
        complete = next(c for length, digest, c in reversed(versions) if (length, digest) == saved)
        assert bool(m.complete) >= bool(complete)
    store.close()

    # start again: the download resumes from the bytes on disk and lands verified
    from desktop.hub.download import DownloadManager
    from desktop.hub.transfer import RetryPolicy

    fake_hub.delay = 0
    manager = DownloadManager(dest, policy=RetryPolicy(attempts=3, base=0.05, cap=0.2))
    (pending,) = manager.pending()
    assert pending.bytes == have
    gets = len(fake_hub.file_gets(filename))
    event = manager.wait(manager.resume(pending.id), timeout=60)
    assert event is not None and event.kind == "done", event
    assert (dest / filename).read_bytes() == tiny_base.read_bytes()
    assert [r.range_start for r in fake_hub.file_gets(filename)[gets:]] == [have]
