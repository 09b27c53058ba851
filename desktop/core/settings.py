"""User settings: a versioned JSON file under the config dir, written atomically (temp file + os.replace).

The Hugging Face token is deliberately *not* here: it lives in the hub's own token store.
Unknown keys from a newer version are kept (so a downgrade does not lose them); bad values fall back to
defaults with a logged warning rather than stopping the app.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.errors import SettingsError

SETTINGS_VERSION = 1
log = logging.getLogger("tandem.settings")


@dataclass(frozen=True)
class Settings:
    models_dir: str = ""  # "" = the default under the data dir
    threads: int = 0  # 0 = llama.cpp's default for this machine
    gpu_layers: str = "auto"  # "auto" or a number as text
    default_ctx: int = 4096
    offline: bool = False
    theme: str = "system"  # "system", "light", "dark"
    # Free-form state the UI keeps (window geometry, last models, per-pane sampling): JSON values only.
    ui_state: dict[str, Any] = field(default_factory=dict)
    # Remote inference servers by name: {"name": {"url": ..., "api_key_env": ...}} (desktop.core.endpoints).
    # Never an API key: those live in the OS keyring.
    endpoints: dict[str, Any] = field(default_factory=dict)
    # The app's own OpenAI-compatible server (the Server page): whether it runs with the window, and where.
    # Its API key lives in the OS keyring, never here.
    server_enabled: bool = False
    server_host: str = "127.0.0.1"
    server_port: int = 8080  # 0: any free port
    extra: dict[str, Any] = field(default_factory=dict)  # keys written by a newer Tandem

    def resolved_models_dir(self) -> Path:
        if self.models_dir:
            path = Path(self.models_dir).expanduser()
            path.mkdir(parents=True, exist_ok=True)
            return path
        return paths.default_models_dir()

    def gpu_layers_value(self) -> int | str:
        return "auto" if self.gpu_layers == "auto" else int(self.gpu_layers)

    def validated(self) -> Settings:
        """Raise SettingsError (one line) for a value the app can't use."""
        if self.threads < 0 or self.threads > 512:
            raise SettingsError("Threads must be between 0 (automatic) and 512.")
        if self.gpu_layers != "auto":
            try:
                if int(self.gpu_layers) < 0:
                    raise ValueError
            except ValueError:
                raise SettingsError("GPU layers must be 'auto' or a whole number of 0 or more.") from None
        if not 128 <= self.default_ctx <= 1_048_576:
            raise SettingsError("Default context must be between 128 and 1048576 tokens.")
        if self.theme not in ("system", "light", "dark"):
            raise SettingsError("Theme must be system, light or dark.")
        if not 0 <= self.server_port <= 65535:
            raise SettingsError("The server's port must be between 0 (any free port) and 65535.")
        if not self.server_host or any(c.isspace() or c in "/?#@" for c in self.server_host):
            raise SettingsError(f"{self.server_host!r} is not a host to serve on: use an address such as "
                                "127.0.0.1 or 0.0.0.0.")
        return self


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    version = data.get("version", 1)
    # Future migrations go here: if version == 1: ...; version = 2
    data["version"] = version
    return data


def load_settings(path: Path | None = None) -> Settings:
    path = path or paths.settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("settings file %s unreadable (%s); using defaults", path, exc)
        return Settings()
    raw = _migrate(raw)
    known = {f.name for f in fields(Settings)} - {"extra"}
    defaults = Settings()
    values: dict[str, Any] = {}
    for name in known:
        if name in raw:
            expected = type(getattr(defaults, name))
            value = raw[name]
            if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
                values[name] = value
            else:
                log.warning("settings: ignoring %s=%r (expected %s)", name, value, expected.__name__)
    extra = {k: v for k, v in raw.items() if k not in known and k not in ("version", "extra")}
    settings = replace(defaults, **values, extra=extra)
    try:
        return settings.validated()
    except SettingsError as exc:
        log.warning("settings: %s Using defaults for that file.", exc)
        return replace(Settings(), ui_state=settings.ui_state, endpoints=settings.endpoints, extra=extra)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    settings.validated()
    path = path or paths.settings_path()
    data = {"version": SETTINGS_VERSION, **settings.extra, **asdict(settings)}
    data.pop("extra", None)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that a crash leaves either the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
