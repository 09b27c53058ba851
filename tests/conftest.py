"""Shared fixtures: an isolated TANDEM_HOME per test and the tiny real GGUF models (written once per session)."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Any hub request a test did not point at its own loopback server must fail at once, never reach out.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_HUB_OFFLINE", None)
# huggingface_hub fixes its token and cache paths when first imported: never let that be the real ~/.cache.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="tandem-tests-hf-")
os.environ.pop("HF_TOKEN_PATH", None)
os.environ.pop("HF_HUB_CACHE", None)

from desktop.core.synth import ModelShape, write_llama_gguf  # noqa: E402

# llama.cpp with OpenMP on an oversubscribed 2-core machine can stall for seconds: one thread in tests.
TEST_THREADS = 1


@pytest.fixture(scope="session", autouse=True)
def collect_on_the_main_thread():
    """As the app does (desktop/ui/collector.py): no automatic garbage collection, which could run in a
    background thread and finalize a Qt object there (a PySide6 deadlock, seen in this suite); instead a
    collection on the main thread after every test."""
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


@pytest.fixture(autouse=True)
def collect_after_test(collect_on_the_main_thread):
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def tandem_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "tandem-home"
    home.mkdir()
    monkeypatch.setenv("TANDEM_HOME", str(home))
    hf_home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: repoint the paths it computed at import time
        monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    return home


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_base(models_dir) -> Path:
    """A base model: llama architecture, SPM vocab with byte fallback, no chat template."""
    return write_llama_gguf(models_dir / "tiny-base.gguf", instruct=False, seed=1)


@pytest.fixture(scope="session")
def tiny_instruct(models_dir) -> Path:
    """Its instruct sibling: the same vocab, a ChatML chat template, <|im_end|> as end of turn."""
    return write_llama_gguf(models_dir / "tiny-instruct.gguf", instruct=True, seed=2)


@pytest.fixture(scope="session")
def slow_base(models_dir) -> Path:
    """Big enough that a long prompt's prefill takes seconds on one thread (for cancel-during-prefill)."""
    shape = ModelShape(n_embd=512, n_layer=8, n_head=8, n_head_kv=8, n_ff=1536, context_length=8192)
    return write_llama_gguf(models_dir / "slow-base.gguf", instruct=False, shape=shape, seed=3)
