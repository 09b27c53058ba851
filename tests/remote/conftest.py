"""Remote-model fixtures: an in-memory keyring (never the machine's), and two REAL servers on loopback serving
the real SmolLM2-135M-Instruct: llama.cpp's ``llama-server`` (built from the installed llama-cpp-python by
bench/llama_server.py, cached outside the repo) and llama-cpp-python's own ``python -m llama_cpp.server``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import fail

from tests.remote.faultserver import free_port

REPO = Path(__file__).resolve().parents[2]
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that lives and dies with one test."""

    priority = 1

    def __init__(self):
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


@pytest.fixture(autouse=True)
def memory_keyring():
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(fail.Keyring())


@pytest.fixture
def no_keyring():
    keyring.set_keyring(fail.Keyring())


@pytest.fixture(scope="session")
def smollm2() -> Path:
    folder = Path(os.environ.get("TANDEM_REAL_MODELS") or Path.home() / ".cache" / "tandem" / "real-models")
    path = folder / SMOL
    if not path.is_file():
        subprocess.run(["bash", str(REPO / "scripts" / "real_models.sh"), str(folder)], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"the server did not come up within {timeout:.0f} s: {log.read_text()[-2000:]}")


def _start(cmd: list[str], ready_path: str, port: int, tmp: Path, name: str):
    log = tmp / f"{name}.log"
    fh = open(log, "wb")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url + ready_path, log)
    except BaseException:
        proc.kill()
        fh.close()
        raise
    return proc, fh, url


N_CTX = 1024


@pytest.fixture(scope="session")
def llama_server(smollm2, tmp_path_factory) -> str:
    """URL of a real llama-server serving SmolLM2 (one slot, one thread, 1024-token context)."""
    from bench.llama_server import ensure_llama_server

    binary = ensure_llama_server(log=lambda m: print(m, file=sys.stderr)).binary
    port = free_port()
    proc, fh, url = _start([str(binary), "-m", str(smollm2), "--host", "127.0.0.1", "--port", str(port),
                            "-t", "1", "-tb", "1", "-c", str(N_CTX), "-np", "1", "--no-webui",
                            # the same attention as the reference (local_smol): flash attention on moves
                            # SmolLM2's logprobs by up to 0.1 nats ('\n' after " Paris." -1.06 with it, -0.95 without)
                            "-fa", "off",
                            # no AMX weight repacking: on a VM whose CPU reports AMX the server's
                            # tinygemm_kernel_amx died of SIGILL at its first 'tilezero' (exit -4)
                            "--no-repack"],
                           "/health", port, tmp_path_factory.mktemp("llama-server"), "llama-server")
    yield url
    proc.terminate()
    proc.wait(10)
    fh.close()


@pytest.fixture(scope="session")
def llama_cpp_server(smollm2, tmp_path_factory) -> str:
    """URL of a real ``python -m llama_cpp.server`` (llama-cpp-python 0.3.36) serving SmolLM2."""
    port = free_port()
    proc, fh, url = _start([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2), "--host", "127.0.0.1",
                            "--port", str(port), "--n_threads", "1", "--n_threads_batch", "1",
                            "--n_ctx", str(N_CTX)],
                           "/v1/models", port, tmp_path_factory.mktemp("llama-cpp-server"), "llama_cpp.server")
    yield url
    proc.terminate()
    proc.wait(10)
    fh.close()


@pytest.fixture(scope="session")
def local_smol(smollm2):
    """The same GGUF in Tandem's own engine: the reference the servers' numbers are compared with. Flash
    attention off, as both servers run here (llama_cpp.server 0.3.36 has it off by default; llama-server gets
    ``-fa off``): Tandem's own default on the CPU is llama.cpp's ``auto`` (on), which moves SmolLM2's logprobs
    by up to 0.1 nats, more than the comparison's tolerance."""
    from desktop.engine import LoadOptions, load_model
    from tests.conftest import TEST_THREADS

    with load_model(smollm2, LoadOptions(threads=TEST_THREADS, n_ctx=512, flash_attn=False)) as local:
        yield local


@pytest.fixture(autouse=True)
def close_transports(monkeypatch):
    """Close every HTTP client a test opened, as the app closes a model it unloads: a pooled keep-alive
    socket left to the garbage collector is a ResourceWarning, and warnings are errors."""
    from desktop.engine import remote_http

    opened: list = []
    original = remote_http.Transport.__init__

    def tracking_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(remote_http.Transport, "__init__", tracking_init)
    yield
    for transport in opened:
        transport.close()
