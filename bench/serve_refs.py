"""The two reference servers the serve bench and the lm-eval comparison start, run the way Tandem's engine runs.

- ``python -m llama_cpp.server`` (llama-cpp-python's own server, installed by the test extra), through
  ``python -m bench.llama_cpp_server``, which only turns llama.cpp's weight repacking off where the engine does;
- ``llama-server`` (llama.cpp's, built by ``bench.llama_server`` from the installed llama-cpp-python's
  vendored llama.cpp), with ``--no-repack`` where the engine turns repacking off.

Both the same file, threads and context as Tandem. The repacking rule is the engine's
(``desktop.engine.hardware.amx_usable``): off only where llama.cpp's library carries its AMX kernels and the CPU
reports AMX tiles (those kernels die with SIGILL on this project's test VMs); ``TANDEM_AMX=1`` keeps it, ``0``
turns it off anywhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def amx_usable() -> bool:
    """False where the engine turns llama.cpp's extra buffer types (weight repacking) off: the engine's own rule
    (``desktop.engine.hardware.amx_usable``), so a reference server repacks exactly when Tandem does. Both are
    built from the same llama.cpp with the same flags (without AMX kernels: scripts/test.sh,
    bench/reference.py), so where Tandem's library has no AMX kernels neither has the reference's."""
    from desktop.engine.hardware import amx_usable as engine_rule

    return engine_rule()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_cpp_server_cmd(model: Path, port: int, *, threads: int, n_ctx: int) -> list[str]:
    """llama-cpp-python's server on loopback: one request at a time (it has no slots), flash attention at its
    default (off)."""
    return [sys.executable, "-m", "bench.llama_cpp_server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--n_ctx", str(n_ctx), "--n_gpu_layers", "0"]


def llama_server_cmd(binary: Path, model: Path, port: int, *, threads: int, n_ctx: int, parallel: int = 1,
                     gpu_layers: int = 0) -> list[str]:
    """llama.cpp's llama-server on loopback with ``parallel`` slots sharing ``n_ctx`` (llama-server divides its
    context among the slots, so pass the total)."""
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
           "-tb", str(threads), "-c", str(n_ctx), "-np", str(parallel), "-ngl", str(gpu_layers), "--no-webui"]
    if not amx_usable():
        cmd.append("--no-repack")
    return cmd


def tandem_serve_cmd(models: list[Path], port: int, *, threads: int, parallel: int = 1, n_ctx: int | None = None,
                     gpu_layers: str = "0") -> list[str]:
    """``tandem serve`` of these files (served as their file names without .gguf) on loopback, as a user runs it.
    ``python -m desktop`` from the checkout this module is in, so a source tree tests its own server."""
    cmd = [sys.executable, "-m", "desktop", "serve", "--port", str(port), "--threads", str(threads),
           "--parallel", str(parallel), "--gpu-layers", gpu_layers]
    for model in models:
        cmd += ["--model", str(model)]
    if n_ctx:
        cmd += ["--ctx", str(n_ctx)]
    return cmd


def served_id(model: Path) -> str:
    """The id ``tandem serve`` gives a file: its name without .gguf."""
    return model.stem


class RunningServer:
    """A server process on loopback, its output in a log file; ``stop()`` ends it (also on ``with``)."""

    def __init__(self, cmd: list[str], port: int, ready_path: str, log: Path, *, cwd: Path | None = None,
                 timeout: float = 180, env: dict | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = open(log, "wb")
        repo = str(Path(__file__).resolve().parents[1])
        env = dict(env or os.environ)
        # bench.llama_cpp_server and this checkout's desktop package, from any working directory
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, cwd=cwd or log.parent, env=env)
        try:
            self._wait(ready_path, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server did not come up within {timeout:.0f} s: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        self._fh.flush()
        return self.log.read_text("utf-8", "replace")[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._fh.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
