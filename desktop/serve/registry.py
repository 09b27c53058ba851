"""The served models: id -> ``Model``, each with its queue (``Lane``), and which model a request means.

A model serves ``capabilities.slots`` requests at once (``--parallel N``); more wait in the lane, in the
order they came, on the event loop (a waiting request holds no thread). Blocking model calls run on
threads from one limiter sized for every lane at once, so 50 connections are all answered or queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread

from desktop.engine.model import Model
from desktop.serve.errors import ApiError, from_exception

T = TypeVar("T")
THREADS = 64  # blocking calls at once over every model; a request waiting in a lane takes none


@dataclass(eq=False)
class Served:
    """One served model and its lane."""

    id: str
    model: Model
    lane: asyncio.Semaphore

    @property
    def n_ctx(self) -> int:
        return int(self.model.info.n_ctx)


class Registry:
    """The served set; ``set`` may be called from any thread while requests run (each keeps its model)."""

    def __init__(self, models: Mapping[str, Model]):
        self._lock = threading.Lock()
        self._served: dict[str, Served] = {}
        self.limiter = anyio.CapacityLimiter(THREADS)
        self.set(models)

    def set(self, models: Mapping[str, Model]) -> None:
        for model_id in models:
            check_id(model_id)
        with self._lock:
            old = {id(s.model): s for s in self._served.values()}
            served = {}
            for model_id, model in models.items():
                kept = old.get(id(model))
                lane = kept.lane if kept is not None else asyncio.Semaphore(max(1, model.capabilities.slots))
                served[model_id] = Served(model_id, model, lane)
            self._served = served

    def ids(self) -> list[str]:
        return list(self._served)

    def all(self) -> list[Served]:
        return list(self._served.values())

    def get(self, model_id: str) -> Served:
        served = self._served.get(model_id)
        if served is None:
            ids = ", ".join(self._served) or "none"
            raise ApiError(404, f"The model {model_id!r} is not served here; served models: {ids}.",
                           "model_not_found")
        return served

    def resolve(self, root_id: str | None, asked: str | None, route: str) -> Served:
        """The model a request means: its root's (``/models/<id>/...``), else the body's ``model``, else
        the only one served. Several served and none named: 400 naming the per-model roots."""
        if root_id is not None:
            return self.get(root_id)
        if asked:
            return self.get(asked)
        served = self._served
        if len(served) == 1:
            return next(iter(served.values()))
        if not served:
            raise ApiError(503, "No model is being served right now.", "no_model")
        roots = ", ".join(f"/models/{i}{route}" for i in served)
        raise ApiError(400, f"Several models are served: name one with \"model\", or use its own root: {roots}.",
                       "model_required")

    async def run(self, served: Served, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` on a thread, in the model's lane; its failure raised as the client's ``ApiError``."""
        async with served.lane:
            try:
                return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
            except Exception as exc:
                raise from_exception(exc) from None


def check_id(model_id: str) -> None:
    """A served id is a name, never a path: it sits in URLs (``/models/<id>/v1``)."""
    if not model_id or any(c in model_id for c in "/\\?#%") or model_id in (".", ".."):
        raise ValueError(f"{model_id!r} can't be a served model id (no slashes, '?', '#' or '%')")
