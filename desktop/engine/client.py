"""The app's side of the engine: ``ModelHandle``, a model loaded in its own worker process.

Nothing here imports llama_cpp: the GUI stays light and a model that crashes takes only its own worker
with it. A dead worker becomes ``EngineCrashed`` carrying the last lines it wrote to stderr; the next
request on the same handle starts a fresh worker (the model is loaded again). One request runs at a time
per model; a second one waits its turn (``Stream.waiting``) instead of failing.

Slots (``LoadOptions.n_seq`` = N > 1, ``tandem serve --parallel N``): up to N streams run at once, decoded
together in one ``llama_decode`` per step by the worker (``batching``), and the rest wait in FIFO order.
The handle's requests then go through ``slots.SlotRouter``: tagged with request ids, replies routed by a
reader thread, one stream's ``cancel()`` stopping only its own slot; score, tokenize and the other calls
are answered between the slots' steps. With N = 1 (the panes) nothing of this runs.

The pieces: ``process`` (a worker process and its pipe, ``hardware_report``), ``stream`` (a request's
events and its cancel), and this module (loading, the request methods, the queue).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from desktop.core import gguf_meta
from desktop.core.errors import EngineBusy, EngineCrashed, EngineError, ModelFileError, TandemError
from desktop.engine.messages import (
    Chat,
    Close,
    Complete,
    CompleteTokens,
    Detokenize,
    Failed,
    Render,
    Request,
    Score,
    ScoreTokens,
    Tokenize,
    VocabId,
)
from desktop.engine.model import Capabilities
from desktop.engine.process import (
    WorkerProcess,
    describe_exit,
    hardware_report,  # noqa: F401  (the engine package hands it out from here)
    new_log_path,
)
from desktop.engine.slots import SlotRouter
from desktop.engine.stream import Stream
from desktop.engine.types import (
    FinalEvent,
    LoadInfo,
    LoadOptions,
    SamplingParams,
    ScoredToken,
    ScoreResult,
    TokenScores,
    TopToken,
)

LOCAL_CAPABILITIES = Capabilities(queues=True)
MAX_SCORE_TOP_K = 1000  # score(top_k=) limit: each alternative is a piece of text sent over the pipe
LOAD_TIMEOUT_S = 600.0

GGUF_MAGIC = b"GGUF"


def check_model_file(path: str | os.PathLike, deep: bool = True) -> Path:
    """A one-line reason for a file that can't be a model. The quick part (exists, is a file, starts with
    'GGUF') runs before a worker is started; the deep part (the whole header: truncation, absurd sizes) runs
    in the worker before llama.cpp opens the file (``deep``), where its ~50 ms of Python on a 262k
    vocabulary can't hold the app's GIL while the window is busy."""
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
    if not deep:
        return p.resolve()
    try:  # the deep check: truncation, absurd sizes
        gguf_meta.read_metadata(p)
    except ModelFileError as exc:  # the reader's reason names no file and no remedy: add both
        raise ModelFileError(f"Can't load {p.name}: {exc}. Download or copy the file again, "
                             "or pick another one.") from None
    return p.resolve()


class ModelHandle:
    """A loaded model in its worker process. Use from one thread at a time per request. Loaded with slots
    (``options.n_seq`` > 1), several streams run at once: see the module's docstring."""

    _vocab_id: str | None = None  # the same file has the same vocabulary: kept across worker restarts

    def __init__(self, path: Path, options: LoadOptions):
        self.path = path
        self.options = options
        self._lock = threading.RLock()
        self._stream: Stream | None = None  # the request running on the worker, if any
        self._free = threading.Condition()  # notified whenever a request ends
        self._worker: WorkerProcess | None = None
        self.info: LoadInfo = self._start()
        self.closed = False
        self._router = SlotRouter(self, options.n_seq) if options.n_seq > 1 else None

    # ----- lifecycle -----------------------------------------------------------------------------
    def _start(self) -> LoadInfo:
        from desktop.engine.worker import worker_main

        worker = WorkerProcess(worker_main, (str(self.path), self.options), new_log_path("worker"))
        try:
            reply = worker.recv(f"loading {self.path.name}", timeout=LOAD_TIMEOUT_S)
        except EngineCrashed as exc:
            worker.kill()
            raise ModelFileError(
                f"Loading {self.path.name} crashed llama.cpp ({describe_exit(exc.exitcode)}): "
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

    def _ensure_worker(self) -> WorkerProcess:
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
            if self._router is not None:  # the worker ends every slot's stream, then exits
                self._router.close()
                self.closed = True
                self._kill_worker()
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
        """Everything the interface offers; a request beyond the model's slots waits for one to free."""
        if self.options.n_seq > 1:
            return Capabilities(queues=True, slots=self.options.n_seq)
        return LOCAL_CAPABILITIES

    # ----- requests ------------------------------------------------------------------------------
    def _begin(self, request: Request, what: str, replace_running: bool) -> Stream:
        if self._router is not None:  # slots: a free one, or wait in line (nothing is replaced)
            return self._router.stream(request, what)
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
        if self._router is not None:  # slots: answered between the decoding steps
            return self._router.call(request, what)
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

    def complete_tokens(self, tokens: Sequence[int], params: SamplingParams | None = None, *,
                        replace_running: bool = False, threads: int | None = None) -> Stream:
        """Generation after a prompt given as token ids, used exactly as given (no BOS added); queues
        like ``complete``."""
        return self._begin(CompleteTokens(_ids(tokens), params or SamplingParams(), _threads(threads)),
                           "generating", replace_running)

    def tokenize(self, text: str, special: bool = False, *, add_bos: bool | None = None) -> list[int]:
        return self._call(Tokenize(valid_text(text), special, add_bos), "tokenizing")

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._call(Detokenize(_ids(tokens)), "detokenizing")

    def score_tokens(self, tokens: Sequence[int], *, top_k: int = 0, next_top_k: int = 0) -> TokenScores:
        """Every position's logprob of a prompt given as token ids, scored exactly as given (see
        ``TokenScores``); ``top_k`` adds each position's rank and alternatives, ``next_top_k`` the top of
        the distribution after the last token."""
        for name, k in (("top_k", top_k), ("next_top_k", next_top_k)):
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_SCORE_TOP_K:
                raise EngineError(f"{name} must be a whole number from 0 to {MAX_SCORE_TOP_K}, not {k!r}.")
        rows, nxt = self._call(ScoreTokens(_ids(tokens), top_k, next_top_k), "scoring")
        return TokenScores(tuple(
            ScoredToken(t[0], t[1], t[2]) if len(t) == 3
            else ScoredToken(t[0], t[1], t[2], t[3], tuple(TopToken(*a) for a in t[4]))
            for t in rows), tuple(TopToken(*a) for a in nxt))

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


def _ids(tokens: Sequence[int]) -> list[int]:
    """Token ids as plain ints (one line for anything else); the worker checks them against the vocabulary."""
    try:
        ids = [int(t) for t in tokens]
    except (TypeError, ValueError):
        raise EngineError("Token ids must be whole numbers.") from None
    if any(isinstance(t, bool) for t in tokens):
        raise EngineError("Token ids must be whole numbers.")
    return ids


def _threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise EngineError(f"Threads must be a whole number of 1 or more, not {threads!r}.")
    return threads


def load_model(path: str | os.PathLike, options: LoadOptions | None = None) -> ModelHandle:
    """Start a worker process and load the model there. Blocks until loaded (call off the GUI thread)."""
    checked = check_model_file(path, deep=False)  # the worker checks the whole header first
    n_seq = (options or LoadOptions()).n_seq
    if isinstance(n_seq, bool) or not isinstance(n_seq, int) or n_seq < 1:
        raise EngineError(f"Slots must be a whole number of 1 or more, not {n_seq!r}.")
    return ModelHandle(checked, options or LoadOptions())
