"""``ServerHandle``: the API served by uvicorn on a background thread, started and stopped from any thread
(the CLI's main thread, the app's Server panel). FastAPI and uvicorn are imported by ``start()`` only."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Mapping

from desktop.engine.model import Model
from desktop.serve.config import RequestRecord, ServeError, ServerConfig, check_config
from desktop.serve.registry import check_id

START_TIMEOUT_S = 15.0
DEFAULT_CONFIG = ServerConfig()


class ServerHandle:
    """The server over a set of loaded models. It does not own them: the CLI closes its models, the app's
    models belong to its panes. ``on_request`` is called from a server thread, never the GUI thread."""

    def __init__(self, models: Mapping[str, Model], config: ServerConfig = DEFAULT_CONFIG,
                 on_request: Callable[[RequestRecord], None] | None = None):
        _check_models(models)
        self._models = dict(models)
        self.config = config
        self.on_request = on_request
        self._lock = threading.Lock()
        self._server = None
        self._state = None
        self._thread: threading.Thread | None = None
        self._port = config.port
        self._error: BaseException | None = None

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind, then serve on a background thread. Raises ``ServeError`` (one line) for a refused host or
        a port in use; returns once the server accepts connections."""
        with self._lock:
            if self.running:
                return
            check_config(self.config)
            sock = _bind(self.config.host, self.config.port)
            self._port = sock.getsockname()[1]
            import uvicorn

            from desktop.serve.app import ServeState, build_app
            from desktop.serve.registry import Registry

            self._state = ServeState(Registry(self._models), self.config)
            app = build_app(self._state, self.on_request)
            uconfig = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                                     lifespan="off", ws="none", timeout_graceful_shutdown=5,
                                     server_header=False)
            server = uvicorn.Server(uconfig)
            self._server, self._error = server, None
            self._thread = threading.Thread(target=self._serve, args=(server, sock), name="tandem-serve",
                                            daemon=True)
            self._thread.start()
            for _ in range(int(START_TIMEOUT_S / 0.01)):
                if server.started or not self._thread.is_alive():
                    break
                self._thread.join(0.01)
            if not server.started:
                server.should_exit = True
                sock.close()
                raise ServeError(f"the server did not start on {self.url}"
                                 + (f": {self._error}" if self._error else ""))

    def _serve(self, server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # noqa: BLE001  (start() reports it)
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: in-flight streams end with an error chunk, then the thread ends. Idempotent."""
        with self._lock:
            server, thread, state = self._server, self._thread, self._state
            if server is None or thread is None:
                return
            if state is not None:
                for cancel in list(state.active):
                    cancel.cancel("shutdown")
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(2.0)
            self._server = self._thread = self._state = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._server is not None

    # ----- what is served --------------------------------------------------------------------------
    def set_models(self, models: Mapping[str, Model]) -> None:
        """Change the served set while serving (requests under way keep their model)."""
        _check_models(models)
        self._models = dict(models)
        state = self._state
        if state is not None:
            state.registry.set(self._models)

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    def model_url(self, model_id: str) -> str:
        """That model's root + "/v1": the base_url to give an OpenAI client. lm-eval's base_url is this
        + "/completions" (it finds /tokenize by cutting "/v1/completions" off)."""
        return f"{self.url}/models/{model_id}/v1"

    def __enter__(self) -> ServerHandle:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _check_models(models: Mapping[str, Model]) -> None:
    """Ids that fit in a URL, and local models only: a remote endpoint's model is not served again."""
    for model_id, model in models.items():
        try:
            check_id(model_id)
        except ValueError as exc:
            raise ServeError(str(exc)) from None
        if model.capabilities.remote:
            raise ServeError(f"{model_id} is a model on a remote server: only local models are served")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a port in use is a one-line error before anything starts.

    Made with proto=IPPROTO_TCP, as asyncio makes its own: asyncio sets TCP_NODELAY only on connections
    whose socket says TCP, and without it every response's body waited ~40 ms behind its headers (Nagle
    against the client's delayed ACK) on a kept-alive connection."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"can't serve on {host}: {exc.strerror or exc}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ServeError(f"port {port} on {host} is in use: stop what uses it or pick another "
                             "port (--port)") from None
        raise ServeError(f"can't serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock
