"""A request's stream of events from the worker: ``TokenEvent``s, then exactly one ``FinalEvent``.

``Stream`` is what ``ModelHandle.complete`` / ``chat`` return (the ``GenerationStream`` of the Model
interface). It turns the worker's ``Token`` / ``Final`` messages into events, waits its turn when the model is
busy with another request, and stops the request on ``cancel()``: a byte in shared memory, read by the worker
between tokens and by llama.cpp's abort callback during prefill; a worker that does not answer within
``KILL_AFTER_S`` (a GPU prefill, which has no abort hook) is killed and restarted on the next request.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from desktop.core.errors import EngineCrashed, EngineError, TandemError
from desktop.engine.messages import Failed, Final, Request, Token, Tokens
from desktop.engine.model import StreamLoop
from desktop.engine.types import FinalEvent, TokenEvent

if TYPE_CHECKING:
    from desktop.engine.client import ModelHandle
    from desktop.engine.process import WorkerProcess

KILL_AFTER_S = 2.0


class Stream(StreamLoop):
    """Iterate for TokenEvents then one FinalEvent. ``cancel()`` may be called from any thread.

    A stream made while its model is busy with another request is *waiting*: it sends its request when the
    model is free, on the first ``next_event()``; cancelled before that, it ends ``cancelled`` unsent."""

    def __init__(self, handle: ModelHandle, request: Request, what: str, *, waiting: bool = False):
        self._handle = handle
        self._request = request
        self._worker: WorkerProcess | None = None
        self._what = what
        self.final: FinalEvent | None = None
        self._cancel_at: float | None = None
        self._lock = threading.Lock()
        self._ready: deque[Token] = deque()  # tokens that came in one message, not yet returned
        self.owner = threading.get_ident()  # the thread that asked: it can't wait for its own stream
        if not waiting:
            self._send()

    def _send(self) -> None:
        """Start the request on the worker (the handle's lock is held and no other request runs)."""
        worker = self._handle._ensure_worker()
        worker.cancel_flag[0] = 0  # only here, with no request in flight: a cancel can't be lost
        worker.send(self._request, self._what)
        self._worker = worker
        self._handle._stream = self
        if self._cancel_at is not None:  # cancelled while it was being sent
            self._cancel_at = time.monotonic()
            worker.cancel_flag[0] = 1

    @property
    def waiting(self) -> bool:
        """True while the request waits for the model to finish another one."""
        return self._worker is None and self.final is None

    @property
    def done(self) -> bool:
        return self.final is not None

    def cancel(self) -> None:
        if self.final is None and self._cancel_at is None:
            self._cancel_at = time.monotonic()
            worker = self._worker
            if worker is not None:
                worker.cancel_flag[0] = 1

    def next_event(self) -> TokenEvent | FinalEvent:
        """The next event; after the final one, the final one again."""
        with self._lock:
            if self._ready:  # the rest of a Tokens message
                return self._ready.popleft().event()
            if self.final is not None:
                return self.final
            if self._worker is None:
                try:
                    if not self._handle._start_when_free(self):
                        return self._finish(FinalEvent("cancelled", ""))
                except TandemError as exc:  # the model was unloaded, or its worker could not start again
                    return self._finish(FinalEvent("error", "", error=exc))
            try:
                msg = self._recv()
            except EngineCrashed as exc:
                self._handle._worker_lost()
                return self._finish(FinalEvent("error", "", error=exc))
            if isinstance(msg, Token):
                return msg.event()
            if isinstance(msg, Tokens):
                self._ready.extend(msg.tokens[1:])
                return msg.tokens[0].event()
            if isinstance(msg, Final):
                return self._finish(msg.event)
            error = msg.error if isinstance(msg, Failed) else EngineError(f"unexpected engine reply {msg!r}")
            return self._finish(FinalEvent("error", "", error=error))

    def _recv(self):
        while True:
            timeout = None
            if self._cancel_at is not None:
                timeout = max(0.0, self._cancel_at + KILL_AFTER_S - time.monotonic())
            try:
                return self._worker.recv(self._what, timeout=timeout)
            except TimeoutError:
                # the worker did not stop in time (e.g. a GPU prefill): the process is the hard stop
                self._handle._kill_worker()
                return Final(FinalEvent("cancelled", ""))

    def _finish(self, final: FinalEvent) -> FinalEvent:
        self.final = final
        self._handle._stream_done(self)
        return final

