"""The library's metadata cache: (path, size, mtime) -> a file's metadata or its broken reason.

Split from ``library``: reading a GGUF header costs milliseconds per file, so a rescan reads each file once
and then costs a ``stat``; the cache persists as a small JSON file (best effort: an unreadable or unwritable
cache only costs a rebuild, never a model).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from desktop.core.errors import ModelFileError
from desktop.core.gguf_meta import GGUFMetadata, read_metadata
from desktop.core.settings import atomic_write_text

log = logging.getLogger("tandem.library")

_CACHE_VERSION = 1


class MetaCache:
    """(path, size, mtime_ns) -> metadata or broken reason; persisted as JSON (best effort)."""

    def __init__(self, file: Path | None):
        self.file = file
        self.data: dict[str, dict[str, Any]] = {}
        self.dirty = False
        if file and file.is_file():
            try:
                raw = json.loads(file.read_text(encoding="utf-8"))
                if raw.get("version") == _CACHE_VERSION and isinstance(raw.get("entries"), dict):
                    self.data = raw["entries"]
            except (OSError, ValueError, AttributeError):
                log.warning("library cache %s unreadable; rebuilding it", file)

    @staticmethod
    def _key(path: Path, st: os.stat_result) -> str:
        return f"{path}|{st.st_size}|{st.st_mtime_ns}"

    def read(self, path: Path) -> tuple[GGUFMetadata | None, str | None]:
        try:
            st = path.stat()
        except OSError as exc:
            return None, f"cannot read the file: {exc.strerror or exc}"
        key = self._key(path, st)
        hit = self.data.get(key)
        if hit is not None:
            if hit.get("broken"):
                return None, hit["broken"]
            try:
                return _meta_from_json(hit["meta"]), None
            except (KeyError, TypeError):
                pass
        try:
            meta, broken = read_metadata(path), None
        except ModelFileError as exc:
            meta, broken = None, str(exc)
        # Drop older entries for this path, keep the new one.
        prefix = f"{path}|"
        for old in [k for k in self.data if k.startswith(prefix)]:
            del self.data[old]
        self.data[key] = {"broken": broken} if broken else {"meta": _meta_to_json(meta)}
        self.dirty = True
        return meta, broken

    def forget(self, path: Path) -> None:
        prefix = f"{path}|"
        for old in [k for k in self.data if k.startswith(prefix)]:
            del self.data[old]
            self.dirty = True

    def save(self) -> None:
        if not (self.file and self.dirty):
            return
        try:
            atomic_write_text(self.file, json.dumps({"version": _CACHE_VERSION, "entries": self.data}))
            self.dirty = False
        except OSError as exc:
            log.warning("could not save the library cache: %s", exc)


def _meta_to_json(meta: GGUFMetadata) -> dict[str, Any]:
    return asdict(meta)


def _meta_from_json(data: dict[str, Any]) -> GGUFMetadata:
    known = {f.name for f in fields(GGUFMetadata)}
    return GGUFMetadata(**{k: v for k, v in data.items() if k in known})
