"""What every hub call shares: the endpoint, the offline guard, and turning hub errors into ours.

The endpoint is read at call time (``HF_ENDPOINT``, else huggingface_hub's constant), because
huggingface_hub reads it once at import and a test, or a user switching mirrors, may change it later.
``ensure_online`` runs before any request is built: with Tandem's offline setting or ``HF_HUB_OFFLINE``
on, nothing leaves the machine, not even a DNS lookup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

import httpx2
from huggingface_hub import constants
from huggingface_hub import errors as hf_errors

from desktop.core.errors import (
    DownloadError,
    GatedRepoError,
    HubError,
    OfflineError,
    RepoNotFound,
    TandemError,
)

T = TypeVar("T")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def is_offline() -> bool:
    """Tandem's offline setting, or the hub's own HF_HUB_OFFLINE (read now, not at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    if os.environ.get("TRANSFORMERS_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from desktop.core.settings import load_settings

    return load_settings().offline


def ensure_online(what: str) -> None:
    if is_offline():
        source = ("HF_HUB_OFFLINE is set (offline mode)" if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
                  else "offline mode is on in Tandem's settings")
        raise OfflineError(f"Cannot {what}: {source}, so nothing is sent over the network. "
                           "Models already on disk still work.")


def check_repo_id(repo: str) -> str:
    repo = repo.strip()
    if not _REPO_ID.match(repo) or ".." in repo:
        raise RepoNotFound(f"{repo!r} is not a Hugging Face repository id (expected owner/name)")
    return repo


def translate(exc: BaseException, repo: str, what: str) -> TandemError:
    """One of our errors, with a message a person understands, for an exception from the hub client."""
    if isinstance(exc, TandemError):
        return exc
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return OfflineError(f"Cannot {what}: the Hugging Face hub is in offline mode (HF_HUB_OFFLINE).")
    if isinstance(exc, hf_errors.GatedRepoError):
        return gated_error(repo)
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return RepoNotFound(f"{repo} has no such revision")
    if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
        return RepoNotFound(f"{repo} has no such file ({what})")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return RepoNotFound(f"No repository {repo} on Hugging Face (or it is private and needs a token).")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return status_error(status, repo, what, server_message=getattr(exc, "server_message", None))
    if isinstance(exc, httpx2.TimeoutException):
        return HubError(f"Cannot {what}: Hugging Face did not answer in time ({endpoint()}).")
    if isinstance(exc, (httpx2.TransportError, ConnectionError, OSError)):
        return HubError(f"Cannot {what}: could not reach {endpoint()} ({type(exc).__name__}).")
    return HubError(f"Cannot {what}: {type(exc).__name__}: {exc}")


def gated_error(repo: str) -> GatedRepoError:
    return GatedRepoError(
        f"{repo} is gated: it needs a Hugging Face token (Settings, or HF_TOKEN) from an account that has "
        f"accepted the model's licence on https://huggingface.co/{repo}."
    )


def status_error(status: int | None, repo: str, what: str, server_message: str | None = None) -> TandemError:
    if status in (401, 403):
        return gated_error(repo)
    if status == 404:
        return RepoNotFound(f"Not found on Hugging Face: {what} ({repo}).")
    if status == 416:
        return DownloadError(f"Cannot {what}: the server refused the byte range requested.")
    if status == 429:
        return HubError(f"Cannot {what}: Hugging Face is rate limiting requests; try again in a few minutes.")
    detail = f": {server_message}" if server_message else ""
    return HubError(f"Cannot {what}: Hugging Face answered HTTP {status}{detail}.")


def call(fn: Callable[[], T], repo: str, what: str) -> T:
    """Run a hub call (after the offline guard), translating anything it raises."""
    ensure_online(what)
    try:
        return fn()
    except TandemError:
        raise
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one of ours
        raise translate(exc, repo, what) from exc


def get_json_pages(url: str, params: dict | None, repo: str, what: str, *, attempts: int = 3,
                   base_delay: float = 0.5, max_pages: int = 50) -> list:
    """GET a hub API list through the hub's session and headers, following ``Link: next`` pages.

    Our own short retry (``attempts``) instead of huggingface_hub's 5 retries over ~25 s: a search box
    should say "cannot reach Hugging Face" in a second or two, not half a minute.
    """
    import time

    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    ensure_online(what)
    headers = build_hf_headers()
    items: list = []
    next_url: str | None = url
    first = True
    pages = 0
    while next_url and pages < max_pages:
        for attempt in range(1, attempts + 1):
            ensure_online(what)
            try:
                response = get_session().get(next_url, params=params if first else None, headers=headers,
                                             timeout=15.0)
                if response.status_code in (429, 500, 502, 503, 504) and attempt < attempts:
                    time.sleep(base_delay * 2 ** (attempt - 1))
                    continue
                hf_raise_for_status(response)
                data = response.json()
                break
            except (httpx2.TransportError, OSError) as exc:
                if attempt >= attempts or isinstance(exc, hf_errors.OfflineModeIsEnabled):
                    raise translate(exc, repo, what) from exc
                time.sleep(base_delay * 2 ** (attempt - 1))
            except TandemError:
                raise
            except ValueError as exc:
                raise HubError(f"Cannot {what}: Hugging Face sent an unreadable answer.") from exc
            except Exception as exc:  # noqa: BLE001
                raise translate(exc, repo, what) from exc
        if not isinstance(data, list):
            raise HubError(f"Cannot {what}: Hugging Face sent an unexpected answer.")
        items.extend(data)
        next_url = response.links.get("next", {}).get("url")
        first = False
        pages += 1
    return items
