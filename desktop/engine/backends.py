"""What the ui and the CLI call to get a ``Model``, without knowing which backend runs it.

The ui imports this module, ``desktop.engine.model`` (the interface) and ``desktop.engine.types`` (values),
never ``client`` or ``worker``: an import contract holds that line, so a second backend (a remote server,
``desktop/engine/remote.py``) is added here and every pane gets it for free. The local backend is imported
lazily: the GUI's cold start never pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from desktop.engine.model import Model
from desktop.engine.types import LoadInfo, LoadOptions


def open_model(path: str | os.PathLike, options: LoadOptions | None = None) -> Model:
    """Load a local GGUF model in its own worker process. Blocks (call it off the GUI thread).
    Raises ``ModelFileError`` for a bad file and ``EngineError`` when llama.cpp can't load it."""
    from desktop.engine.client import load_model

    return load_model(path, options)


@dataclass(frozen=True, slots=True)
class EndpointModels:
    """What a saved endpoint serves, as a picker lists it: its models' ids, or the one-line reason there
    are none to offer (offline mode, the server is down, a refused key)."""

    endpoint: str
    url: str
    engine: str = ""  # "vLLM", "llama-server", ... ("" when the server was not reached)
    models: tuple[str, ...] = ()
    error: str = ""


def open_remote(endpoint: str, model_id: str) -> Model:
    """Open ``model_id`` on a saved endpoint (or a URL): detection, and the check of its logprobs. Blocks
    (call it off the GUI thread). Raises a ``RemoteError`` / ``EndpointError`` / ``OfflineError``."""
    from desktop.engine.remote import open_endpoint

    return open_endpoint(endpoint, model_id or None)


def endpoint_models(endpoint: str) -> EndpointModels:
    """Which models a saved endpoint serves (one quick request, no checking). Blocks; never raises: a
    fault is the result's one-line ``error``. Offline mode refuses a non-loopback endpoint before any
    DNS lookup."""
    from desktop.core.endpoints import EndpointStore
    from desktop.core.errors import TandemError
    from desktop.engine.remote_http import Transport
    from desktop.engine.remote_registry import detect, label

    url = endpoint
    try:
        url, key, _label = EndpointStore().resolve(endpoint)
        t = Transport(url, key, connect_timeout=3.0, read_timeout=15.0)  # a picker must not hang on it
        try:
            facts = detect(t)
        finally:
            t.close()
    except (TandemError, ValueError) as exc:
        return EndpointModels(endpoint, url, error=str(exc))
    return EndpointModels(endpoint, url, label(facts.engine), tuple(m.id for m in facts.models))


def describe_endpoint(url: str, api_key: str | None = None) -> dict:
    """What "Test connection" shows: the engine, its version and each model with what it can do (its
    scores checked). Blocks; raises the fault's one-line error."""
    from desktop.engine.remote import describe

    return describe(url, api_key=api_key)


def split_threads(models: Sequence[Model]) -> int | None:
    """CPU threads per local model when these models decode at the same time: their load-time counts share
    the cores (oversubscribed OpenMP threads spin against each other and every model crawls). One local
    model (or the same one twice) keeps its own count; None when none is local (a remote model uses no
    local cores)."""
    local: list[Model] = []
    for m in models:
        if not m.capabilities.remote and isinstance(m.info, LoadInfo) and all(m is not x for x in local):
            local.append(m)
    if not local:
        return None
    cores = max(m.info.threads for m in local)  # type: ignore[attr-defined]  # LoadInfo, checked above
    return max(1, cores // len(local))


def special_texts(models: Sequence[Model | None]) -> list[str]:
    """The begin/end-of-text markers of these models (shown distinctly in the exact-inputs views)."""
    return [t for m in models if m is not None for t in (m.info.bos_text, m.info.eos_text) if t]


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str
    description: str
    memory_total: int
    memory_free: int


@dataclass(frozen=True, slots=True)
class Hardware:
    """What this machine's llama.cpp build can use, as the Models page needs it."""

    build_backend: str  # "CPU", "CUDA", "Metal", "Vulkan", ...
    gpu_offload_supported: bool
    gpus: tuple[Gpu, ...] = ()

    @classmethod
    def from_report(cls, report: dict) -> Hardware:
        gpus = tuple(Gpu(str(g.get("name") or ""), str(g.get("description") or ""),
                         int(g.get("memory_total") or 0), int(g.get("memory_free") or 0))
                     for g in report.get("gpus") or [])
        return cls(str(report.get("build_backend") or "CPU"), bool(report.get("gpu_offload_supported")), gpus)


def hardware(refresh: bool = False) -> Hardware:
    """The local build's devices, read once in a short-lived worker (blocks; call it off the GUI thread).
    ``desktop.engine.client.hardware_report`` gives the full dict the CLI's ``doctor`` prints."""
    from desktop.engine.client import hardware_report

    return Hardware.from_report(hardware_report(refresh))
