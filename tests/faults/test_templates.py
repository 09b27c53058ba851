"""Hostile chat templates: a chat template is code inside a downloaded file. Attribute walks to ``os``,
file reads, mutation, endless loops, recursion and output bombs must end in a clean ChatTemplateError
(or render harmlessly); nothing they ask for is ever executed. Checked on the renderer itself and through
a real instruct model whose GGUF carries the template, in its worker, with the CLI on top.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faults_common import THREADS, add, one_line

from desktop.core.chat_template import render_chat
from desktop.core.errors import ChatTemplateError
from desktop.core.synth import write_llama_gguf
from desktop.engine import LoadOptions, SamplingParams, load_model

MSGS = [{"role": "user", "content": "hello"}]
OPTS = LoadOptions(threads=THREADS, n_ctx=512, gpu_layers=0)
MARK = "@MARK@"  # replaced by a path under the test's tmp dir: the file a template tries to create

# name -> template. Each must raise ChatTemplateError, and nothing may be created or read.
ESCAPES = {
    "subclasses walk": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler globals to os.popen": "{{ cycler.__init__.__globals__.os.popen('touch @MARK@').read() }}",
    "lipsum globals to os.system": "{{ lipsum.__globals__['os'].system('touch @MARK@') }}",
    "joiner globals": "{{ joiner.__init__.__globals__.os.system('touch @MARK@') }}",
    "namespace globals": "{{ namespace.__init__.__globals__.os.system('touch @MARK@') }}",
    "our raise_exception's globals": "{{ raise_exception.__globals__['os'].system('touch @MARK@') }}",
    "our strftime_now's builtins open": "{{ strftime_now.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "self to __import__": "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch @MARK@') }}",
    "str.format attribute walk": "{{ '{0.__class__.__mro__}'.format(messages) }}",
    "attr filter then call": "{{ (messages|attr('__class__')).__base__.__subclasses__() }}",
    "mutate messages (append)": "{% set x = messages.append({'role': 'user', 'content': 'x'}) %}ok",
    "mutate messages (pop)": "{{ messages.pop() }}",
    "mutate a message (update)": "{% set x = messages[0].update({'content': 'pwned'}) %}{{ messages[0].content }}",
    "include a file": "{% include '/etc/passwd' %}",
    "extend a file": "{% extends '/etc/passwd' %}",
    "import a module": "{% import 'os' as os %}{{ os.system('touch @MARK@') }}",
    "from-import a file": "{% from '/etc/passwd' import root %}{{ root }}",
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "recursive loop": "{% for m in [messages] recursive %}{{ loop([messages]) }}{% endfor %}",
    "range of a billion": "{% for i in range(10**9) %}{% endfor %}",
    "string bomb": "{{ 'x' * 10**9 }}",
    "list bomb": "{{ ([1] * 10**9)|length }}",
    "power bomb": "{% set x = 7 %}{% set y = 10 ** 8 %}{{ x ** y % 3 }}",
    "enormous output": "{% for i in range(99999) %}{{ 'x' * 99 }}{% endfor %}",
    "replace blow-up": "{{ ('x' * 1000)|replace('x', 'x' * 100000) }}",
    "raise_exception": "{{ raise_exception('this template refuses everything') }}",
    "syntax error": "{% for m in messages %}{{ m.content }",
}
# One C call allocating a gigabyte: only the worker's memory cap stops these at once (in a plain thread
# they run ~10 s and take 2 GB before the output limit sees them), so they are rendered only there.
MEMORY_BOMBS = {
    "center bomb": "{{ 'x'|center(10**9) }}",
    "format-width bomb": "{{ '{:>1000000000}'.format('x') }}",
    "printf-width bomb": "{{ '%*d'|format(10**9, 1) }}",
}
# Endless work that only a time limit stops (only the worker, which may use SIGALRM, can render these).
ENDLESS = {
    "nested range loops": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "nested loops with output": "{% for i in range(99999) %}{% for j in range(99999) %}.{% endfor %}{% endfor %}",
    "lipsum of a million paragraphs": "{{ lipsum(10**6) }}",
}
# Unsafe attributes read as undefined: harmless, they render to nothing from Python's internals.
HARMLESS = {
    "plain __class__": "{{ ''.__class__ }}<|im_start|>assistant",
    "environment": "{{ environment }}{{ config }}{{ request }}<|im_start|>assistant",
    "format_map": "{{ '{m.__class__}'.format_map({'m': messages}) }}<|im_start|>assistant",
    "generator frame": "{{ (messages|map('upper')).gi_frame }}<|im_start|>assistant",
}
LEAKS = ("<class", "root:", "module", "function", "built-in", "__", "os.", "Environment")


def _concrete(template: str, tmp_path: Path) -> tuple[str, Path]:
    marker = tmp_path / "pwned"
    return template.replace(MARK, str(marker)), marker


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_renderer_stops_each_escape_cleanly(name, tmp_path):
    template, marker = _concrete(ESCAPES[name], tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(ChatTemplateError) as info:
        render_chat(template, MSGS, max_seconds=2.0)
    assert time.perf_counter() - t0 < 2.5
    message = str(info.value)
    assert one_line(message), message
    assert "root:" not in message and not marker.exists()
    add("templates")


@pytest.mark.parametrize("name", sorted(HARMLESS))
def test_unsafe_attributes_read_as_nothing(name):
    text = render_chat(HARMLESS[name], MSGS)
    assert text.endswith("<|im_start|>assistant")
    assert not any(leak in text for leak in LEAKS), text
    add("templates")


def test_messages_are_not_changed_by_a_template():
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(ChatTemplateError):
        render_chat(ESCAPES["mutate a message (update)"], messages)
    assert messages == [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """One tiny instruct GGUF per hostile template (the template is in the file, as in a download)."""
    folder = tmp_path_factory.mktemp("hostile-templates")
    marker = folder / "pwned"
    chosen = {n: ESCAPES[n] for n in ("cycler globals to os.popen", "self to __import__", "include a file",
                                      "our strftime_now's builtins open", "mutate messages (append)",
                                      "recursive macro", "string bomb", "enormous output", "power bomb")}
    chosen.update(MEMORY_BOMBS)
    chosen.update(ENDLESS)
    models = {}
    for i, (name, template) in enumerate(chosen.items()):
        models[name] = write_llama_gguf(folder / f"hostile-{i:02d}.gguf", instruct=True, seed=i,
                                        chat_template=template.replace(MARK, str(marker)))
    return models, marker


@pytest.mark.parametrize("name", ["cycler globals to os.popen", "self to __import__", "include a file",
                                  "our strftime_now's builtins open", "mutate messages (append)",
                                  "recursive macro", "string bomb", "enormous output", "power bomb",
                                  *MEMORY_BOMBS, *ENDLESS])
def test_a_model_carrying_the_template_fails_cleanly_and_keeps_working(hostile_models, name):
    models, marker = hostile_models
    with load_model(models[name], OPTS) as model:
        pid = model.pid
        t0 = time.perf_counter()
        with pytest.raises(ChatTemplateError) as info:
            model.render_chat(MSGS)
        elapsed = time.perf_counter() - t0
        assert one_line(str(info.value)) and "root:" not in str(info.value)
        assert elapsed < 4.0, f"{name}: {elapsed:.2f}s"  # the 2 s render limit, plus the worker's reply
        final = model.chat(MSGS, SamplingParams(max_tokens=4, seed=1)).next_event()
        assert final.finish_reason == "error" and isinstance(final.error, ChatTemplateError)
        # the same worker is alive and still generates (raw completion needs no template)
        assert model.pid == pid
        stream = model.complete("hello", SamplingParams(max_tokens=4, seed=1))
        stream.text()
        assert stream.final.error is None and stream.final.finish_reason in ("length", "stop")
    assert not marker.exists()
    add("templates")


@pytest.mark.parametrize("name", ["self to __import__", "nested range loops"])
def test_cli_show_prompt_on_a_hostile_template(hostile_models, name, capsys):
    from desktop.cli import main

    models, marker = hostile_models
    code = main(["chat", "--model", str(models[name]), "--threads", "1", "--show-prompt", "hi"])
    out, err = capsys.readouterr()
    assert code == 1 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tandem: error: ") and "chat template" in lines[0]
    assert not marker.exists()
