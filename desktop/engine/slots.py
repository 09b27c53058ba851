"""The app's side of a model with slots (``LoadOptions.n_seq`` = N > 1): several requests in flight on one
worker, their replies routed by request id.

A ``ModelHandle`` loaded with slots hands every request to its ``SlotRouter``. Each goes down the pipe as
``Tagged(rid, msg)``; one reader thread per worker process reads every reply and routes it to its request:
a ``SlotStream`` (the same ``GenerationStream`` events as ``stream.Stream``) or a call waiting for its
answer (score, tokenize, ...: the worker answers those between decode steps). At most N streams are sent
at once; more wait in FIFO order (``waiting`` is True) and are sent as slots free. ``cancel()`` sends
``Cancel`` for its own request only (llama.cpp's abort callback would stop the whole batch); the worker
ends it at its next step. A worker that dies ends every request in flight with ``EngineCrashed``; the next
request, or a queued stream, starts a fresh worker.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from desktop.core.errors import EngineCrashed, EngineError, TandemError
from desktop.engine.messages import Cancel, Close, Done, Failed, Final, Request, Tagged, Token, Tokens
from desktop.engine.model import StreamLoop
from desktop.engine.stream import KILL_AFTER_S
from desktop.engine.types import FinalEvent, TokenEvent

if TYPE_CHECKING:
    from desktop.engine.client import ModelHandle
    from desktop.engine.process import WorkerProcess


class _Call:
    """A request answered whole: the reader thread puts its reply (or the crash) and wakes the caller."""

    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: object = None

    def put(self, msg) -> None:
        self.reply = msg
        self.event.set()


class SlotStream(StreamLoop):
    """One streaming request on a model with slots. ``cancel()`` may be called from any thread."""

    def __init__(self, router: SlotRouter, request: Request, what: str):
        self._router = router
        self._request = request
        self._what = what
        self.rid: int | None = None  # set when sent to the worker
        self.final: FinalEvent | None = None
        self._cancel_at: float | None = None
        self._inbox: deque = deque()  # messages routed here by the reader thread
        self._cond = threading.Condition()
        self._ready: deque[Token] = deque()  # tokens that came in one message, not yet returned
        self._lock = threading.Lock()
        self.owner = threading.get_ident()

    def put(self, msg) -> None:
        with self._cond:
            self._inbox.append(msg)
            self._cond.notify()

    @property
    def waiting(self) -> bool:
        """True while every slot is busy and this request waits its turn (not sent yet)."""
        return self.rid is None and self.final is None

    @property
    def done(self) -> bool:
        return self.final is not None

    def cancel(self) -> None:
        if self.final is None and self._cancel_at is None:
            self._cancel_at = time.monotonic()
            self._router.cancel(self)

    def next_event(self) -> TokenEvent | FinalEvent:
        """The next event; after the final one, the final one again."""
        with self._lock:
            if self._ready:
                return self._ready.popleft().event()
            if self.final is not None:
                return self.final
            msg = self._take()
            if isinstance(msg, Token):
                return msg.event()
            if isinstance(msg, Tokens):
                self._ready.extend(msg.tokens[1:])
                return msg.tokens[0].event()
            if isinstance(msg, Final):
                self.final = msg.event
                return self.final
            error = msg.error if isinstance(msg, Failed) else EngineError(f"unexpected engine reply {msg!r}")
            self.final = FinalEvent("error", "", error=error)
            return self.final

    def _take(self):
        while True:
            with self._cond:
                while not self._inbox:
                    timeout = None
                    if self._cancel_at is not None:
                        timeout = self._cancel_at + KILL_AFTER_S - time.monotonic()
                        if timeout <= 0:
                            break
                    self._cond.wait(timeout)
                else:
                    return self._inbox.popleft()
            # The worker did not end it in time: end it here, without killing the others' worker.
            self._router.forget(self)
            return Final(FinalEvent("cancelled", ""))


class SlotRouter:
    """Sends a model-with-slots' requests, routes their replies, queues streams beyond N (see module)."""

    def __init__(self, handle: ModelHandle, n_slots: int):
        self._handle = handle
        self.n_slots = n_slots
        self._lock = threading.RLock()
        self._targets: dict[int, tuple[SlotStream | _Call, WorkerProcess]] = {}
        self._running: set[int] = set()  # rids of the streams sent (each holds or is about to hold a slot)
        self._waiting: deque[SlotStream] = deque()
        self._ids = itertools.count(1)
        self._reader_of: WorkerProcess | None = None
        self.closed = False

    # ----- sending (with the lock held) -----------------------------------------------------------
    def _worker(self) -> WorkerProcess:
        worker = self._handle._ensure_worker()  # a dead one is replaced: the model loads again
        if worker is not self._reader_of:
            self._reader_of = worker
            threading.Thread(target=self._read, args=(worker,), name="tandem-slots-reader", daemon=True).start()
        return worker

    def _send(self, target: SlotStream | _Call, request: Request, what: str) -> int:
        worker = self._worker()
        rid = next(self._ids)
        self._targets[rid] = (target, worker)
        try:
            worker.send(Tagged(rid, request), what)
        except EngineCrashed:
            del self._targets[rid]
            if self._handle._worker is worker:
                self._handle._worker_lost()
            raise
        return rid

    def _start(self, stream: SlotStream) -> None:
        try:
            rid = self._send(stream, stream._request, stream._what)
        except TandemError as exc:  # the model was unloaded, or its worker could not start again
            stream.put(Final(FinalEvent("error", "", error=exc)))
            return
        self._running.add(rid)
        stream.rid = rid

    def _pump(self) -> None:
        """Send waiting streams, oldest first, while slots are free."""
        while self._waiting and len(self._running) < self.n_slots and not self.closed:
            self._start(self._waiting.popleft())

    # ----- the requests -----------------------------------------------------------------------------
    def stream(self, request: Request, what: str) -> SlotStream:
        with self._lock:
            if self.closed:
                raise EngineError("This model was unloaded; load it again.")
            stream = SlotStream(self, request, what)
            self._waiting.append(stream)
            self._pump()
            return stream

    def call(self, request: Request, what: str):
        """A request answered whole, between the slots' steps."""
        call = _Call()
        with self._lock:
            if self.closed:
                raise EngineError("This model was unloaded; load it again.")
            self._send(call, request, what)
        call.event.wait()
        reply = call.reply
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Failed):
            raise reply.error
        if not isinstance(reply, Done):
            raise EngineError(f"unexpected engine reply {reply!r}")
        return reply.value

    def cancel(self, stream: SlotStream) -> None:
        with self._lock:
            if stream.rid is None:
                if stream in self._waiting:
                    self._waiting.remove(stream)
                    stream.put(Final(FinalEvent("cancelled", "")))
                return
            entry = self._targets.get(stream.rid)
            if entry is None:
                return  # it has ended already
            try:
                entry[1].send(Tagged(stream.rid, Cancel()), "stopping")
            except EngineCrashed:
                pass  # the reader thread ends every request of that worker

    def forget(self, stream: SlotStream) -> None:
        """A cancelled stream the worker did not end in time: its slot counts as free from now."""
        with self._lock:
            if self._targets.pop(stream.rid, None) is not None:
                self._running.discard(stream.rid)
                self._pump()

    # ----- the reader thread ------------------------------------------------------------------------
    def _read(self, worker: WorkerProcess) -> None:
        while True:
            try:
                envelope = worker.recv("generating")
            except EngineCrashed as exc:
                self._crashed(worker, exc)
                return
            except Exception:  # a reply that can't be read: the worker can't be trusted any more
                worker.kill()
                self._crashed(worker, worker.crashed("generating"))
                return
            if not isinstance(envelope, Tagged):
                continue
            rid, msg = envelope.rid, envelope.msg
            with self._lock:
                entry = self._targets.get(rid)
                if entry is None:
                    continue  # a request given up on (a cancel that came too late)
                if isinstance(msg, (Final, Done, Failed)):
                    del self._targets[rid]
                    if rid in self._running:
                        self._running.discard(rid)
                        self._pump()
            entry[0].put(msg)

    def _crashed(self, worker: WorkerProcess, exc: EngineCrashed) -> None:
        with self._lock:
            lost = [(rid, target) for rid, (target, w) in self._targets.items() if w is worker]
            for rid, _target in lost:
                del self._targets[rid]
                self._running.discard(rid)
            if self._reader_of is worker:
                self._reader_of = None
            if self.closed:
                exc = EngineError("The model was unloaded.")
            elif self._handle._worker is worker:
                self._handle._worker_lost()
            for _rid, target in lost:
                target.put(exc if isinstance(target, _Call) else Final(FinalEvent("error", "", error=exc)))
            self._pump()  # queued streams start on a fresh worker

    def close(self) -> None:
        """Stop everything: waiting streams end cancelled, the worker ends running ones and answers Close."""
        call = _Call()
        with self._lock:
            self.closed = True
            while self._waiting:
                self._waiting.popleft().put(Final(FinalEvent("cancelled", "")))
            worker = self._handle._worker
            if worker is None or not worker.process.is_alive():
                call = None
            else:
                try:
                    self._worker()
                    self._send(call, Close(), "unloading")
                except TandemError:
                    call = None
        if call is not None:
            call.event.wait(5)
        with self._lock:  # anything the worker did not end (it died, or took too long)
            left = list(self._targets.values())
            self._targets.clear()
            self._running.clear()
        for target, _worker in left:
            error = EngineError("The model was unloaded.")
            target.put(error if isinstance(target, _Call) else Final(FinalEvent("cancelled", "")))
