"""One streamed reply from a remote server as a ``GenerationStream``.

A background thread reads the server's SSE/NDJSON lines and parses them into token events; the caller
iterates. ``cancel()`` ends the stream at once (the reader polls every 50 ms) and shuts the socket down, so
a stalled server can't hold the thread, before its headers (``StreamCancel``) as after them. A reply cut short ends with an error that says how many tokens
arrived, and the partial text stays in ``final.text``.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING

from desktop.core.errors import RemoteError, ServerUnreachable
from desktop.engine.model import StreamLoop
from desktop.engine.remote_engines import ParseState, Request
from desktop.engine.remote_http import StreamCancel
from desktop.engine.types import FinalEvent, GenerationStats, TokenEvent

if TYPE_CHECKING:
    from desktop.engine.remote import RemoteModel


class RemoteStream(StreamLoop):
    """``GenerationStream`` over one streamed HTTP reply. ``cancel()`` from any thread ends it in <= 50 ms."""

    POLL_S = 0.05

    def __init__(self, model: RemoteModel, request: Request):
        self._model = model
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._request_cancel = StreamCancel()  # stops the request while it still waits for headers
        self._lines = None
        self.final: FinalEvent | None = None
        self._text: list[str] = []
        self._n = 0
        self._started = time.monotonic()
        self._first: float | None = None
        self._state = ParseState()
        self._thread = threading.Thread(target=self._run, args=(request,), daemon=True, name="tandem-remote")
        self._thread.start()

    def _run(self, request: Request) -> None:
        try:
            lines = self._model._t.open_stream(request.path, request.body, model=self._model.model_id,
                                               ndjson=request.ndjson, cancel=self._request_cancel)
            self._lines = lines
            if self._cancel.is_set():
                lines.cancel()
            sent = 0
            for obj in lines:
                for event in self._model._dialect.parse_chunk(obj, self._state):
                    self._queue.put(event)
                    sent += 1
            if self._state.finish is None and not sent and not self._cancel.is_set():
                self._diagnose_empty(request)
            self._queue.put(("end", None))
        except Exception as exc:  # delivered to the reader as the stream's error
            self._queue.put(("err", exc))
        finally:
            if self._lines is not None:
                self._lines.close()

    def _diagnose_empty(self, request: Request) -> None:
        """An empty stream with no finish: some servers (llama-cpp-python's) swallow a streamed request's
        error, e.g. a context overflow. Ask once more without streaming, for one token, to get the reason."""
        body = dict(request.body, stream=False)
        for key in ("max_tokens", "n_predict"):
            if key in body:
                body[key] = 1
        body.pop("stream_options", None)
        self._model._t.post_json(request.path, body, model=self._model.model_id)  # raises the real error

    @property
    def done(self) -> bool:
        return self.final is not None

    @property
    def waiting(self) -> bool:
        """Always False: a server queues requests itself and says nothing of it (the pane shows "thinking…")."""
        return False

    def cancel(self) -> None:
        if self.final is None:
            self._cancel.set()
            self._request_cancel.set()
            if self._lines is not None:
                self._lines.cancel()

    def next_event(self) -> TokenEvent | FinalEvent:
        if self.final is not None:
            return self.final
        while True:
            if self._cancel.is_set():
                return self._finish("cancelled")
            try:
                item = self._queue.get(timeout=self.POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, TokenEvent):
                if self._first is None:
                    self._first = time.monotonic()
                self._text.append(item.text)
                self._n += 1
                return item
            kind, exc = item
            if self._cancel.is_set():
                return self._finish("cancelled")
            if kind == "end":
                if self._state.finish is None:
                    return self._finish("error", ServerUnreachable(
                        f"{self._model._t.where} ended the reply without finishing it{self._kept()}"))
                return self._finish(self._state.finish)
            return self._finish("error", self._with_partial(exc))

    def _kept(self) -> str:
        return f" after {self._n} tokens; the partial reply is kept." if self._n else "."

    def _with_partial(self, exc: Exception) -> Exception:
        if not self._n or not isinstance(exc, RemoteError):
            return exc
        message = str(exc).rstrip(".")
        return type(exc)(*((f"{message}{self._kept()}",) + tuple(exc.args[1:])))

    def _finish(self, reason, error: Exception | None = None) -> FinalEvent:
        if self._cancel.is_set() and self._lines is not None:
            self._lines.cancel()
        now = time.monotonic()
        s = self._state
        ttft = (self._first - self._started) if self._first else 0.0
        decode_s = s.decode_s or ((now - self._first) if self._first else 0.0)
        n = s.completion_tokens or self._n
        stats = GenerationStats(prompt_tokens=s.prompt_tokens, prompt_eval_tokens=s.prompt_tokens,
                                completion_tokens=n, ttft_s=ttft,
                                prefill_tps=(s.prompt_tokens / s.prefill_s) if s.prefill_s else 0.0,
                                decode_tps=(n / decode_s) if decode_s > 0 and n else 0.0,
                                prefill_s=s.prefill_s, decode_s=decode_s)
        self.final = FinalEvent(reason, "".join(self._text), stats, error)
        return self.final

