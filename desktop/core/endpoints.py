"""Remote inference servers the user has named: name and base URL in settings, the API key in the OS keyring.

The key is never written to the settings file, a log, the history or an export: it goes to ``keyring``
under the service ``tandem-endpoints`` and the endpoint's name. A machine without a keyring backend
(headless Linux with no Secret Service) gets one line saying so, and the endpoint may instead name an
environment variable (``api_key_env``) that holds the key when Tandem runs; only the variable's *name* is
stored. Qt-free: the CLI uses it now, the Settings page later.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from desktop.core.errors import EndpointError
from desktop.core.settings import load_settings, save_settings

KEYRING_SERVICE = "tandem-endpoints"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NO_KEYRING_NOTE = ("No OS keyring is available here (headless Linux without a Secret Service), so Tandem "
                   "can't store API keys; use --api-key-env VAR to read the key from an environment variable.")


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    api_key_env: str = ""  # the environment variable to read the key from ("" = the keyring)

    def as_json(self, has_key: bool | None = None) -> dict:
        out = {"name": self.name, "url": self.url, "api_key_env": self.api_key_env or None}
        if has_key is not None:
            out["api_key_stored"] = has_key
        return out


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine, decided from the text alone (no DNS)."""
    host = (urlsplit(url).hostname or "").strip().lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(url: str) -> str:
    """``http://host:port`` without a trailing slash or ``/v1``; ValueError with one line otherwise."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) address like http://gpu-box:8000")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{netloc}{f':{port}' if port else ''}{path}"


def looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith(("localhost", "[")) or bool(re.match(r"^[\w.-]+:\d+(/.*)?$", text))


def keyring_status() -> tuple[bool, str]:
    """(usable, note): whether an OS keyring backend is there, and one line when it is not."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring install is the same as none, for us
        return False, f"{NO_KEYRING_NOTE} ({type(exc).__name__})"
    inner = getattr(backend, "backends", None)
    if isinstance(backend, fail.Keyring) or (inner is not None and not inner):
        return False, NO_KEYRING_NOTE
    return True, ""


def keyring_get(service: str, name: str) -> str | None:
    """The secret stored under (service, name), or None (none stored, or no keyring here). The endpoints'
    keys and the app server's key (the Server page) both go through these three."""
    ok, _ = keyring_status()
    if not ok:
        return None
    import keyring

    try:
        return keyring.get_password(service, name) or None
    except Exception as exc:
        raise EndpointError(f"The OS keyring could not be read ({type(exc).__name__}).") from None


def keyring_set(service: str, name: str, secret: str) -> None:
    import keyring

    try:
        keyring.set_password(service, name, secret)
    except Exception as exc:
        raise EndpointError(f"The OS keyring refused to store the key ({type(exc).__name__}).") from None


def keyring_delete(service: str, name: str) -> None:
    ok, _ = keyring_status()
    if not ok:
        return
    import keyring

    try:
        keyring.delete_password(service, name)
    except Exception:  # nothing stored: nothing to delete
        pass


class EndpointStore:
    """Add, list, look up and remove endpoints. ``settings_path`` None = the user's settings file."""

    def __init__(self, settings_path: Path | None = None):
        self._path = settings_path

    def _raw(self) -> dict:
        return dict(load_settings(self._path).endpoints)

    def _save(self, endpoints: dict) -> None:
        save_settings(replace(load_settings(self._path), endpoints=endpoints), self._path)

    def list(self) -> list[Endpoint]:
        out = []
        for name, value in sorted(self._raw().items()):
            if isinstance(value, dict) and isinstance(value.get("url"), str):
                out.append(Endpoint(name, value["url"], str(value.get("api_key_env") or "")))
        return out

    def get(self, name: str) -> Endpoint:
        for ep in self.list():
            if ep.name == name:
                return ep
        known = ", ".join(e.name for e in self.list()) or "none yet"
        raise EndpointError(f"No endpoint named {name!r} (known: {known}); add it with "
                            "`tandem endpoints add NAME URL`.")

    def add(self, name: str, url: str, *, api_key: str | None = None, api_key_env: str | None = None) -> Endpoint:
        """Save ``name`` -> ``url``. The key goes to the keyring; without one, only ``api_key_env`` is kept."""
        if not _NAME.match(name or ""):
            raise EndpointError(f"{name!r} is not a usable endpoint name: use up to 40 letters, digits, '.', '_' "
                                "or '-', starting with a letter or digit.")
        try:
            url = normalize_base_url(url)
        except ValueError as exc:
            raise EndpointError(f"Can't add endpoint {name!r}: {exc}.") from None
        if api_key_env and not _ENV.match(api_key_env):
            raise EndpointError(f"{api_key_env!r} is not an environment variable name.")
        env_kept = ""
        if api_key:
            ok, note = keyring_status()
            if ok:
                self._set_key(name, api_key)
            elif api_key_env:
                env_kept = api_key_env
            else:
                raise EndpointError(note)
        elif api_key_env:
            env_kept = api_key_env
        if not api_key or env_kept:
            # No key to store (or it lives in an environment variable now): a key stored before must not stay
            # behind in the keyring, unused but readable, once the endpoint reads its key from elsewhere.
            self._delete_key(name)
        endpoints = self._raw()
        endpoints[name] = {"url": url, **({"api_key_env": env_kept} if env_kept else {})}
        self._save(endpoints)
        return Endpoint(name, url, env_kept)

    def remove(self, name: str) -> None:
        self.get(name)
        endpoints = self._raw()
        endpoints.pop(name, None)
        self._save(endpoints)
        self._delete_key(name)

    def api_key(self, ep: Endpoint) -> str | None:
        """The key to send, or None (no key needed). EndpointError when the named variable is unset."""
        if ep.api_key_env:
            value = os.environ.get(ep.api_key_env, "").strip()
            if not value:
                raise EndpointError(f"Endpoint {ep.name!r} reads its API key from ${ep.api_key_env}, which is "
                                    "not set.")
            return value
        return keyring_get(KEYRING_SERVICE, ep.name)

    def has_key(self, ep: Endpoint) -> bool:
        try:
            return self.api_key(ep) is not None
        except EndpointError:
            return False

    def _set_key(self, name: str, key: str) -> None:
        keyring_set(KEYRING_SERVICE, name, key)

    def _delete_key(self, name: str) -> None:
        keyring_delete(KEYRING_SERVICE, name)

    def resolve(self, name_or_url: str) -> tuple[str, str | None, str]:
        """(base URL, API key or None, label) for ``--endpoint NAME|URL``."""
        if looks_like_url(name_or_url) and not _NAME.match(name_or_url):
            try:
                return normalize_base_url(name_or_url), None, name_or_url
            except ValueError as exc:
                raise EndpointError(f"{exc}.") from None
        ep = self.get(name_or_url)
        return ep.url, self.api_key(ep), ep.name
