"""Hostile input through the engine API, the CLI and the panes: empty and 1 MB prompts, prompts past the
context, invalid UTF-8, stop strings that never come, max tokens 0 and 1,000,000, broken grammars and
schemas, and two generations fighting over one model. Each ends in its specific clean outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from faults_common import THREADS, add, one_line

from desktop.core.errors import ContextOverflow, EngineBusy, EngineError, GrammarError
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, load_model

N_CTX = 512
OPTS = LoadOptions(threads=THREADS, n_ctx=N_CTX, gpu_layers=0)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tiny_instruct):
    with load_model(tiny_instruct, OPTS) as handle:
        yield handle


def run(model, prompt, **params) -> FinalEvent:
    stream = model.complete(prompt, SamplingParams(**params))
    events = list(stream)
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert "".join(e.text for e in events[:-1]) == final.text
    add("inputs")
    return final


def test_empty_prompt_still_continues_from_bos(model):
    final = run(model, "", max_tokens=4, seed=1)
    assert final.error is None and final.stats.prompt_tokens == 1  # just BOS


def test_empty_chat_is_refused_in_one_line(model):
    for messages in ([], [{"role": "system", "content": "x"}], [{"role": "wizard", "content": "x"}],
                     [{"role": "user", "content": None}]):
        final = model.chat(messages, SamplingParams(max_tokens=3)).next_event()
        assert final.finish_reason == "error" and one_line(str(final.error)), messages
        add("inputs")


@pytest.mark.parametrize("prompt", ["hello world " * 87_000, "x" * 1_000_000], ids=["1MB words", "1MB one char"])
def test_a_megabyte_prompt_is_a_context_overflow_with_the_numbers(model, prompt):
    t0 = time.perf_counter()
    final = run(model, prompt, max_tokens=4)
    assert time.perf_counter() - t0 < 10
    assert isinstance(final.error, ContextOverflow)
    assert final.error.n_ctx == N_CTX and final.error.prompt_tokens > 100_000
    assert one_line(str(final.error)) and f"{final.error.prompt_tokens:,}" in str(final.error)


def test_a_prompt_just_past_the_context(model):
    n = model.count_tokens("the king " * 300) + 1  # + BOS
    assert n > N_CTX
    final = run(model, "the king " * 300, max_tokens=4)
    assert isinstance(final.error, ContextOverflow) and final.error.prompt_tokens == n


def test_a_chat_longer_than_the_context(model):
    final = model.chat([{"role": "user", "content": "the king " * 400}], SamplingParams(max_tokens=3)).next_event()
    assert isinstance(final.error, ContextOverflow)


@pytest.mark.parametrize("text", ["hi \udcff there", "\ud800", "a\udfff\ud800b", "ok \ud83d\ude00"])
def test_invalid_utf8_is_replaced_not_fatal(model, text):
    final = run(model, text, max_tokens=3, seed=2)
    assert final.error is None
    rendered = model.render_chat([{"role": "user", "content": text}], system=text)
    rendered.encode("utf-8")  # valid: lone surrogates became U+FFFD
    assert "\ufffd" in rendered or "\U0001f600" in rendered
    chat = model.chat([{"role": "user", "content": text}], SamplingParams(max_tokens=3, seed=2))
    chat.text()
    assert chat.final.error is None


def test_a_stop_string_that_never_occurs(model):
    final = run(model, "Once upon a time", max_tokens=24, stop=("\u2603 never \u2603", "\x00"), seed=4,
                temperature=1.0)
    assert final.error is None
    if final.finish_reason == "length":
        assert final.stats.completion_tokens == 24


def test_max_tokens_zero_and_a_million(model):
    zero = run(model, "hello", max_tokens=0)
    assert zero.finish_reason == "length" and zero.text == "" and zero.stats.completion_tokens == 0
    t0 = time.perf_counter()
    huge = run(model, "hello", max_tokens=1_000_000, seed=11, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0)
    assert huge.error is None and huge.finish_reason in ("stop", "length")
    assert huge.stats.completion_tokens < N_CTX  # bounded by the context, not by the request
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("grammar", ["root ::= [", 'foo ::= "a"', 'root ::= root "a"', 'root ::= "a" | root',
                                     'root ::= ("a" ', "root ::= undefined-rule", 'root ::= "a"{1000000}',
                                     "\x00", "root ::= \"a\"\x00junk", "   \n", "root ::= \udcff"])
def test_invalid_grammar_is_a_grammar_error_and_the_worker_lives(model, grammar):
    pid = model.pid
    final = run(model, "hello", max_tokens=3, grammar=grammar)
    assert isinstance(final.error, GrammarError) and one_line(str(final.error))
    assert model.pid == pid


@pytest.mark.parametrize("schema", ["{not json", '{"type": "nonsense"}', "[]", '{"$ref": "#/nowhere"}'])
def test_invalid_json_schema(model, schema):
    final = run(model, "hello", max_tokens=3, json_schema=schema)
    assert isinstance(final.error, (GrammarError, EngineError)) and one_line(str(final.error))


@pytest.mark.parametrize("bad", [dict(temperature=float("nan")), dict(top_p=2.0), dict(max_tokens=-1),
                                 dict(seed=2**40), dict(logprobs=1000), dict(repeat_penalty=0.0)])
def test_impossible_sampling_values(model, bad):
    final = run(model, "hello", **bad)
    assert final.finish_reason == "error" and one_line(str(final.error))


def test_two_threads_generating_on_one_model(model):
    """Concurrent Generate clicks: the newer request replaces the older (which ends 'cancelled'), or with
    replace_running=False is refused with EngineBusy. Nothing hangs, and the model works afterwards."""
    results: list = []
    barrier = threading.Barrier(4)

    def worker(replace: bool) -> None:
        barrier.wait()
        try:
            stream = model.complete("Once upon a time", SamplingParams(max_tokens=200, seed=5, temperature=1.0),
                                    replace_running=replace)
            results.append(list(stream)[-1])
        except EngineBusy as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a generate call hung"
    assert len(results) == 4
    for r in results:
        assert isinstance(r, EngineBusy) or (isinstance(r, FinalEvent) and r.error is None), r
    assert any(isinstance(r, FinalEvent) for r in results)
    add("inputs", 4)
    after = run(model, "hello", max_tokens=3, seed=1)
    assert after.error is None


def _cli(*args: str | bytes, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8:strict", **(env_extra or {})}
    add("inputs")
    return subprocess.run([sys.executable.encode(), b"-m", b"desktop", *[a if isinstance(a, bytes) else a.encode()
                                                                          for a in args]],
                          capture_output=True, timeout=120, env=env)


def test_cli_invalid_utf8_arguments(tiny_instruct):
    """Bytes that are not UTF-8 on the command line, on a strict UTF-8 terminal: text, not a crash."""
    model = str(tiny_instruct).encode()
    shown = _cli(b"chat", b"--model", model, b"--threads", b"1", b"--system", b"sys \xff", b"--show-prompt",
                 b"hi \xff\xfe there")
    assert shown.returncode == 0, shown.stderr
    assert "\ufffd" in shown.stdout.decode("utf-8")
    done = _cli(b"complete", b"--model", model, b"--threads", b"1", b"--max-tokens", b"3", b"--json",
                b"--stop", b"\xff", b"hello \xc3")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("args, code, words", [
    (["--grammar", "root ::= ["], 1, "grammar"),
    (["--json-schema", "{nope"], 1, "schema"),
    (["--max-tokens", "-3"], 2, "0 or more"),
    (["--temperature", "nan"], 2, "temperature"),
    (["--top-p", "7"], 2, "top-p"),
    (["--ctx", "100000000"], 1, "smaller context"),
    (["--grammar", "@/nonexistent/file.gbnf"], 2, "grammar file"),
])
def test_cli_bad_flags_are_one_line_errors(tiny_base, args, code, words):
    done = _cli("complete", "--model", str(tiny_base), "--threads", "1", "--max-tokens", "3", *args, "hello")
    err = done.stderr.decode()
    lines = err.strip().splitlines()
    assert done.returncode == code, err
    assert lines[-1].startswith("tandem: error: ") and words in lines[-1], err
    assert "Traceback" not in err


def test_cli_prompt_past_the_context(tiny_base):
    done = _cli("complete", "--model", str(tiny_base), "--threads", "1", "--ctx", "256", "the king " * 400)
    err = done.stderr.decode().strip()
    assert done.returncode == 1 and len(err.splitlines()) == 1 and "context" in err, err


# --- history: the database under the panes ------------------------------------------------------------


def test_history_import_of_invalid_utf8_text(tmp_path):
    from desktop.core.errors import HistoryError
    from desktop.core.export import export_json, import_json
    from desktop.core.history import HistoryStore

    store = HistoryStore(tmp_path / "h.sqlite3")
    chat = store.create_chat("t")
    store.add_message(chat, "user", "PLACEHOLDER")
    exported = export_json(store, "chat", chat).replace("PLACEHOLDER", "bad \\udcff text")
    try:
        item = import_json(store, exported)
    except HistoryError:
        return  # a clean refusal is fine too
    assert store.get_chat(item.id).messages[0].content == "bad \ufffd text"


# --- the panes (pytest-qt, offscreen) ---------------------------------------------------------------------


@pytest.fixture
def window(qtbot, tandem_home, tiny_base, tiny_instruct):
    import shutil

    from desktop.app import create_main_window
    from desktop.core.settings import Settings, save_settings

    folder = tandem_home / "my-models"
    folder.mkdir()
    for m in (tiny_base, tiny_instruct):
        shutil.copy(m, folder / m.name)
    save_settings(Settings(models_dir=str(folder), threads=THREADS, gpu_layers="0"))
    win = create_main_window()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.context.library_scanned, timeout=20_000)
    yield win
    win.close()


def _pick(qtbot, pane, file_name: str) -> None:
    from PySide6.QtWidgets import QComboBox

    combo = pane.findChild(QComboBox, "modelPicker")
    combo.setCurrentIndex(next(i for i in range(combo.count()) if file_name in combo.itemText(i)))
    qtbot.waitUntil(lambda: pane.model.handle is not None or bool(pane.model.error), timeout=60_000)
    assert not pane.model.error


def test_completion_pane_megabyte_paste_and_double_generate(qtbot, window, tiny_base):
    from PySide6.QtWidgets import QWidget

    pane = window.findChild(QWidget, "completionPane")
    _pick(qtbot, pane, tiny_base.name)
    pane.editor.setPlainText("hello world " * 87_000)  # a 1 MB paste
    with qtbot.waitSignal(pane.generationEnded, timeout=60_000) as ended:
        pane.generate()
    assert isinstance(ended.args[0].error, ContextOverflow)
    assert pane.notice.level == "error" and one_line(pane.notice.text())
    assert len(pane.editor.toPlainText()) >= 1_000_000  # the user's text is kept
    pane.editor.setPlainText("Once upon a time")
    with qtbot.waitSignal(pane.generationEnded, timeout=60_000) as ended:
        pane.generate()
        pane.generate()  # a double click: the second replaces the first, nothing breaks
    assert not pane.is_generating() and ended.args[0].error is None
    with qtbot.assertNotEmitted(pane.generationEnded, wait=200):  # the replaced request never ends late
        pass
    assert pane.editor.toPlainText().startswith("Once upon a time")
    add("inputs", 2)


def test_chat_pane_ignores_an_empty_message(qtbot, window, tiny_instruct):
    from PySide6.QtWidgets import QWidget

    pane = window.findChild(QWidget, "chatPane")
    _pick(qtbot, pane, tiny_instruct.name)
    with qtbot.assertNotEmitted(pane.generationEnded, wait=300):  # nothing is sent, so nothing ends
        pane.send("   \n\t ")
    assert not pane.is_generating() and pane.transcript.toPlainText().strip() == ""
    add("inputs")
