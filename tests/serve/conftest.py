"""Servers over the tiny random-weight models (one thread each), started on a free loopback port."""

from __future__ import annotations

import httpx
import pytest

from desktop.core.synth import write_llama_gguf
from desktop.engine import LoadOptions, load_model
from desktop.serve import ServerConfig, ServerHandle
from tests.conftest import TEST_THREADS

OPTIONS = LoadOptions(threads=TEST_THREADS, n_ctx=512)


@pytest.fixture(scope="session")
def tiny_nobos(models_dir):
    """The base model's twin whose tokenizer adds no BOS before a text (as SmolLM2's and Qwen's)."""
    return write_llama_gguf(models_dir / "tiny-nobos.gguf", instruct=False, seed=1, add_bos=False)


@pytest.fixture(scope="module")
def instruct_model(tiny_instruct):
    with load_model(tiny_instruct, OPTIONS) as model:
        yield model


@pytest.fixture(scope="module")
def base_model(tiny_base):
    with load_model(tiny_base, OPTIONS) as model:
        yield model


@pytest.fixture(scope="module")
def nobos_model(tiny_nobos):
    with load_model(tiny_nobos, OPTIONS) as model:
        yield model


@pytest.fixture(scope="module")
def one_server(instruct_model):
    """One model served: the plain roots are its own."""
    handle = ServerHandle({"tiny-instruct": instruct_model}, ServerConfig(port=0))
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def three_server(instruct_model, base_model, nobos_model):
    handle = ServerHandle({"tiny-instruct": instruct_model, "tiny-base": base_model, "tiny-nobos": nobos_model},
                          ServerConfig(port=0))
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture
def client(one_server):
    with httpx.Client(base_url=one_server.url, timeout=60) as c:
        yield c
