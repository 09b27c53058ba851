"""Broken model files, made byte by byte from a valid tiny model, through every door a file goes through:
the metadata reader, the library scan, the engine's load (and generation where it loads), the CLI.

The promise: a one-line error within 2 s, the worker may die but the test process (the app) never does,
and the library lists the file as broken with the reason.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults_common import THREADS, add, one_line
from faults_gguf import (
    all_duplicate_words,
    corruptions,
    duplicate_vocab,
    huge_context,
    truncation_offsets,
    walk,
)

from desktop.core.errors import EngineError, ModelFileError
from desktop.core.gguf_meta import read_metadata
from desktop.core.library import Library
from desktop.engine import LoadOptions, SamplingParams, load_model
from desktop.engine.client import ModelHandle

OPTS = LoadOptions(threads=THREADS, n_ctx=512, gpu_layers=0)
LIMIT_S = 2.0
# Files only llama.cpp itself can judge (the header is well-formed): they reach a worker.
NEEDS_LLAMA = ("tensor with an unknown type", "duplicate vocab token", "many duplicate vocab tokens")


@pytest.fixture(scope="module")
def catalogue(tiny_instruct, tmp_path_factory) -> dict[str, Path]:
    """name -> broken file. Truncations are named by offset and the region the cut falls in."""
    buf = tiny_instruct.read_bytes()
    lay = walk(buf)
    folder = tmp_path_factory.mktemp("bad-models")
    files: dict[str, bytes] = dict(corruptions(buf, lay))
    for where, at in truncation_offsets(lay):
        files[f"truncated at byte {at} ({where})"] = buf[:at]
    files["duplicate vocab token"] = duplicate_vocab(buf, lay)
    files["many duplicate vocab tokens"] = all_duplicate_words(buf, lay)
    out = {}
    for i, (name, data) in enumerate(files.items()):
        path = folder / f"bad-{i:03d}.gguf"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def huge_ctx_model(tiny_instruct, tmp_path_factory) -> Path:
    buf = tiny_instruct.read_bytes()
    path = tmp_path_factory.mktemp("huge-ctx") / "huge-context.gguf"
    path.write_bytes(huge_context(buf, walk(buf)))
    return path


def header_refused(catalogue) -> dict[str, Path]:
    return {n: p for n, p in catalogue.items() if n not in NEEDS_LLAMA}


def test_the_catalogue_covers_every_region(catalogue):
    truncations = [n for n in catalogue if n.startswith("truncated")]
    assert len(truncations) >= 40
    for region in ("magic", "version", "tensor count", "KV count", "first key", "general.name", "vocab",
                   "chat_template", "tensor's name", "tensor's dims", "tensor's offset", "tensor data"):
        assert any(region in n for n in truncations), region
    add("files", len(catalogue))
    add("truncations", len(truncations))


def test_metadata_reader_gives_one_line_errors_fast(catalogue):
    problems = []
    for name, path in header_refused(catalogue).items():
        t0 = time.perf_counter()
        try:
            read_metadata(path)
            problems.append(f"{name}: read as a valid model")
            continue
        except ModelFileError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            problems.append(f"{name}: escaped as {type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - t0
        if not one_line(message) or elapsed > LIMIT_S:
            problems.append(f"{name}: {elapsed:.2f}s {message!r}")
    assert not problems, "\n".join(problems)


def test_library_lists_every_broken_file_with_its_reason(catalogue, tiny_base, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_base, folder / "good.gguf")
    for path in header_refused(catalogue).values():
        shutil.copy(path, folder / path.name)
    t0 = time.perf_counter()
    entries = {e.path.name: e for e in Library(folder, discover=False).scan()}
    assert time.perf_counter() - t0 < 10
    assert entries["good.gguf"].ok
    problems = []
    for name, path in header_refused(catalogue).items():
        entry = entries.get(path.name)
        if entry is None:
            problems.append(f"{name}: not listed")
        elif entry.ok or not one_line(entry.broken or ""):
            problems.append(f"{name}: broken={entry.broken!r}")
        else:
            with pytest.raises(ModelFileError) as info:
                read_metadata(path)
            if entry.broken != str(info.value):
                problems.append(f"{name}: library says {entry.broken!r}, reader {info.value}")
    assert not problems, "\n".join(problems)


def test_load_refuses_each_broken_file_in_one_line_without_starting_a_worker(catalogue):
    before = {p.pid for p in multiprocessing.active_children()}
    problems = []
    for name, path in header_refused(catalogue).items():
        t0 = time.perf_counter()
        try:
            handle = load_model(path, OPTS)
            handle.close()
            problems.append(f"{name}: loaded")
            continue
        except (ModelFileError, EngineError) as exc:
            message = str(exc)
        elapsed = time.perf_counter() - t0
        if not one_line(message) or elapsed > LIMIT_S or path.name not in message:
            problems.append(f"{name}: {elapsed:.2f}s {message!r}")
    assert not problems, "\n".join(problems)
    assert {p.pid for p in multiprocessing.active_children()} <= before


# The header check above runs before any worker starts. These prove the second line of defence: the same
# files handed straight to a worker (as if the reader had missed them) are refused by llama.cpp cleanly.
STRAIGHT_TO_LLAMA = (
    "text file", "version 99", "absurd KV count", "absurd token length", "absurd vocabulary count",
    "tensor with an absurd shape", "tensor data out of bounds", "duplicate tensor name",
    "truncated at byte 8294", "truncated at byte 18597", "truncated at byte 373664",
)


def test_worker_survives_broken_files_the_header_check_would_have_caught(catalogue):
    problems = []
    for wanted in STRAIGHT_TO_LLAMA:
        name, path = next((n, p) for n, p in catalogue.items() if n.startswith(wanted))
        t0 = time.perf_counter()
        try:
            ModelHandle(path.resolve(), OPTS).close()
            problems.append(f"{name}: llama.cpp loaded it")
            continue
        except (ModelFileError, EngineError) as exc:
            message = str(exc)
        elapsed = time.perf_counter() - t0
        # a worker's spawn + llama_cpp import alone is ~0.5 s here; allow a loaded CI machine some room
        if not one_line(message) or elapsed > 3 * LIMIT_S:
            problems.append(f"{name}: {elapsed:.2f}s {message!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NEEDS_LLAMA)
def test_files_only_llama_cpp_can_judge_fail_cleanly_and_the_app_goes_on(catalogue, tiny_base, name):
    """A duplicate-token vocab trips a GGML_ASSERT (the worker aborts); an unknown tensor type is refused.
    Either way: a one-line ModelFileError, and a good model loads and generates right after."""
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError) as info:
        load_model(catalogue[name], OPTS)
    elapsed = time.perf_counter() - t0
    assert one_line(str(info.value)) and catalogue[name].name in str(info.value)
    assert elapsed < 3 * LIMIT_S, elapsed  # the worker's start-up is most of it
    with load_model(tiny_base, OPTS) as good:
        stream = good.complete("hello", SamplingParams(max_tokens=3, seed=1))
        assert stream.text() is not None and stream.final.error is None


def test_library_lists_a_duplicate_token_vocab_as_broken(catalogue, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(catalogue["duplicate vocab token"], folder / "dup.gguf")
    (entry,) = Library(folder, discover=False).scan()
    assert not entry.ok and "duplicate" in (entry.broken or "")


def test_huge_claimed_context_loads_with_a_sane_default_and_generates(huge_ctx_model):
    meta = read_metadata(huge_ctx_model)
    assert meta.context_length == 0xFFFFFFFF
    t0 = time.perf_counter()
    with load_model(huge_ctx_model, LoadOptions(threads=THREADS, gpu_layers=0)) as model:
        assert model.info.n_ctx == 4096  # min(trained, 4096), not the absurd claim (nor -1)
        stream = model.complete("Once upon a time", SamplingParams(max_tokens=8, seed=3))
        text = stream.text()
        assert stream.final.finish_reason in ("length", "stop") and isinstance(text, str)
    assert time.perf_counter() - t0 < 3 * LIMIT_S


@pytest.mark.parametrize("n_ctx", [2**31 - 1, 10_000_000])
def test_asking_for_an_impossible_context_is_refused_at_once(huge_ctx_model, n_ctx):
    t0 = time.perf_counter()
    with pytest.raises(EngineError) as info:
        load_model(huge_ctx_model, LoadOptions(threads=THREADS, gpu_layers=0, n_ctx=n_ctx))
    assert one_line(str(info.value)) and "smaller context" in str(info.value)
    assert time.perf_counter() - t0 < 3 * LIMIT_S


def test_cli_reports_broken_files_in_one_line_with_exit_1(catalogue, capsys):
    from desktop.cli import main

    problems = []
    for name, path in header_refused(catalogue).items():
        for argv in (["models", "info", str(path)], ["complete", "--model", str(path), "--threads", "1", "hi"]):
            code = main(argv)
            out, err = capsys.readouterr()
            lines = err.strip().splitlines()
            if code != 1 or len(lines) != 1 or not lines[0].startswith("tandem: error: ") or out.strip():
                problems.append(f"{name} {argv[0]}: exit {code}, stderr {err!r}")
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("name", ["empty", "truncated at byte 373664", "duplicate vocab token"])
def test_cli_in_a_real_process(catalogue, name):
    path = next(p for n, p in catalogue.items() if n.startswith(name))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "desktop", "complete", "--model", str(path), "--threads", "1",
                           "--max-tokens", "4", "hello"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tandem: error: ") and path.name in lines[0], done.stderr
    assert time.perf_counter() - t0 < 15
