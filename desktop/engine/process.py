"""The app's side of a worker process: start it, talk to it over its pipe, notice when it dies, keep its log.

A model runs in a spawned process so that llama.cpp never runs in the GUI's process and a crash takes only
the worker with it. ``WorkerProcess`` is one such process with its pipe and its shared cancel flag; a worker
that dies becomes ``EngineCrashed`` with the last lines it wrote to its log. ``hardware_report`` runs the
hardware check in a short-lived process of the same kind.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import time
import uuid
from pathlib import Path

from desktop.core import paths
from desktop.core.errors import EngineCrashed, EngineError
from desktop.core.logs import tail
from desktop.engine.messages import Failed

spawn_context = multiprocessing.get_context("spawn")


def describe_exit(code: int | None) -> str:
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


class WorkerProcess:
    """One worker process and its pipe."""

    def __init__(self, target, args: tuple, log_path: Path):
        self.log_path = log_path
        self.cancel_flag = spawn_context.RawArray(ctypes.c_uint8, 2)
        parent, child = spawn_context.Pipe(duplex=True)
        self.conn = parent
        self.process = spawn_context.Process(target=target, args=(child, *args, self.cancel_flag, str(log_path)),
                                    daemon=True, name="tandem-engine")
        self.process.start()
        child.close()  # so a dead worker reads as EOF here

    def crashed(self, what: str) -> EngineCrashed:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        log_tail = tail(self.log_path)
        last = next((ln for ln in reversed(log_tail.splitlines()) if ln.strip()), "")
        message = f"The model's worker process {describe_exit(code)} while {what}."
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


def new_log_path(prefix: str) -> Path:
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


_hardware_cache: dict | None = None


def hardware_report(refresh: bool = False) -> dict:
    """CPU features, GPU devices and the llama.cpp build's backend, read in a short-lived worker."""
    global _hardware_cache
    if _hardware_cache is not None and not refresh:
        return _hardware_cache
    from desktop.engine.worker import hardware_main

    log_path = new_log_path("doctor")
    parent, child = spawn_context.Pipe(duplex=True)
    process = spawn_context.Process(target=hardware_main, args=(child, str(log_path)), daemon=True)
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
