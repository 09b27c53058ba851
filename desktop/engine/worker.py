"""The worker process: one loaded model, driven over a pipe. Only the worker's modules import llama_cpp.

``worker_main`` (the spawned process's entry point) loads the model into a ``Runner`` and answers requests
in ``serve`` until ``Close``. The Runner is assembled from the modules that each do one part of the work:
``runner`` (load, tokenize, evaluate, the KV cache), ``generation`` (the token stream), ``sampling`` (the
sampler over a short candidate array), ``scoring`` (log-probabilities of given text); ``hardware`` answers
the hardware check (``hardware_main``); ``native`` imports llama_cpp and numpy only in here.

With ``LoadOptions.n_seq`` = N > 1 the worker has N slots: ``batching.serve_slots`` decodes up to N streaming
requests together in one ``llama_decode`` per step (slot i on KV sequence i; sequence 0 stays the
Runner's own for scoring and the other requests answered whole, between steps), and every message is
wrapped in ``Tagged(rid, ...)``; ``Cancel`` stops one request. See ``batching``'s docstring.

The pipe carries the typed messages of ``desktop.engine.messages``: requests ``Complete`` / ``Chat``
(streamed: ``Token`` per token, then one ``Final``), ``Render`` / ``Tokenize`` / ``Score`` / ``VocabId`` (answered
by ``Done`` or ``Failed``) and ``Close``. Loading answers ``Done(LoadInfo)`` or ``Failed``. A ``Token``'s logprob
is NaN unless the request asked for logprobs.
"""

from __future__ import annotations

import os
import pickle
import time

from desktop.core.errors import EngineError, TandemError
from desktop.engine import native
from desktop.engine.batching import prompt_tokens, serve_slots
from desktop.engine.generation import Generating
from desktop.engine.hardware import hardware_report
from desktop.engine.messages import (
    STREAMING,
    Close,
    Detokenize,
    Done,
    Failed,
    Final,
    Render,
    Score,
    ScoreTokens,
    Tokenize,
    VocabId,
)
from desktop.engine.native import L, np  # noqa: F401  (tests reach llama.cpp through the worker)
from desktop.engine.runner import Cancelled
from desktop.engine.scoring import Scoring
from desktop.engine.types import FinalEvent, LoadOptions


class Runner(Generating, Scoring):
    """A loaded model that streams generations and scores text (see the modules named above)."""


def _import_llama() -> None:
    native.load()


def _redirect_output(log_path: str | None) -> None:
    """Native stderr/stdout go to this worker's log; the client shows its tail if the worker dies."""
    # On a GGML_ASSERT, ggml attaches gdb (when installed) to print a backtrace: 2-4 s before the process
    # dies, so a corrupt file's clean error came late. The assert line itself (file:line) still lands here.
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    if not log_path:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.dup2(fd, 1)
    os.close(fd)


def _die_with_parent() -> None:
    """Never outlive the app, even if it is SIGKILLed. (Not PR_SET_PDEATHSIG: that fires when the
    *thread* that started us ends, and the app starts workers from short-lived loader threads.)"""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(conn, path: str, options: LoadOptions, cancel_flag, log_path: str | None) -> None:
    """Entry point of the worker process."""
    _redirect_output(log_path)
    _die_with_parent()
    try:
        from desktop.engine.client import check_model_file

        check_model_file(path)  # the header, whole: a truncated file is a one-line reason, not a crash
        _import_llama()
        runner = Runner(path, options, cancel_flag, log_path)
    except TandemError as exc:
        conn.send(Failed(exc))
        return
    except Exception as exc:
        conn.send(Failed(EngineError(f"Loading failed: {type(exc).__name__}: {exc}")))
        return
    conn.send(Done(runner.info))
    if runner.n_seq_max > 1:  # slots: requests tagged with their ids, decoded together (engine/batching.py)
        serve_slots(conn, runner, lambda msg, send: _answer(msg, runner, send))
    else:
        serve(conn, runner)


def hardware_main(conn, log_path: str | None) -> None:
    _redirect_output(log_path)
    _die_with_parent()
    try:
        _import_llama()
        conn.send(Done(hardware_report()))
    except Exception as exc:
        conn.send(Failed(EngineError(f"Could not read the hardware report: {exc}")))


def _handle(msg, runner: Runner, send) -> None:
    """Answer one request (raises what the request's failure should become)."""
    if isinstance(msg, STREAMING):
        runner.use_threads(msg.threads)
        send(Final(runner.generate(prompt_tokens(runner, msg), msg.params, send)))
    elif isinstance(msg, Render):
        send(Done(runner.render(msg.messages, msg.system)))
    elif isinstance(msg, Tokenize):
        add_bos = msg.special if msg.add_bos is None else msg.add_bos
        send(Done(runner.tokenize(msg.text, add_special=add_bos, parse_special=msg.special)))
    elif isinstance(msg, Detokenize):
        send(Done(runner.detokenize(list(msg.tokens))))
    elif isinstance(msg, ScoreTokens):
        send(Done(runner.score_tokens(list(msg.tokens), msg.top_k, msg.next_top_k)))
    elif isinstance(msg, Score):
        send(Done(runner.score(msg.prompt, msg.continuation, msg.as_chat, msg.system, msg.top_k)))
    elif isinstance(msg, VocabId):
        send(Done(runner.vocab_id()))
    else:
        send(Failed(EngineError(f"unknown request {msg!r}")))


def _failure(error: TandemError, streaming: bool) -> Final | Failed:
    """A stream ends with an error FinalEvent; any other request answers ``Failed``."""
    return Final(FinalEvent("error", "", error=error)) if streaming else Failed(error)


def serve(conn, runner: Runner) -> None:
    send_bytes, dumps, protocol = conn.send_bytes, pickle.dumps, pickle.HIGHEST_PROTOCOL

    def send(msg) -> None:  # conn.send's bytes (conn.recv reads them) without building a ForkingPickler and
        send_bytes(dumps(msg, protocol))  # its dispatch table per message: one per streamed token

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if isinstance(msg, Close):
            runner.close()
            send(Done(None))
            break
        if not _answer(msg, runner, send):
            break


def _answer(msg, runner: Runner, send) -> bool:
    """Answer one request whole, its failure included; False when the pipe broke."""
    streaming = isinstance(msg, STREAMING)
    try:
        _handle(msg, runner, send)
    except Cancelled:
        send(Final(FinalEvent("cancelled", "")) if streaming else Failed(EngineError("cancelled")))
    except TandemError as exc:
        send(_failure(exc, streaming))
    except ValueError as exc:  # SamplingParams.validate
        send(_failure(EngineError(str(exc)), streaming))
    except (BrokenPipeError, EOFError, OSError):
        return False
    except Exception as exc:  # a bug of ours: report it, keep the model loaded
        import traceback

        traceback.print_exc()
        try:
            send(_failure(EngineError(f"Internal engine error: {type(exc).__name__}: {exc}"), streaming))
        except OSError:
            return False
    return True
