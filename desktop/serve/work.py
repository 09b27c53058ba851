"""What serving a request shares between routes, apart from HTTP: sampling settings from a request, a
cancel that reaches the engine's stream from the event loop, and a blocking job run on its own thread whose
events arrive on the event loop (a stream's tokens, one by one)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from desktop.engine.types import SamplingParams
from desktop.serve.errors import ApiError
from desktop.serve.protocol import SamplingFields
from desktop.serve.registry import Served

LOGPROB_FLOOR = -9999.0  # vLLM's stand-in for -inf (JSON has no infinity)


def logprob(x: float) -> float | None:
    """A logprob as JSON can carry it: NaN (no value) is null, -inf the floor."""
    if x is None or math.isnan(x):
        return None
    return max(float(x), LOGPROB_FLOOR)


def stops(fields: SamplingFields) -> tuple[str, ...]:
    stop = fields.stop
    return ((stop,) if isinstance(stop, str) else tuple(stop or ())) if stop else ()


def sampling(fields: SamplingFields, max_tokens: int, logprobs: int, *, emit_eog: bool) -> SamplingParams:
    """The engine's settings for a request; a value the sampler refuses is a 400."""
    penalty = fields.repeat_penalty or fields.repetition_penalty or 1.0
    params = SamplingParams(
        temperature=fields.temperature, top_k=max(0, fields.top_k), top_p=fields.top_p, min_p=fields.min_p,
        repeat_penalty=penalty, presence_penalty=fields.presence_penalty,
        frequency_penalty=fields.frequency_penalty, max_tokens=max_tokens, stop=stops(fields),
        seed=fields.seed, logprobs=logprobs, emit_eog=emit_eog)
    try:
        return params.validate()
    except ValueError as exc:
        raise ApiError(400, f"{exc}.", "invalid_sampling") from None


def is_plain_greedy(fields: SamplingFields) -> bool:
    """Temperature 0 with nothing that changes which token is the most likely (penalties): the greedy token
    is the distribution's own first choice, readable from a scoring pass."""
    penalty = fields.repeat_penalty or fields.repetition_penalty or 1.0
    return (fields.temperature == 0 and penalty == 1.0 and fields.presence_penalty == 0
            and fields.frequency_penalty == 0)


class Cancel:
    """Stops a request's engine stream from any thread: the client left, or the server is stopping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream = None
        self.reason: str | None = None

    def attach(self, stream) -> None:
        with self._lock:
            self._stream = stream
            if self.reason is not None:
                stream.cancel()

    def cancel(self, reason: str = "disconnected") -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            stream = self._stream
        if stream is not None:
            stream.cancel()

    def check(self) -> None:
        """Raise if cancelled (between the steps of a job)."""
        if self.reason is not None:
            raise cancelled_error(self.reason)


def cancelled_error(reason: str | None) -> ApiError:
    if reason == "shutdown":
        return ApiError(503, "The server is shutting down; this request was stopped.", "shutting_down")
    return ApiError(499, "The request was cancelled.", "cancelled")


Job = Callable[[Callable[[Any], None], Cancel], Any]


async def stream_job(served: Served, job: Job, active: set[Cancel],
                     cancel: Cancel | None = None) -> AsyncIterator[tuple[str, Any]]:
    """Run ``job(emit, cancel)`` on its own thread in the model's lane; yield ("items", [x, ...]) for the
    ``emit(x)`` calls that are ready (several at once when tokens come in a burst: one write for them), then
    ("done", result) or ("error", exception). Closing the iterator early (the client left) cancels the job;
    the lane is freed when the job's thread ends, so the next request starts then."""
    loop = asyncio.get_running_loop()
    pending: deque = deque()  # filled on the loop's thread only (call_soon_threadsafe)
    ready = asyncio.Event()

    def put(message) -> None:
        pending.append(message)
        ready.set()

    cancel = cancel or Cancel()
    await served.lane.acquire()
    active.add(cancel)

    def post(message) -> None:
        try:
            loop.call_soon_threadsafe(put, message)
        except RuntimeError:  # the loop is gone (the server stopped): nobody is listening
            pass

    def run() -> None:
        try:
            cancel.check()  # its client left while it waited in the lane: nothing to do
            message = ("done", job(lambda item: post(("item", item)), cancel))
        except BaseException as exc:  # noqa: BLE001  (handed to the request, which answers it)
            message = ("error", exc)
        post(message)
        try:
            loop.call_soon_threadsafe(served.lane.release)
        except RuntimeError:
            pass

    threading.Thread(target=run, name=f"tandem-serve-{served.id}", daemon=True).start()
    try:
        while True:
            await ready.wait()
            ready.clear()
            items = []
            while pending:
                kind, value = pending.popleft()
                if kind == "item":
                    items.append(value)
                    continue
                if items:
                    yield "items", items
                yield kind, value
                return
            if items:
                yield "items", items
    finally:
        cancel.cancel()  # a no-op once the job has ended
        active.discard(cancel)
