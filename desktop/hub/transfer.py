"""One file from the hub into the models folder: resumable, retried, verified, atomic.

The hub gives us the URL (``hf_hub_url``), headers and token (``build_hf_headers``), and the file's size,
commit and sha256 (``get_hf_file_metadata``: X-Linked-Size / X-Linked-Etag). The transfer itself is ours,
because huggingface_hub does not resume across calls: HTTP Range requests append to ``<target>.part``,
and a small ``<target>.part.json`` sidecar remembers what the bytes are (repo, commit, size, sha256), so a
download paused, interrupted or killed with the app resumes later and fetches only the missing bytes.

Bytes are hashed as they arrive (existing ``.part`` bytes first, on resume); a mismatch deletes them.
Only a verified file is renamed (``os.replace``) to its ``.gguf`` name, so the library never sees a
partial or corrupt model. Network errors, 5xx and 429 are retried with exponential backoff, honouring
Retry-After; 401/403 and 404 are not (they will not get better by waiting). The retry policy, progress
values and the pause/cancel control live in ``transfer_control``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import errors as hf_errors
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session

from desktop.core.errors import (
    ChecksumMismatch,
    DiskFullError,
    DownloadCancelled,
    DownloadError,
    HubError,
    TandemError,
)
from desktop.core.fit import human_bytes
from desktop.core.http_headers import retry_after_seconds
from desktop.core.settings import atomic_write_text
from desktop.hub._common import check_repo_id, endpoint, ensure_online, status_error, translate
from desktop.hub.files import safe_local_name
from desktop.hub.transfer_control import DEFAULT_POLICY, Control, Progress, Rate, RetryPolicy

log = logging.getLogger("tandem.hub.transfer")

PART_SUFFIX = ".part"
STATE_SUFFIX = ".part.json"  # beside the .part: what the bytes are, so a restart can resume
DONE_SUFFIX = ".tandem.json"  # beside the finished file: where it came from
_CHUNK = 1 << 20
_DISK_MARGIN = 64 << 20
_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _read_bigger_pieces() -> None:
    """Let the HTTP/1.1 connections read up to 1 MiB per socket read instead of 64 KiB. Every piece read is
    Python work on a download thread (h11's parser, our write, hash and progress): at loopback or LAN
    speeds two downloads made ~6,000 pieces a second, and the GIL they held stalled the window. A slow
    connection still hands over what has arrived, so nothing waits for a piece to fill."""
    try:
        from httpcore2._sync.http11 import HTTP11Connection
    except ImportError:  # another transport: it keeps its own size
        return
    HTTP11Connection.READ_NUM_BYTES = max(HTTP11Connection.READ_NUM_BYTES, _CHUNK)


_read_bigger_pieces()


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str  # path in the repo
    revision: str
    commit: str | None
    size: int
    sha256: str | None  # LFS files
    git_sha1: str | None  # small files stored in git (no LFS)


def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def state_path(target: Path) -> Path:
    return target.with_name(target.name + STATE_SUFFIX)


def read_state(target: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(target).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("version") == 1 else None
    except (OSError, ValueError):
        return None


def write_state(target: Path, remote: RemoteFile, status: str, message: str | None = None,
                extra: dict[str, Any] | None = None) -> None:
    data = {
        "version": 1, "repo": remote.repo, "filename": remote.filename, "revision": remote.revision,
        "commit": remote.commit, "size": remote.size, "sha256": remote.sha256, "status": status,
        "message": message, "updated": time.time(), **(extra or {}),
    }
    try:
        atomic_write_text(state_path(target), json.dumps(data, indent=1))
    except OSError as exc:  # the disk may be full: the .part itself is still the truth
        log.warning("could not write %s: %s", state_path(target), exc)


def target_for(dest_dir: Path, filename: str) -> Path:
    """Where a repo file lands: its base name in ``dest_dir``; never outside it."""
    name = safe_local_name(filename)
    dest_dir = Path(dest_dir)
    target = dest_dir / name
    if target.resolve().parent != dest_dir.resolve():
        raise DownloadError(f"refusing to write {filename!r} outside {dest_dir}")
    return target


def _retry_after(headers: Any) -> float | None:
    return retry_after_seconds(headers.get("Retry-After") if headers is not None else None)


def resolve_remote(repo: str, filename: str, revision: str = "main", *, control: Control | None = None,
                   policy: RetryPolicy = DEFAULT_POLICY, token: str | bool | None = None) -> RemoteFile:
    """HEAD the file through the hub client: size, commit and checksum (retried like the transfer)."""
    repo = check_repo_id(repo)
    control = control or Control()
    failures = 0
    what = f"download {filename} from {repo}"
    while True:
        ensure_online(what)
        control.check()
        url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())
        try:
            meta = get_hf_file_metadata(url, token=token, endpoint=endpoint(), retry_on_errors=False)
            break
        except hf_errors.HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if isinstance(exc, hf_errors.RepositoryNotFoundError) or status not in _RETRY_STATUS:
                if status == 404 and not isinstance(exc, hf_errors.RepositoryNotFoundError):
                    raise status_error(404, repo, f"{filename} in {repo}") from None
                raise translate(exc, repo, what) from None
            failures += 1
            wait = _retry_after(exc.response.headers if exc.response is not None else None)
        except (httpx2.TransportError, OSError) as exc:
            if isinstance(exc, hf_errors.OfflineModeIsEnabled):
                raise translate(exc, repo, what) from None
            failures += 1
            wait = None
            if failures >= policy.attempts:
                raise translate(exc, repo, what) from None
        if failures >= policy.attempts:
            raise HubError(f"Cannot {what}: Hugging Face kept failing after {failures} tries.")
        if wait is not None and wait > policy.max_retry_after:
            raise HubError(f"Cannot {what}: Hugging Face asks to wait {wait:.0f} s; try again later.")
        control.sleep(wait if wait is not None else policy.delay(failures))
    if meta.size is None:
        raise DownloadError(f"Cannot {what}: the hub did not say how big the file is.")
    etag = (meta.etag or "").lower()
    return RemoteFile(repo, filename, revision, meta.commit_hash, int(meta.size),
                      etag if _HEX64.match(etag) else None, etag if _HEX40.match(etag) else None)


def _hash_existing(path: Path, hasher: Any, control: Control) -> int:
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * _CHUNK):
            hasher.update(chunk)
            done += len(chunk)
            control.check()
    return done


def _new_hasher(remote: RemoteFile) -> Any:
    if remote.sha256 or not remote.git_sha1:
        return hashlib.sha256()
    h = hashlib.sha1()
    h.update(f"blob {remote.size}\0".encode())  # git's blob id: sha1 over a header and the content
    return h


def fetch(remote: RemoteFile, target: Path, *, control: Control | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          on_verifying: Callable[[], None] | None = None,
          policy: RetryPolicy = DEFAULT_POLICY, token: str | bool | None = None,
          progress_interval: float = 0.2) -> Path:
    """Bring ``remote`` to ``target`` (resuming ``target.part``). Raises DownloadCancelled on pause/cancel, and our
    DownloadError family (ChecksumMismatch, DiskFullError, GatedRepoError, RepoNotFound, ...) otherwise."""
    control = control or Control()
    target = Path(target)
    part = part_path(target)
    what = f"download {remote.filename} from {remote.repo}"
    old = read_state(target)
    have = part.stat().st_size if part.exists() else 0
    if have and (old is None or old.get("size") != remote.size or old.get("sha256") != remote.sha256
                 or old.get("repo") != remote.repo or old.get("filename") != remote.filename):
        log.info("discarding %s: it belongs to another version of the file", part)
        part.unlink(missing_ok=True)
        have = 0
    if have > remote.size:
        part.unlink(missing_ok=True)
        have = 0
    free = shutil.disk_usage(target.parent).free
    needed = remote.size - have
    if needed + _DISK_MARGIN > free:
        raise DiskFullError(f"Not enough disk space for {target.name}: needs {human_bytes(needed)} more, "
                            f"{human_bytes(free)} free in {target.parent}.")
    write_state(target, remote, "downloading")
    hasher = _new_hasher(remote)
    if have:
        have = _hash_existing(part, hasher, control)
    url = hf_hub_url(remote.repo, remote.filename, revision=remote.commit or remote.revision,
                     endpoint=endpoint())
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"
    timeout = httpx2.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    rate = Rate()
    last_emit = 0.0
    failures = 0

    def emit(force: bool = False) -> None:
        nonlocal last_emit
        now = time.monotonic()
        if on_progress and (force or now - last_emit >= progress_interval):
            speed = rate.add(now, have)
            eta = (remote.size - have) / speed if speed > 0 else None
            on_progress(Progress(have, remote.size, speed, eta))
            last_emit = now

    emit(force=True)
    with open(part, "r+b" if part.exists() else "w+b") as out:
        out.truncate(have)
        out.seek(have)
        while have < remote.size:
            ensure_online(what)
            control.check()
            wait: float | None = None
            start = have
            try:
                request_headers = {**headers, "Range": f"bytes={have}-"}
                with get_session().stream("GET", url, headers=request_headers, timeout=timeout,
                                          follow_redirects=True) as response:
                    control.attach(response)
                    status = response.status_code
                    if status in _RETRY_STATUS:
                        wait = _retry_after(response.headers)
                        raise _Retry(f"HTTP {status}")
                    if status == 416 and have:
                        have = 0  # our bytes do not fit the file any more: start again
                        out.seek(0)
                        out.truncate(0)
                        hasher = _new_hasher(remote)
                        raise _Retry("range not satisfiable")
                    if status >= 400:
                        raise status_error(status, remote.repo, f"{remote.filename} in {remote.repo}")
                    if status == 200 and have:  # the server ignored Range: take the whole file again
                        have = 0
                        out.seek(0)
                        out.truncate(0)
                        hasher = _new_hasher(remote)
                    elif status == 206:
                        first = _range_start(response.headers.get("Content-Range"))
                        if first != have:
                            raise _Retry(f"server sent bytes from {first}, asked for {have}")
                    first_chunk = True
                    for chunk in response.iter_raw():  # as received: a chunker would lose its buffer on a drop
                        if not chunk:
                            continue
                        room = remote.size - have
                        if len(chunk) > room:  # more bytes than the file has: keep what fits
                            chunk = chunk[:room]
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            out.flush()
                            raise _disk_error(exc, target) from None
                        hasher.update(chunk)
                        have += len(chunk)
                        emit(force=first_chunk)  # bytes are flowing again: say so at once
                        first_chunk = False
                        control.check()
                        if have >= remote.size:
                            break
            except TandemError:  # DownloadCancelled (pause/cancel) included
                out.flush()
                raise
            except (_Retry, httpx2.TransportError, OSError) as exc:
                if control.reason:
                    out.flush()
                    raise DownloadCancelled(control.reason) from None
                if isinstance(exc, hf_errors.OfflineModeIsEnabled):
                    raise translate(exc, remote.repo, what) from None
                log.info("transfer of %s interrupted at %d bytes: %s", remote.filename, have, exc)
            finally:
                control.attach(None)
            if have >= remote.size:
                break
            failures = 0 if have > start else failures + 1
            if failures >= policy.attempts:
                out.flush()
                raise DownloadError(f"Cannot {what}: the connection kept failing; the {human_bytes(have)} "
                                    "downloaded so far are kept, resume later.")
            if wait is not None and wait > policy.max_retry_after:
                raise DownloadError(f"Cannot {what}: Hugging Face asks to wait {wait:.0f} s; resume later.")
            out.flush()
            control.sleep(wait if wait is not None else policy.delay(max(failures, 1)))
        out.flush()
        os.fsync(out.fileno())
    emit(force=True)
    if on_verifying:
        on_verifying()
    digest = hasher.hexdigest()
    expected = remote.sha256 or remote.git_sha1
    if expected and digest != expected:
        part.unlink(missing_ok=True)
        state_path(target).unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{target.name}: the downloaded bytes do not match the hub's checksum (expected {expected[:12]}…, "
            f"got {digest[:12]}…); the bad download was deleted. Try again."
        )
    os.replace(part, target)
    state_path(target).unlink(missing_ok=True)
    try:
        atomic_write_text(Path(str(target) + DONE_SUFFIX), json.dumps({
            "version": 1, "repo": remote.repo, "filename": remote.filename, "commit": remote.commit,
            "size": remote.size, "sha256": remote.sha256 or None, "verified": bool(expected),
            "downloaded": time.time(),
        }, indent=1))
    except OSError:
        pass
    return target


class _Retry(Exception):
    pass


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", content_range or "")
    return int(m.group(1)) if m else None


def _disk_error(exc: OSError, target: Path) -> TandemError:
    import errno

    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return DiskFullError(f"The disk filled up while downloading {target.name}; the bytes so far are kept. "
                             "Free some space and resume.")
    return DownloadError(f"Cannot write {target.name}: {exc.strerror or exc}")


def discard(target: Path) -> None:
    """Delete a download's ``.part`` and state (cancel)."""
    part_path(target).unlink(missing_ok=True)
    state_path(target).unlink(missing_ok=True)


__all__ = [
    "DEFAULT_POLICY", "Control", "DownloadCancelled", "Progress", "RemoteFile", "RetryPolicy", "discard", "fetch",
    "part_path", "read_state", "resolve_remote", "state_path", "target_for", "write_state",
]
