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
