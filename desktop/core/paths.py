"""Where Tandem keeps its files. One module so every part agrees.

By default the platform's own folders (via platformdirs). The single variable ``TANDEM_HOME`` moves all
of them under one folder, for tests and portable installs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "Tandem"
APP_AUTHOR = "Tandem"
APP_ID = "io.github.tandem_llm.Tandem"


def _home() -> Path | None:
    value = os.environ.get("TANDEM_HOME", "").strip()
    return Path(value).expanduser().resolve() if value else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    home = _home()
    return _ensure(home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)))


def data_dir() -> Path:
    home = _home()
    return _ensure(home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)))


def cache_dir() -> Path:
    home = _home()
    return _ensure(home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)))


def log_dir() -> Path:
    home = _home()
    return _ensure(home / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR)))


def default_models_dir() -> Path:
    """The models folder unless the user chose another one in settings."""
    return _ensure(data_dir() / "models")


def history_db_path() -> Path:
    return data_dir() / "history.sqlite3"


def settings_path() -> Path:
    return config_dir() / "settings.json"


def resources_dir() -> Path:
    """The ``resources/`` folder: inside a PyInstaller bundle, or beside the package in a checkout."""
    bundle = getattr(sys, "_MEIPASS", None)
    candidates = []
    if bundle:
        candidates.append(Path(bundle) / "resources")
    here = Path(__file__).resolve()
    candidates.append(here.parents[2] / "resources")  # checkout / editable install
    candidates.append(here.parents[1] / "resources")  # installed wheel (desktop/resources)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]
