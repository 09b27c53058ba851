"""Work off the GUI thread: one blocking call, or one engine stream, per Python thread.

The model follows superqt's ``thread_worker`` and Orange3's ``concurrent.py``: the work is a plain function
on a daemon thread that never touches a widget; results come back to the GUI thread. For streams the
worker thread only appends events to a deque and a QTimer on the GUI thread drains it at frame rate, so a
model producing thousands of tokens a second costs the window one batched update per frame. Cancel is
``Stream.cancel()`` called directly from the GUI thread (it is thread-safe), never a queued slot to the busy
thread. ``discard()`` makes a job mute at once, so a result from a superseded job can't land.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

from desktop.engine.model import GenerationStream
from desktop.engine.types import FinalEvent, TokenEvent

FRAME_MS = 33  # ~30 updates a second: smooth to the eye, cheap for the event loop
MAX_FRAME_MS = 250  # the slowest it adapts to when each update is expensive
MAX_EVENTS_PER_FRAME = 4000  # a burst is spread over frames rather than stalling one


class _Relay(QObject):
    """Carries one result from a worker thread to the GUI thread (a queued signal)."""

    result = Signal(object, object)  # value, error


class Call:
    """A blocking function running on a daemon thread. ``discard()`` drops its result unseen."""

    _alive: set[Call] = set()  # keep relays alive until they deliver

    def __init__(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None, name: str = "tandem-call"):
        self._fn, self._on_done, self._on_error = fn, on_done, on_error
        self.discarded = False
        self._relay = _Relay()
        self._relay.result.connect(self._deliver)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        Call._alive.add(self)
        self._thread.start()

    def _run(self) -> None:
        try:
            value, error = self._fn(), None
        except BaseException as exc:  # delivered to the GUI; never kills the thread silently
            value, error = None, exc
        try:
            self._relay.result.emit(value, error)
        except RuntimeError:  # the app is shutting down and the relay is gone
            Call._alive.discard(self)

    def _deliver(self, value: Any, error: BaseException | None) -> None:
        Call._alive.discard(self)
        if self.discarded:
            return
        callback = self._on_error if error is not None else self._on_done
        if _receiver_gone(callback):  # its widget was closed while the call ran: nobody to tell
            return
        if error is not None:
            if self._on_error is not None:
                self._on_error(error)
        elif self._on_done is not None:
            self._on_done(value)

    def discard(self) -> None:
        self.discarded = True

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _receiver_gone(callback: Callable | None) -> bool:
    """A bound method of a Qt object whose C++ side is already deleted (a closed window's widget)."""
    owner = getattr(callback, "__self__", None)
    return isinstance(owner, QObject) and not shiboken6.isValid(owner)


def run_in_thread(fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                  on_error: Callable[[BaseException], None] | None = None, name: str = "tandem-call") -> Call:
    """Run ``fn()`` off the GUI thread; ``on_done(result)`` or ``on_error(exc)`` run on the GUI thread."""
    return Call(fn, on_done, on_error, name)


class CoalescingRefresh:
    """A refresh (a folder scan, the endpoints' model lists) run off the GUI thread, one at a time: asked
    again while one runs, it runs once more after it, not once per ask, so a burst of changes costs two runs
    and the last one sees them all. ``prepare()`` runs on the GUI thread at each start and returns the
    blocking function (so it reads the folder or settings of that moment)."""

    def __init__(self, prepare: Callable[[], Callable[[], Any]], on_done: Callable[[Any], None],
                 on_error: Callable[[BaseException], None], name: str):
        self._prepare, self._on_done, self._on_error, self._name = prepare, on_done, on_error, name
        self._call: Call | None = None
        self._again = False

    @property
    def running(self) -> bool:
        return self._call is not None

    def refresh(self) -> None:
        if self._call is not None:
            self._again = True
            return
        self._call = run_in_thread(self._prepare(), self._done, self._failed, name=self._name)

    def _done(self, value: Any) -> None:
        self._call = None
        self._on_done(value)
        self._next()

    def _failed(self, exc: BaseException) -> None:
        self._call = None
        self._on_error(exc)
        self._next()

    def _next(self) -> None:
        if self._again:
            self._again = False
            self.refresh()

    def stop(self) -> None:
        """At exit: a run still on its way is dropped unseen, and no other starts."""
        if self._call is not None:
            self._call.discard()
            self._call = None
        self._again = False


class JobControl:
    """What a stream job's start function sees: whether it was cancelled, and a way to report progress."""

    def __init__(self, job: StreamJob):
        self._job = job

    @property
    def cancelled(self) -> bool:
        return self._job._cancelled.is_set()

    def report(self, info: Any) -> None:
        """Send a value to the GUI (``StreamJob.info``), e.g. the templated prompt that was used."""
        self._job._queue.append(("info", info))

    def status(self, text: str) -> None:
        """A one-line state for the pane ("waiting for the model…")."""
        self._job._queue.append(("status", text))


def say_if_waiting(control: JobControl, stream: GenerationStream, what: str = "this model") -> GenerationStream:
    """A model busy with another pane's request queues this one (the model does, behind its interface):
    tell the pane why nothing streams yet."""
    if stream.waiting:
        control.status(f"Waiting: {what} is busy with another request…")
    return stream


class StreamJob(QObject):
    """One engine stream on its own thread, delivered to the GUI in frame-rate batches.

    ``start(control)`` runs on the worker thread: it may do blocking preparation (render a template, count
    tokens) and returns the engine's stream (which may wait for a busy model). Its exceptions become a final event with
    ``finish_reason="error"``, exactly like an engine failure mid-stream.
    """

    tokens = Signal(list)  # list[TokenEvent]
    info = Signal(object)  # whatever start() reported
    status = Signal(str)
    finished = Signal(object)  # FinalEvent, exactly once (unless discarded)

    def __init__(self, start: Callable[[JobControl], Any], parent: QObject | None = None,
                 name: str = "tandem-stream"):
        super().__init__(parent)
        self._start_fn = start
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._cancelled = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: Any = None
        self._discarded = False
        self.done = False
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.token_count = 0
        self.final: FinalEvent | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._drain)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> StreamJob:
        self._timer.start()
        self._thread.start()
        return self

    # --- worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        control = JobControl(self)
        try:
            stream = self._start_fn(control)
        except BaseException as exc:
            self._queue.append(("final", FinalEvent("error", "", error=exc)))
            return
        if stream is None:  # the start function gave up because it was cancelled
            self._queue.append(("final", FinalEvent("cancelled", "")))
            return
        with self._stream_lock:
            self._stream = stream
        if self._cancelled.is_set():
            stream.cancel()
        try:
            for event in stream:
                kind = "final" if isinstance(event, FinalEvent) else "tok"
                self._queue.append((kind, event))
                if kind == "final":
                    return
        except BaseException as exc:  # the engine should never raise here; a bug must not hang the pane
            self._queue.append(("final", FinalEvent("error", "", error=exc)))
            return
        self._queue.append(("final", FinalEvent("error", "", error=RuntimeError("stream ended early"))))

    # --- GUI thread ------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop generating as soon as the engine can; the final event will say ``cancelled``."""
        self._cancelled.set()
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.cancel()

    def discard(self) -> None:
        """Cancel and go silent: nothing this job produces reaches the GUI any more."""
        self._discarded = True
        self.cancel()
        self._timer.stop()

    @property
    def running(self) -> bool:
        return not self.done and not self._discarded

    def rate(self) -> float:
        """Decode speed so far, tokens per second (0 until two tokens arrived)."""
        if self.first_token_at is None or self.token_count < 2:
            return 0.0
        elapsed = time.monotonic() - self.first_token_at
        return (self.token_count - 1) / elapsed if elapsed > 0 else 0.0

    def wait(self, timeout: float | None = None) -> bool:
        """Join the worker thread (tests, shutdown)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _drain(self) -> None:
        if self._discarded:
            self._timer.stop()
            return
        batch: list[TokenEvent] = []
        for _ in range(MAX_EVENTS_PER_FRAME):
            try:
                kind, value = self._queue.popleft()
            except IndexError:
                break
            if kind == "tok":
                batch.append(value)
                continue
            if batch:
                self._emit_tokens(batch)
                batch = []
                if self._discarded:
                    return
            if kind == "info":
                self.info.emit(value)
            elif kind == "status":
                self.status.emit(value)
            elif kind == "final":
                self._timer.stop()
                self.done = True
                self.final = value
                self.finished.emit(value)
                return
            if self._discarded:
                return
        if batch:
            self._emit_tokens(batch)

    def _emit_tokens(self, batch: list[TokenEvent]) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.token_count += len(batch)
        started = time.perf_counter()
        self.tokens.emit(batch)
        # When the consumer gets expensive (a very long paragraph to lay out again), update less often so
        # it never takes more than about a third of the GUI thread's time.
        cost_ms = (time.perf_counter() - started) * 1000
        interval = int(min(MAX_FRAME_MS, max(FRAME_MS, cost_ms * 3)))
        if interval != self._timer.interval():
            self._timer.setInterval(interval)
