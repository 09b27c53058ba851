"""A rotating log file under the log dir; tracebacks go here, never onto the user's screen."""

from __future__ import annotations

import logging
import logging.handlers
import os
import traceback
from pathlib import Path

from desktop.core import paths

_configured = False


def log_file() -> Path:
    return paths.log_dir() / "tandem.log"


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    global _configured
    logger = logging.getLogger("tandem")
    if not _configured:
        handler = logging.handlers.RotatingFileHandler(log_file(), maxBytes=2_000_000, backupCount=3,
                                                       encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)
        _configured = True
    return logger


def tail(path: str | os.PathLike | None, lines: int = 20, max_bytes: int = 16384) -> str:
    """The last lines of a log file ("" if there is none): what a crashed worker wrote last."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def log_exception(context: str) -> Path:
    """Write the current exception's traceback to the log; returns the log file's path."""
    setup_logging().error("%s\n%s", context, traceback.format_exc())
    return log_file()
