"""What a server is started with, what its request log records, and the one error starting it can raise."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from desktop.core.errors import TandemError


class ServeError(TandemError):
    """The server can't start (port in use, a non-loopback host without an API key): one line."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: pick a free port (tests, `tandem eval`)
    api_key: str | None = None  # None: no key; a non-loopback host is refused without one
    cors_origins: tuple[str, ...] = ()  # no CORS unless asked
    max_body_bytes: int = 16 * 2**20  # over it: 413


@dataclass(frozen=True)
class RequestRecord:
    """One line of the live request log (the app's Server panel)."""

    at: float  # time.time() when the request arrived
    route: str  # "/v1/completions", "/tokenize", ...
    model: str  # the served id ("" when none applies)
    status: int  # HTTP status sent
    prompt_tokens: int
    completion_tokens: int
    duration_s: float


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach ("localhost" included)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config(config: ServerConfig) -> None:
    """Refuse, in one line, what would expose the models: a non-loopback host with no API key."""
    if not is_loopback(config.host) and not config.api_key:
        raise ServeError(f"refusing to serve on {config.host}: anyone on the network could use the models; "
                         "set an API key (--api-key-env VAR) or keep the default 127.0.0.1")
    if not 0 <= int(config.port) <= 65535:
        raise ServeError(f"port {config.port} is not a port number (0 to 65535)")
    if config.max_body_bytes < 1:
        raise ServeError("max_body_bytes must be 1 or more")
