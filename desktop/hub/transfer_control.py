"""How a transfer is steered and reported: the retry policy, progress values, the pause/cancel control and
the speed window behind the ETA.

Split from ``transfer`` (which moves the bytes): these are the pieces the download manager and the ui hold
while a transfer runs, and they carry no HTTP logic of their own beyond shutting a stalled socket down.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass

import httpx2

from desktop.core.errors import DownloadCancelled


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: base, 2x base, 4x base ... capped; give up after ``attempts`` failures in a row
    without progress. Retry-After is honoured up to ``max_retry_after`` seconds."""

    attempts: int = 8
    base: float = 1.0
    cap: float = 30.0
    max_retry_after: float = 300.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0  # a stall this long is treated as a dropped connection and retried

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * (2 ** max(failures - 1, 0)))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Progress:
    bytes: int
    total: int
    speed: float  # bytes per second over the last few seconds
    eta: float | None  # seconds


class Control:
    """Thread-safe pause/cancel for one transfer. ``request`` returns at once: it also shuts the socket
    down, so a transfer blocked on a stalled server notices immediately, not after the read timeout."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._reason: str | None = None
        self._socket: socket.socket | None = None

    @property
    def reason(self) -> str | None:
        return self._reason

    def request(self, reason: str) -> None:
        with self._cond:
            if self._reason != "cancel":  # cancel wins over pause
                self._reason = reason
            sock = self._socket
            self._cond.notify_all()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reset(self) -> None:
        with self._cond:
            self._reason = None

    def check(self) -> None:
        if self._reason:
            raise DownloadCancelled(self._reason)

    def sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._reason is not None, timeout=max(seconds, 0))
        self.check()

    def attach(self, response: httpx2.Response | None) -> None:
        sock = None
        if response is not None:
            stream = response.extensions.get("network_stream")
            if stream is not None:
                try:
                    sock = stream.get_extra_info("socket")
                except Exception:  # noqa: BLE001 - best effort: cancel then waits for the read timeout
                    sock = None
        with self._cond:
            self._socket = sock
        if sock is not None and self._reason:
            self.request(self._reason)


class Rate:
    """Speed over a sliding window, for progress and ETA."""

    def __init__(self, window: float = 3.0):
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total_bytes: int) -> float:
        self.samples.append((now, total_bytes))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        return (total_bytes - b0) / (now - t0) if now > t0 else 0.0
