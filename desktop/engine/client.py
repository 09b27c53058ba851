"""The app's side of the engine: starts a worker process per model and streams its events.

Nothing here imports llama_cpp: the GUI stays light and a model that crashes takes only its own worker
with it. A dead worker becomes ``EngineCrashed`` carrying the last lines it wrote to stderr; the next
request on the same handle starts a fresh worker (the model is loaded again).

Cancel is a byte in shared memory, read by the worker between tokens and by llama.cpp's abort callback
during prompt prefill; if the worker does not answer within ``KILL_AFTER_S`` (a GPU prefill, which has no
abort hook), it is killed and restarted on the next request.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from desktop.core import gguf_meta, paths
from desktop.core.errors import EngineBusy, EngineCrashed, EngineError, ModelFileError, TandemError
from desktop.core.logs import tail
from desktop.engine.messages import (
    Chat,
    Close,
    Complete,
    Failed,
    Final,
    Render,
    Request,
    Score,
    Token,
    Tokenize,
    VocabId,
)
from desktop.engine.model import Capabilities
from desktop.engine.types import (
    FinalEvent,
    LoadInfo,
    LoadOptions,
    SamplingParams,
    ScoredToken,
    ScoreResult,
    TokenEvent,
    TopToken,
)

KILL_AFTER_S = 2.0
LOCAL_CAPABILITIES = Capabilities(queues=True)
MAX_SCORE_TOP_K = 1000  # score(top_k=) limit: each alternative is a piece of text sent over the pipe
LOAD_TIMEOUT_S = 600.0
_ctx = multiprocessing.get_context("spawn")

GGUF_MAGIC = b"GGUF"


def check_model_file(path: str | os.PathLike) -> Path:
    """Fail fast with a one-line reason before a worker is even started."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(f"No model file at {p}.")
    if p.is_dir():
        raise ModelFileError(f"{p} is a folder, not a GGUF model file.")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelFileError(f"Can't read {p.name}: {exc.strerror or exc}.") from None
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        what = "empty" if not head else "not a GGUF file"
        raise ModelFileError(f"{p.name} is {what}: a model must be a .gguf file (it starts with 'GGUF').")
    try:  # the deep check: truncation, absurd sizes
        gguf_meta.read_metadata(p)
    except ModelFileError as exc:  # the reader's reason names no file and no remedy: add both
        raise ModelFileError(f"Can't load {p.name}: {exc}. Download or copy the file again, "
                             "or pick another one.") from None
    return p.resolve()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class _Worker:
    """One worker process and its pipe."""

    def __init__(self, target, args: tuple, log_path: Path):
        self.log_path = log_path
        self.cancel_flag = _ctx.RawArray(ctypes.c_uint8, 2)
        parent, child = _ctx.Pipe(duplex=True)
        self.conn = parent
        self.process = _ctx.Process(target=target, args=(child, *args, self.cancel_flag, str(log_path)),
                                    daemon=True, name="tandem-engine")
        self.process.start()
        child.close()  # so a dead worker reads as EOF here

    def crashed(self, what: str) -> EngineCrashed:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        log_tail = tail(self.log_path)
        last = next((ln for ln in reversed(log_tail.splitlines()) if ln.strip()), "")
        message = f"The model's worker process {_describe_exit(code)} while {what}."
        if last and code not in (None, -9):
            message += f" Last message: {last.strip()[:200]}"
        return EngineCrashed(message + " The app is fine; the model will be loaded again on the next request.",
                             log_tail, code)

    def recv(self, what: str, timeout: float | None = None):
        """Next message, or EngineCrashed if the worker died."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self.conn.poll(0.25):
                    return self.conn.recv()
            except (EOFError, OSError, ConnectionResetError):
                raise self.crashed(what) from None
            if not self.process.is_alive():
                # drain anything it sent just before exiting
                try:
                    if self.conn.poll(0):
                        return self.conn.recv()
                except (EOFError, OSError):
                    pass
                raise self.crashed(what)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(what)

    def send(self, msg, what: str) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            raise self.crashed(what) from None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def remove_log(self) -> None:
        try:
            self.log_path.unlink()
        except OSError:
            pass


KEEP_WORKER_LOGS_S = 3 * 24 * 3600
_pruned = False


def _new_log_path(prefix: str) -> Path:
    """A log file for one worker. A clean unload deletes it; one kept after a crash is pruned days later."""
    global _pruned
    log_dir = paths.log_dir()
    if not _pruned:
        _pruned = True
        cutoff = time.time() - KEEP_WORKER_LOGS_S
        for old in [*log_dir.glob("worker-*.log"), *log_dir.glob("doctor-*.log")]:
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass
    return log_dir / f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"


class Stream:
    """Iterate for TokenEvents then one FinalEvent. ``cancel()`` may be called from any thread.

    A stream made while its model is busy with another request is *waiting*: it sends its request when the
    model is free, on the first ``next_event()``; cancelled before that, it ends ``cancelled`` unsent."""

    def __init__(self, handle: ModelHandle, request: Request, what: str, *, waiting: bool = False):
        self._handle = handle
        self._request = request
        self._worker: _Worker | None = None
        self._what = what
        self.final: FinalEvent | None = None
        self._cancel_at: float | None = None
        self._lock = threading.Lock()
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

    def __iter__(self) -> Iterator[TokenEvent | FinalEvent]:
        while True:
            event = self.next_event()
            yield event
            if isinstance(event, FinalEvent):
                return

    def next_event(self) -> TokenEvent | FinalEvent:
        """The next event; after the final one, the final one again."""
        with self._lock:
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

    def text(self) -> str:
        """Run to the end and return the text; raises the stream's error, if any."""
        final = None
        for event in self:
            final = event
        assert isinstance(final, FinalEvent)
        if final.error is not None:
            raise final.error
        return final.text


class ModelHandle:
    """A loaded model in its worker process. Use from one thread at a time per request."""

    _vocab_id: str | None = None  # the same file has the same vocabulary: kept across worker restarts

    def __init__(self, path: Path, options: LoadOptions):
        self.path = path
        self.options = options
        self._lock = threading.RLock()
        self._stream: Stream | None = None  # the request running on the worker, if any
        self._free = threading.Condition()  # notified whenever a request ends
        self._worker: _Worker | None = None
        self.info: LoadInfo = self._start()
        self.closed = False

    # ----- lifecycle -----------------------------------------------------------------------------
    def _start(self) -> LoadInfo:
        from desktop.engine.worker import worker_main

        worker = _Worker(worker_main, (str(self.path), self.options), _new_log_path("worker"))
        try:
            reply = worker.recv(f"loading {self.path.name}", timeout=LOAD_TIMEOUT_S)
        except EngineCrashed as exc:
            worker.kill()
            raise ModelFileError(
                f"Loading {self.path.name} crashed llama.cpp ({_describe_exit(exc.exitcode)}): "
                "the file is probably corrupt or from an unsupported model.") from None
        except TimeoutError:
            worker.kill()
            raise EngineError(f"Loading {self.path.name} took longer than {LOAD_TIMEOUT_S:.0f} s.") from None
        if isinstance(reply, Failed):
            worker.kill()
            raise reply.error
        self._worker = worker
        return reply.value

    @property
    def pid(self) -> int | None:
        w = self._worker
        return w.process.pid if w and w.process.is_alive() else None

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def _ensure_worker(self) -> _Worker:
        if self.closed:
            raise EngineError("This model was unloaded; load it again.")
        if self._worker is None or not self._worker.process.is_alive():
            if self._worker is not None:
                self._worker.kill()
            self._worker = None
            self.info = self._start()
        return self._worker

    def _worker_lost(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _kill_worker(self) -> None:
        worker = self._worker
        self._worker = None
        if worker is not None:
            worker.kill()
            worker.remove_log()

    def _stream_done(self, stream: Stream) -> None:
        if self._stream is stream:
            self._stream = None
        with self._free:
            self._free.notify_all()

    def _busy_with(self) -> Stream | None:
        """The request running now (call with the lock held), or None when the model is free."""
        running = self._stream
        return running if running is not None and not running.done else None

    def _wait_free(self) -> None:
        with self._free:
            self._free.wait(0.05)  # a notify lost between check and wait costs at most this

    def _start_when_free(self, stream: Stream) -> bool:
        """Send a waiting stream's request once no other runs. False if it was cancelled while waiting."""
        while True:
            if stream._cancel_at is not None:
                return False
            with self._lock:
                if self._busy_with() is None:
                    stream._send()
                    return True
            self._wait_free()

    def close(self) -> None:
        """End the worker process: the model's memory really comes back."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._stream is not None:
                self._stream.cancel()
            worker, self._worker = self._worker, None
            if worker is None:
                return
            try:
                if self._stream is not None:
                    while not isinstance(self._stream.next_event(), FinalEvent):
                        pass
                worker.send(Close(), "unloading")
                worker.recv("unloading", timeout=5)
            except (TandemError, TimeoutError):
                pass
            worker.kill()
            worker.remove_log()

    def __enter__(self) -> ModelHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def capabilities(self) -> Capabilities:
        """Everything the interface offers; a second request on a busy model waits for the first."""
        return LOCAL_CAPABILITIES

    # ----- requests ------------------------------------------------------------------------------
    def _begin(self, request: Request, what: str, replace_running: bool) -> Stream:
        with self._lock:
            running = self._busy_with()
            if running is not None:
                if not replace_running:  # queue: it starts when the running request ends
                    return Stream(self, request, what, waiting=True)
                running.cancel()
                while not isinstance(running.next_event(), FinalEvent):
                    pass
            return Stream(self, request, what)

    def complete(self, prompt: str, params: SamplingParams | None = None, *,
                 replace_running: bool = False, threads: int | None = None) -> Stream:
        """Raw completion: the model continues ``prompt`` as text.

        While another request runs on this model the new one waits for it (the stream is ``waiting``);
        ``replace_running`` cancels the running one instead (the CLI's and tests' "newer wins").

        ``threads`` narrows this request's CPU threads (None: the load-time count). Two models decoding
        at once (Compare) should split the cores: OpenMP threads that outnumber the cores spin against
        each other and both models slow to a crawl."""
        params = (params or SamplingParams())
        return self._begin(Complete(valid_text(str(prompt)), params, _threads(threads)), "generating",
                           replace_running)

    def chat(self, messages: Sequence[Mapping[str, str]], params: SamplingParams | None = None, *,
             system: str | None = None, replace_running: bool = False, threads: int | None = None) -> Stream:
        """A chat reply: the conversation rendered with the model's own chat template."""
        params = (params or SamplingParams())
        msgs = _valid_messages(messages)
        return self._begin(Chat(msgs, valid_text(system), params, _threads(threads)), "generating",
                           replace_running)

    def _call(self, request: Request, what: str):
        """A request without a stream. While another request runs on this model it waits for it, unless
        that request is this thread's own unfinished stream (then nothing could ever free the model)."""
        while True:
            with self._lock:
                running = self._busy_with()
                if running is None:
                    worker = self._ensure_worker()
                    worker.cancel_flag[0] = 0
                    worker.send(request, what)
                    try:
                        reply = worker.recv(what)
                    except EngineCrashed:
                        self._worker_lost()
                        raise
                    break
                if running.owner == threading.get_ident():
                    raise EngineBusy("This model is still generating; stop it first.")
            self._wait_free()
        if isinstance(reply, Failed):
            raise reply.error
        return reply.value

    def render_chat(self, messages: Sequence[Mapping[str, str]], system: str | None = None) -> str:
        """The exact text the model receives for this conversation (with the generation prompt)."""
        return self._call(Render(_valid_messages(messages), valid_text(system)), "rendering the chat template")

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._call(Tokenize(valid_text(text), special), "tokenizing")

    def count_tokens(self, text: str, special: bool = False) -> int:
        return len(self.tokenize(text, special))

    def score(self, prompt: str, continuation: str | Sequence[int], *, as_chat: bool = False,
              system: str | None = None, top_k: int = 0) -> ScoreResult:
        """Log-probabilities of ``continuation``'s own tokens after ``prompt`` (as a user message when
        ``as_chat``), without sampling. Used by Compare's cross-scoring and the alignment lens.

        ``continuation`` may be a list of token ids (a generation's own tokens, scored without being
        re-tokenized). ``top_k`` > 0 adds each token's rank over the whole vocabulary (1 = the model's
        first choice; ties go to the lower token id, as greedy decoding does) and the top-k alternatives,
        in the same pass."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= MAX_SCORE_TOP_K:
            raise EngineError(f"top_k must be a whole number from 0 to {MAX_SCORE_TOP_K}, not {top_k!r}.")
        cont = valid_text(continuation) if isinstance(continuation, str) else [int(t) for t in continuation]
        tokens = self._call(Score(valid_text(prompt), cont, as_chat, valid_text(system), top_k), "scoring")
        return ScoreResult(tuple(
            ScoredToken(t[0], t[1], t[2]) if len(t) == 3
            else ScoredToken(t[0], t[1], t[2], t[3], tuple(TopToken(*a) for a in t[4]))
            for t in tokens))

    @property
    def vocab_id(self) -> str:
        """Identity of the vocabulary: "<token count>:<hash of every token's text>", read once from the
        worker. Two models with equal ids tokenize alike (token shift needs this)."""
        if self._vocab_id is None:
            self._vocab_id = self._call(VocabId(), "reading the vocabulary")
        return self._vocab_id


def valid_text(text):
    """Text with lone surrogates (invalid UTF-8 from a command line, a JSON file or a paste) replaced by
    U+FFFD, so the prompt, the tokenizer, stdout and the history all see the same valid text. Without
    this, `tandem chat --show-prompt` on a strict UTF-8 terminal failed with UnicodeEncodeError."""
    if not isinstance(text, str):
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _valid_messages(messages: Sequence[Mapping[str, str]]) -> list[dict]:
    return [{k: valid_text(v) for k, v in dict(m).items()} for m in messages]


def _threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise EngineError(f"Threads must be a whole number of 1 or more, not {threads!r}.")
    return threads


def load_model(path: str | os.PathLike, options: LoadOptions | None = None) -> ModelHandle:
    """Start a worker process and load the model there. Blocks until loaded (call off the GUI thread)."""
    checked = check_model_file(path)
    return ModelHandle(checked, options or LoadOptions())


_hardware_cache: dict | None = None


def hardware_report(refresh: bool = False) -> dict:
    """CPU features, GPU devices and the llama.cpp build's backend, read in a short-lived worker."""
    global _hardware_cache
    if _hardware_cache is not None and not refresh:
        return _hardware_cache
    from desktop.engine.worker import hardware_main

    log_path = _new_log_path("doctor")
    parent, child = _ctx.Pipe(duplex=True)
    process = _ctx.Process(target=hardware_main, args=(child, str(log_path)), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(60):
            raise EngineError("The hardware check did not answer within 60 s.")
        reply = parent.recv()
    except (EOFError, OSError):
        raise EngineCrashed(f"The hardware check crashed: {tail(log_path, 5)}", tail(log_path)) from None
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
        try:
            log_path.unlink()
        except OSError:
            pass
    if isinstance(reply, Failed):
        raise reply.error
    _hardware_cache = reply.value
    return reply.value
