"""The download manager: a bounded queue of downloads, a few at a time, each a stream of events.

Built for a GUI: every method returns at once and is thread-safe; the work runs on worker threads and
reports through ``DownloadEvent`` callbacks (called on those worker threads: a Qt front end re-emits them
as a queued signal). ``pause``/``resume``/``cancel`` work on queued, running and paused downloads. What a
download is lives beside its ``.part`` file, so after an app or machine restart ``pending()`` lists the
paused and interrupted ones and ``resume`` fetches only the missing bytes.

Event kinds, in order: queued, started, progress (bytes, total, speed, eta)..., then paused, or
verifying followed by done (path), or error (message), or cancelled.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.core.errors import DownloadCancelled, DownloadError, TandemError
from desktop.hub._common import check_repo_id
from desktop.hub.transfer import (
    DEFAULT_POLICY,
    STATE_SUFFIX,
    Control,
    Progress,
    RemoteFile,
    RetryPolicy,
    discard,
    fetch,
    part_path,
    read_state,
    resolve_remote,
    target_for,
    write_state,
)

log = logging.getLogger("tandem.hub.download")

QUEUED, STARTED, PROGRESS, PAUSED = "queued", "started", "progress", "paused"
VERIFYING, DONE, ERROR, CANCELLED = "verifying", "done", "error", "cancelled"
FINAL = (PAUSED, DONE, ERROR, CANCELLED)
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


@dataclass(frozen=True)
class DownloadEvent:
    """One step of one download. ``id`` is stable across restarts: ``repo:filename``."""

    kind: str
    id: str
    repo: str
    filename: str
    bytes: int = 0
    total: int | None = None
    speed: float = 0.0  # bytes/s
    eta: float | None = None  # seconds
    path: str | None = None  # the finished file (done), or the target being written
    message: str | None = None  # error text; for paused/cancelled, why
    error: TandemError | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "error"}


@dataclass(frozen=True)
class PendingDownload:
    """A paused or interrupted download found on disk (a ``.part`` with its state file)."""

    id: str
    repo: str
    filename: str
    target: Path
    bytes: int
    total: int
    status: str
    message: str | None


def split_parts(filename: str) -> list[str]:
    """All parts of a split model from the name of any part, or just ``[filename]``."""
    folder, _, base = filename.rpartition("/")
    m = _SPLIT.match(base)
    if not m:
        return [filename]
    count = int(m.group("count"))
    prefix = f"{folder}/" if folder else ""
    return [f"{prefix}{m.group('stem')}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


class _Job:
    def __init__(self, repo: str, filename: str, revision: str, dest_dir: Path):
        self.repo, self.filename, self.revision, self.dest_dir = repo, filename, revision, dest_dir
        self.id = f"{repo}:{filename}"
        self.control = Control()
        self.thread: threading.Thread | None = None
        self.last: DownloadEvent | None = None
        self.finished = threading.Event()


class DownloadManager:
    """Downloads into ``models_dir`` (default: the settings' models folder), ``max_concurrent`` at a time."""

    def __init__(self, models_dir: str | Path | None = None, *, max_concurrent: int = 2, max_queue: int = 16,
                 policy: RetryPolicy = DEFAULT_POLICY, on_event: Callable[[DownloadEvent], None] | None = None):
        if models_dir is None:
            from desktop.core.settings import load_settings

            models_dir = load_settings().resolved_models_dir()
        self.models_dir = Path(models_dir)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.max_queue = max_queue
        self.policy = policy
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._listeners: list[Callable[[DownloadEvent], None]] = [on_event] if on_event else []

    # -- events ----------------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[DownloadEvent], None]) -> Callable[[], None]:
        """Call ``listener`` for every event (on a worker thread). Returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, job: _Job, kind: str, **fields: Any) -> DownloadEvent:
        event = DownloadEvent(kind, job.id, job.repo, job.filename, **fields)
        job.last = event
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not kill the download
                log.exception("download listener failed")
        if kind in FINAL:
            job.finished.set()
        return event

    # -- public API (all return at once) ---------------------------------------------------------------

    def download(self, repo: str, filename: str, revision: str = "main", dest_dir: str | Path | None = None) -> str:
        """Queue a download (all parts, for a split model). Returns its id. Raises DownloadError at once
        for a bad name or a full queue; everything else arrives as events."""
        repo = check_repo_id(repo)
        dest = Path(dest_dir) if dest_dir is not None else self.models_dir
        dest.mkdir(parents=True, exist_ok=True)
        for part in split_parts(filename):
            target_for(dest, part)  # refuses names that could escape the folder, before anything starts
        job = _Job(repo, filename, revision, dest)
        with self._lock:
            existing = self._jobs.get(job.id)
            if existing is not None and not existing.finished.is_set():
                return existing.id  # already queued or running
            active = sum(1 for j in self._jobs.values() if not j.finished.is_set())
            if active >= self.max_queue:
                raise DownloadError(f"The download queue is full ({self.max_queue}); wait for one to finish.")
            self._jobs[job.id] = job
        self._start(job)
        return job.id

    def pause(self, download_id: str) -> None:
        job = self._job(download_id)
        if not job.finished.is_set():
            job.control.request("pause")

    def resume(self, download_id: str) -> str:
        """Resume a paused, failed or interrupted download (also one found by ``pending()`` after a restart)."""
        with self._lock:
            job = self._jobs.get(download_id)
            if job is not None and not job.finished.is_set():
                return job.id
        if job is None:
            found = next((p for p in self.pending() if p.id == download_id), None)
            if found is None:
                raise DownloadError(f"No paused download {download_id}.")
            job = _Job(found.repo, found.filename, "main", found.target.parent)
            state = read_state(found.target) or {}
            job.revision = state.get("revision") or "main"
        else:
            job = _Job(job.repo, job.filename, job.revision, job.dest_dir)
        with self._lock:
            self._jobs[job.id] = job
        self._start(job)
        return job.id

    def cancel(self, download_id: str) -> None:
        """Stop and delete the partial bytes. Works on queued, running and paused downloads."""
        with self._lock:
            job = self._jobs.get(download_id)
        if job is not None and not job.finished.is_set():
            job.control.request("cancel")
            return
        if job is None:
            found = next((p for p in self.pending() if p.id == download_id), None)
            if found is None:
                raise DownloadError(f"No download {download_id}.")
            job = _Job(found.repo, found.filename, "main", found.target.parent)
            with self._lock:
                self._jobs[job.id] = job
        for part in split_parts(job.filename):
            discard(target_for(job.dest_dir, part))
        self._emit(job, CANCELLED, message="cancelled; the partial download was deleted")

    def wait(self, download_id: str, timeout: float | None = None) -> DownloadEvent | None:
        """Block until the download pauses, fails, is cancelled or is done; returns that event."""
        job = self._job(download_id)
        job.finished.wait(timeout)
        return job.last if job.finished.is_set() else None

    def status(self, download_id: str) -> DownloadEvent | None:
        return self._job(download_id).last

    def active(self) -> list[DownloadEvent]:
        """The latest event of every download this manager knows, for a list view."""
        with self._lock:
            return [j.last for j in self._jobs.values() if j.last is not None]

    def pending(self) -> list[PendingDownload]:
        """Paused or interrupted downloads on disk in the models folder (e.g. after a restart)."""
        found = []
        for state_file in sorted(self.models_dir.glob(f"*{STATE_SUFFIX}")):
            target = state_file.with_name(state_file.name[: -len(STATE_SUFFIX)])
            state = read_state(target)
            if not state or not isinstance(state.get("repo"), str) or not isinstance(state.get("filename"), str):
                continue
            part = part_path(target)
            have = part.stat().st_size if part.exists() else 0
            filename = state["filename"]
            # A split model's later part: report the model under its first part's name.
            parts = split_parts(filename)
            first = parts[0]
            download_id = f"{state['repo']}:{first}"
            if any(p.id == download_id for p in found):
                continue
            found.append(PendingDownload(download_id, state["repo"], first, target, have,
                                         int(state.get("size") or 0), str(state.get("status")),
                                         state.get("message")))
        with self._lock:
            running = {j.id for j in self._jobs.values() if not j.finished.is_set()}
        return [p for p in found if p.id not in running]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Pause everything (the .part files stay resumable) and wait for the workers to stop."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.finished.is_set():
                job.control.request("pause")
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout)

    # -- the worker ------------------------------------------------------------------------------------

    def _job(self, download_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(download_id)
        if job is None:
            raise DownloadError(f"No download {download_id}.")
        return job

    def _start(self, job: _Job) -> None:
        self._emit(job, QUEUED, path=str(target_for(job.dest_dir, split_parts(job.filename)[0])))
        job.thread = threading.Thread(target=self._run, args=(job,), name=f"download {job.filename}",
                                      daemon=True)
        job.thread.start()

    def _run(self, job: _Job) -> None:
        while not self._slots.acquire(timeout=0.2):  # queued: still pausable and cancellable
            if job.control.reason:
                self._stopped(job, job.control.reason, 0, None)
                return
        try:
            self._transfer(job)
        finally:
            self._slots.release()

    def _transfer(self, job: _Job) -> None:
        parts = split_parts(job.filename)
        done_bytes, total, have = 0, None, 0
        try:
            remotes = [resolve_remote(job.repo, p, job.revision, control=job.control, policy=self.policy)
                       for p in parts]
            total = sum(r.size for r in remotes)
            targets = [target_for(job.dest_dir, p) for p in parts]
            self._emit(job, STARTED, total=total, path=str(targets[0]))
            for remote, target in zip(remotes, targets):
                if target.exists() and not part_path(target).exists() and target.stat().st_size == remote.size:
                    done_bytes += remote.size  # this part finished earlier
                    continue

                def progress(p: Progress, base: int = done_bytes, target: Path = target) -> None:
                    nonlocal have
                    have = base + p.bytes
                    eta = (total - have) / p.speed if p.speed > 0 else None
                    self._emit(job, PROGRESS, bytes=have, total=total, speed=p.speed, eta=eta, path=str(target))

                fetch(remote, target, control=job.control, on_progress=progress, policy=self.policy,
                      on_verifying=lambda: self._emit(job, VERIFYING, bytes=have, total=total))
                done_bytes += remote.size
            self._emit(job, DONE, bytes=total, total=total, path=str(targets[0]))
        except DownloadCancelled as stop:
            self._stopped(job, stop.reason, have, total)
        except TandemError as exc:
            self._mark_error(job, str(exc))
            self._emit(job, ERROR, bytes=have, total=total, message=str(exc), error=exc)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: report it as an error, keep the app alive
            log.exception("download %s failed", job.id)
            err = DownloadError(f"Download failed unexpectedly ({type(exc).__name__}: {exc}).")
            self._emit(job, ERROR, bytes=have, total=total, message=str(err), error=err)

    def _stopped(self, job: _Job, reason: str, have: int, total: int | None) -> None:
        if reason == "cancel":
            for part in split_parts(job.filename):
                discard(target_for(job.dest_dir, part))
            self._emit(job, CANCELLED, bytes=have, total=total,
                       message="cancelled; the partial download was deleted")
        else:
            self._mark_error(job, None, status="paused")
            have = max(have, self._bytes_on_disk(job))  # progress events are throttled; the disk is not
            self._emit(job, PAUSED, bytes=have, total=total, message="paused; resume to continue")

    def _bytes_on_disk(self, job: _Job) -> int:
        """What a resume will not fetch again: finished parts plus every ``.part`` file's length."""
        done = 0
        for part in split_parts(job.filename):
            target = target_for(job.dest_dir, part)
            partial = part_path(target)
            try:
                done += partial.stat().st_size if partial.exists() else target.stat().st_size
            except OSError:
                pass
        return done

    def _mark_error(self, job: _Job, message: str | None, status: str = "error") -> None:
        """Record why a download stopped in its state file (the GUI shows it after a restart)."""
        for part in split_parts(job.filename):
            target = target_for(job.dest_dir, part)
            state = read_state(target)
            if state is None:
                continue
            remote = RemoteFile(state["repo"], state["filename"], state.get("revision") or "main",
                                state.get("commit"), int(state.get("size") or 0), state.get("sha256"), None)
            write_state(target, remote, status, message)


def download_blocking(repo: str, filename: str, dest_dir: str | Path | None = None, *,
                      on_event: Callable[[DownloadEvent], None] | None = None,
                      policy: RetryPolicy = DEFAULT_POLICY, revision: str = "main") -> Path:
    """Download one model and wait (the CLI's path). Raises our error on failure; returns the final path."""
    manager = DownloadManager(dest_dir, max_concurrent=1, policy=policy, on_event=on_event)
    download_id = manager.download(repo, filename, revision=revision)
    try:
        event = manager.wait(download_id)
    except KeyboardInterrupt:
        manager.pause(download_id)
        manager.wait(download_id, timeout=10)
        raise
    if event is None:  # pragma: no cover - wait without timeout always returns an event
        raise DownloadError("download did not finish")
    if event.kind == DONE:
        return Path(event.path or "")
    if event.error is not None:
        raise event.error
    raise DownloadError(event.message or f"download {event.kind}")


__all__ = [
    "CANCELLED", "DONE", "DownloadEvent", "DownloadManager", "ERROR", "PAUSED", "PROGRESS", "PendingDownload",
    "QUEUED", "STARTED", "VERIFYING", "download_blocking", "split_parts",
]
