"""HTTP for remote models: the offline guard, one error per failure, and streams that Stop can end at once.

Every request to an inference server goes through ``Transport``: it refuses a non-loopback host in offline
mode *before* any DNS lookup (the host is checked as text: a literal loopback address or ``localhost``),
turns every HTTP failure into one of the ``RemoteError`` kinds with a one-line message that names the
endpoint (never the API key), and reads SSE or NDJSON line by line. ``cancel()`` shuts the socket down, so a
reader blocked on a stalled server wakes at once instead of waiting for a timeout; a ``StreamCancel`` does the
same for a server that stalls before sending its headers (the socket is caught as it connects).
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from desktop.core.endpoints import is_loopback_url, normalize_base_url
from desktop.core.errors import (
    ContextOverflow,
    OfflineError,
    RemoteError,
    ServerAuthError,
    ServerBusy,
    ServerProtocolError,
    ServerUnreachable,
    UnknownModel,
)
from desktop.core.http_headers import retry_after_seconds

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a 70B prefill of a long prompt on a busy server can take minutes
_TRUE = {"1", "true", "yes", "on"}


def offline_now() -> bool:
    """Tandem's offline setting or HF_HUB_OFFLINE, read now (the hub's guard reads the same two)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from desktop.core.settings import load_settings

    return load_settings().offline


def check_allowed(url: str, offline: bool | None = None) -> None:
    """Raise OfflineError when offline mode forbids reaching ``url`` (checked before any lookup)."""
    if is_loopback_url(url):
        return
    if offline if offline is not None else offline_now():
        host = urlsplit(url).hostname or url
        raise OfflineError(f"Offline mode is on, so Tandem will not contact the server at {host}; only "
                           "endpoints on this machine (localhost, 127.0.0.1, ::1) are allowed.")


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("retry-after"))


def _server_message(response: httpx.Response) -> str:
    """The one-line reason a server gave in its error body (OpenAI, llama.cpp, Ollama, FastAPI shapes)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        text = response.text.strip().splitlines()
        return text[0][:200] if text else ""
    err = body.get("error", body.get("detail", body.get("message", ""))) if isinstance(body, dict) else body
    if isinstance(err, dict):
        err = err.get("message") or err.get("msg") or json.dumps(err)[:200]
    if isinstance(err, list) and err and isinstance(err[0], dict):  # FastAPI validation errors
        err = err[0].get("msg", "")
    return " ".join(str(err).split())[:300]


def _is_overflow(message: str, body: Any) -> bool:
    text = message.lower()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        if body["error"].get("type") == "exceed_context_size_error":  # llama-server
            return True
    return any(k in text for k in ("context length", "context size", "maximum context", "context window",
                                    "exceeds the available context", "too many tokens", "max_model_len",
                                    "is longer than the model"))


def error_for(response: httpx.Response, where: str, model: str = "") -> RemoteError:
    """The one error a failed HTTP reply means, its message naming the endpoint and what to do."""
    status = response.status_code
    message = _server_message(response)
    said = f": {message}" if message else ""
    if status in (401, 403):
        return ServerAuthError(f"{where} refused the request ({status}{said}); check the endpoint's API key "
                               "(tandem endpoints add NAME URL --api-key-env VAR).")
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if status in (400, 413, 422) and _is_overflow(message, body):
        n_prompt = n_ctx = 0
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            n_prompt = int(body["error"].get("n_prompt_tokens") or 0)
            n_ctx = int(body["error"].get("n_ctx") or 0)
        return ContextOverflow(f"The prompt does not fit the model's context on {where}{said}.", n_prompt, n_ctx)
    if status == 404 and model and ("model" in message.lower() or not message):
        return UnknownModel(f"{where} does not serve a model {model!r}{said}; `tandem endpoints test` lists "
                            "the models it has.")
    if status == 429 or status >= 500:
        after = _retry_after(response)
        wait = f"; it asks to retry in {after:.0f} s" if after is not None else "; try again later"
        what = "is rate-limiting requests" if status == 429 else "failed"
        return ServerBusy(f"{where} {what} ({status}{said}){wait}.", status, after)
    if status == 404:
        return RemoteError(f"{where} has no such route ({response.request.url.path}){said}.")
    return RemoteError(f"{where} rejected the request ({status}{said}).")


def finite(value: Any, what: str) -> float:
    """A logprob as a finite float (or -inf); NaN, a string or a missing value is a protocol error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ServerProtocolError(f"the server sent no usable {what} ({value!r}).")
    value = float(value)
    if math.isnan(value) or value == math.inf:
        raise ServerProtocolError(f"the server sent {value} as a {what}; its numbers can't be shown.")
    return value


class Transport:
    """One endpoint's HTTP client. ``where`` names it in every message ("llama-server at gpu-box:8080")."""

    def __init__(self, base_url: str, api_key: str | None = None, *, offline: bool | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S):
        self.base_url = normalize_base_url(base_url)
        check_allowed(self.base_url, offline)
        self._offline = offline
        parts = urlsplit(self.base_url)
        self.host = parts.netloc
        self.where = f"the server at {self.host}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, trust_env=False, timeout=timeout)
        # Streams get a connection of their own each (no keep-alive): the trace hook then sees it connect and a
        # StreamCancel holds its socket before any header arrives. A loopback/LAN connect costs well under a
        # millisecond beside a generation.
        self._stream_client = httpx.Client(base_url=self.base_url, headers=headers, trust_env=False,
                                           timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self._client.close()
        self._stream_client.close()

    def _send(self, method: str, path: str, body: Any, model: str, stream: bool,
              cancel: StreamCancel | None = None) -> httpx.Response:
        check_allowed(self.base_url, self._offline)  # offline may have been switched on since
        client = self._stream_client if cancel is not None else self._client
        try:
            extensions = {"trace": cancel.trace} if cancel is not None else None
            request = client.build_request(method, path, json=body, extensions=extensions)
            try:
                if cancel is not None and cancel.is_set():
                    raise StreamCancelled()
                response = client.send(request, stream=stream)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if cancel is not None and cancel.is_set():
                    raise StreamCancelled() from None  # our own shutdown, not a stale connection
                # a pooled keep-alive connection the server has closed meanwhile: once more, on a new one
                response = client.send(request, stream=stream)
        except httpx.TimeoutException:
            raise ServerUnreachable(f"{self.where} did not answer in time; is it overloaded or down?") from None
        except httpx.HTTPError as exc:
            reason = str(exc).split("] ")[-1] or type(exc).__name__
            raise ServerUnreachable(f"Can't reach {self.where} ({reason}); is the server running and the "
                                    "address right?") from None
        if response.status_code >= 400:
            if stream:
                response.read()
                response.close()
            raise error_for(response, self.where, model)
        return response

    def get_json(self, path: str, *, model: str = "", quiet_404: bool = False) -> Any:
        """GET and parse JSON. With ``quiet_404`` a 404/405 returns None (route probing)."""
        try:
            response = self._send("GET", path, None, model, stream=False)
        except RemoteError as exc:
            if quiet_404 and "no such route" in str(exc):
                return None
            raise
        return self._json(response, path)

    def post_json(self, path: str, body: Any, *, model: str = "") -> Any:
        return self._json(self._send("POST", path, body, model, stream=False), path)

    def probe(self, method: str, path: str, body: Any = None) -> Any:
        """A route check: the JSON reply, or None when the route is missing, refused or not JSON."""
        try:
            response = self._send(method, path, body, "", stream=False)
            return response.json()
        except (RemoteError, ValueError, UnicodeDecodeError):
            return None

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise ServerProtocolError(f"{self.where} sent something that is not JSON from {path}.") from None

    def open_stream(self, path: str, body: Any, *, model: str = "", ndjson: bool = False,
                    cancel: StreamCancel | None = None) -> LineStream:
        """The reply's lines. With ``cancel``, ``cancel.set()`` from another thread ends the request even
        while the server has not sent its headers yet (``StreamCancelled`` is raised here then)."""
        cancel = cancel or StreamCancel()
        return LineStream(self._send("POST", path, body, model, stream=True, cancel=cancel), self.where, ndjson)


class StreamCancelled(RemoteError):
    """The stream was stopped before the server answered (raised to the reader thread, never shown)."""

    def __init__(self) -> None:
        super().__init__("The request was stopped before the server answered.")


class StreamCancel:
    """A streamed request's Stop, good before its reply starts: httpcore's trace hook hands over the socket
    as the request connects, and ``set()`` shuts it down, which wakes a send blocked waiting for headers (a
    server that stalls there would otherwise hold the reader thread for the whole read timeout)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def trace(self, name: str, info: dict) -> None:
        if name != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sock = sock
            stopped = self._event.is_set()
        if stopped:  # Stop came while it connected
            _shutdown(sock)

    def set(self) -> None:
        with self._lock:
            self._event.set()
            sock = self._sock
        if sock is not None:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv; close alone does not
    except OSError:
        pass


class LineStream:
    """The JSON objects of an SSE (``data: {...}``) or NDJSON reply, in order; ``cancel()`` from any thread."""

    def __init__(self, response: httpx.Response, where: str, ndjson: bool):
        self._response = response
        self._where = where
        self._ndjson = ndjson
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Wake a reader blocked on the socket now (shutdown wakes a blocked recv; close alone does not)."""
        self._cancelled.set()
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            _shutdown(sock)

    def close(self) -> None:
        try:
            self._response.close()
        except Exception:  # closing a socket we shut down ourselves may complain; nothing is lost
            pass

    def __iter__(self) -> Iterator[dict]:
        pending = ""
        try:
            for chunk in self._response.iter_text():
                if self._cancelled.is_set():
                    return
                pending += chunk
                *lines, pending = pending.replace("\r\n", "\n").split("\n")
                for line in lines:
                    obj = self._parse(line)
                    if obj is _DONE:
                        return
                    if obj is not None:
                        yield obj
        except httpx.HTTPError:
            if self._cancelled.is_set():
                return
            raise ServerUnreachable(f"The connection to {self._where} dropped mid-reply") from None
        finally:
            self.close()
        if pending.strip() and not self._cancelled.is_set():  # the body ended inside a line
            raise ServerUnreachable(f"The connection to {self._where} dropped mid-reply")

    def _parse(self, line: str):
        line = line.strip()
        if not line:
            return None
        if self._ndjson:
            payload = line
        elif line.startswith(":"):  # SSE comment / keep-alive ping
            return None
        elif line.startswith("data:"):
            payload = line[5:].strip()
            if payload == "[DONE]":
                return _DONE
        elif line.startswith(("event:", "id:", "retry:")):
            return None
        elif line.startswith("error:"):  # llama-server streams its errors as "error: {...}"
            payload = line[6:].strip()
        else:
            raise ServerProtocolError(f"{self._where} sent a line that is not server-sent events: {line[:80]!r}.")
        try:
            obj = json.loads(payload)
        except ValueError:
            raise ServerProtocolError(f"{self._where} sent malformed JSON in its stream: {payload[:80]!r}.") from None
        if not isinstance(obj, dict):
            raise ServerProtocolError(f"{self._where} sent a stream item that is not a JSON object.")
        if "error" in obj and not obj.get("choices") and "response" not in obj and "text" not in obj:
            err = obj["error"]
            message = err.get("message", json.dumps(err)) if isinstance(err, dict) else str(err)
            if _is_overflow(message, obj):
                raise ContextOverflow(f"The prompt does not fit the model's context on {self._where}: {message}")
            raise RemoteError(f"{self._where} failed mid-reply: {' '.join(message.split())[:300]}")
        return obj


_DONE = object()
