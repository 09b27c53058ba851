"""The local model library: every GGUF under the models folder, plus ones found in the Hugging Face cache
and LM Studio's folder (offered in place, never copied), each with its metadata, kind and pair.

Nothing half-downloaded ever shows: ``.part`` files are the downloader's, and a file is only renamed to
``.gguf`` after its checksum verified. A corrupt or foreign file is listed as *broken* with the reason,
never hidden and never fatal. Metadata reads are cached by (path, size, mtime) in memory and in a small
JSON file under the cache dir, so a rescan costs a ``stat`` per file (``library_cache``); what a file's
name and place say (split parts, pairing families, other apps' folders) is in ``library_files``.

``Library`` is thread-safe (one lock around the cache and the links file); ``scan`` does file I/O and
belongs on a worker thread, never the GUI thread.
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.catalog import Catalog, load_catalog
from desktop.core.errors import LibraryError, TandemError
from desktop.core.gguf_meta import GGUFMetadata, name_hint, read_metadata
from desktop.core.library_cache import MetaCache
from desktop.core.library_files import (
    SIDECAR_SUFFIX,
    SPLIT_NAME,
    display_name,
    family_key,
    file_size_of,
    group_parts,
    hf_cache_files,
    hf_hub_cache_dir,
    hf_repo_of,
    is_within,
    lmstudio_dirs,
    meta_family_key,
    part_path,
    same_file,
    sidecar_repo,
)
from desktop.core.settings import atomic_write_text

log = logging.getLogger("tandem.library")

SOURCES = ("library", "hf-cache", "lmstudio")
LINKS_FILE = ".tandem-links.json"  # models imported with --link: paths outside the folder


@dataclass(frozen=True)
class LibraryEntry:
    """One model as the library shows it. ``broken`` is the reason when it can't be used."""

    path: Path
    name: str  # what people see and type: the file name without .gguf (the first part's, for splits)
    source: str  # "library" | "hf-cache" | "lmstudio"
    file_size: int  # all parts together for split models
    metadata: GGUFMetadata | None
    broken: str | None = None
    kind: str | None = None  # "base" | "instruct"; None when broken
    pair: Path | None = None  # the sibling (base <-> instruct) found in the library, if any
    catalog_id: str | None = None
    repo: str | None = None  # Hugging Face repo when known (hf-cache, downloads)
    linked: bool = False  # imported with --link: the file lives elsewhere and is never deleted by us
    parts: tuple[Path, ...] = ()  # every file of a split model, in order

    @property
    def ok(self) -> bool:
        return self.broken is None

    @property
    def quant(self) -> str | None:
        return self.metadata.quantization if self.metadata else None

    def to_json(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "name": self.name, "path": str(self.path), "source": self.source, "file_size": self.file_size,
            "kind": self.kind, "broken": self.broken, "pair": str(self.pair) if self.pair else None,
            "catalog_id": self.catalog_id, "repo": self.repo, "linked": self.linked,
            "architecture": meta.architecture if meta else None,
            "parameters": meta.parameters if meta else None,
            "quantization": meta.quantization if meta else None,
            "context_length": meta.context_length if meta else None,
            "has_chat_template": meta.has_chat_template if meta else None,
            "title": meta.name if meta else None,
        }


# --- the library ------------------------------------------------------------------------------------------


class Library:
    """The models folder plus discovered models. Construct once; call ``scan()`` off the GUI thread."""

    def __init__(self, models_dir: str | os.PathLike[str] | None = None, *, catalog: Catalog | None = None,
                 discover: bool = True, hf_cache: Path | None = None, lmstudio: list[Path] | None = None,
                 cache_file: Path | None = None):
        if models_dir is None:
            from desktop.core.settings import load_settings

            models_dir = load_settings().resolved_models_dir()
        self.models_dir = Path(models_dir).expanduser()
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._catalog = catalog
        self.discover = discover
        self.hf_cache = hf_cache
        self.lmstudio = lmstudio
        self._lock = threading.RLock()
        self._cache = MetaCache(cache_file if cache_file is not None else paths.cache_dir() / "library.json")
        self._entries: list[LibraryEntry] = []

    # -- catalog ---------------------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog | None:
        if self._catalog is None:
            try:
                self._catalog = load_catalog()
            except TandemError as exc:  # a broken catalog must not hide the user's models
                log.warning("%s", exc)
                return None
        return self._catalog

    # -- scanning --------------------------------------------------------------------------------------

    def scan(self) -> list[LibraryEntry]:
        """Every model: the library's own first, then discovered ones (not already in the library)."""
        with self._lock:
            entries = [self._entry(p, "library", parts) for p, parts in group_parts(self._library_files())]
            entries += [self._entry(p, "library", (p,), linked=True) for p in self._linked_paths()]
            if self.discover:
                seen = {e.path.resolve() for e in entries if e.path.exists()}
                for source, files in (("hf-cache", self._hf_cache_files()), ("lmstudio", self._lmstudio_files())):
                    for path, parts in group_parts(files):
                        try:
                            real = path.resolve()
                        except OSError:
                            continue
                        if real not in seen:
                            seen.add(real)
                            entries.append(self._entry(path, source, parts))
            entries = [e for e in entries if not _is_auxiliary(e)]
            entries = [replace(e, pair=self._pair_path(e, entries)) for e in entries]
            self._cache.save()
            self._entries = entries
            return list(entries)

    def has_files(self) -> bool:
        """Whether a scan would find any model file at all. Lists folders only (no header is read), so the
        first start can open on the page that fits before the window shows."""
        with self._lock:
            if self._library_files() or self._linked_paths():
                return True
            return self.discover and bool(self._hf_cache_files() or self._lmstudio_files())

    def entries(self) -> list[LibraryEntry]:
        """The result of the last scan (scans once if never scanned)."""
        with self._lock:
            return list(self._entries) if self._entries else self.scan()

    def _library_files(self) -> list[Path]:
        found = []
        for root, dirs, files in os.walk(self.models_dir, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.lower().endswith(".gguf") and not name.startswith("."):
                    found.append(Path(root) / name)
        return sorted(found)

    def _hf_cache_files(self) -> list[Path]:
        return hf_cache_files(self.hf_cache if self.hf_cache is not None else hf_hub_cache_dir())

    def _lmstudio_files(self) -> list[Path]:
        found = []
        for root in self.lmstudio if self.lmstudio is not None else lmstudio_dirs():
            if root.is_dir():
                found += [p for p in root.rglob("*.gguf") if len(p.relative_to(root).parts) <= 4]
        return sorted(found)

    def _entry(self, path: Path, source: str, parts: tuple[Path, ...], linked: bool = False) -> LibraryEntry:
        name = display_name(path)
        repo = hf_repo_of(path) if source == "hf-cache" else sidecar_repo(path)
        missing = [p for p in parts if not p.exists()]
        if missing:
            broken = (f"incomplete split model: missing part {SPLIT_NAME.match(missing[0].name).group('index')}"
                      if len(parts) > 1 and SPLIT_NAME.match(missing[0].name) else "the file is missing")
            return LibraryEntry(path, name, source, 0, None, broken, repo=repo, linked=linked, parts=parts)
        meta, broken = self._cache.read(path)
        size = sum(file_size_of(p) for p in parts)
        if meta is not None and len(parts) > 1:
            params = meta.parameters
            for extra in parts[1:]:
                extra_meta, extra_broken = self._cache.read(extra)
                if extra_broken:
                    meta, broken = None, f"part {extra.name}: {extra_broken}"
                    break
                params += extra_meta.parameters
            if meta is not None:
                meta = replace(meta, parameters=params, file_size=size)
        if meta is None:
            return LibraryEntry(path, name, source, size, None, broken, repo=repo, linked=linked, parts=parts)
        kind, catalog_id = meta.kind, None
        found = self.catalog.match_file(path.name) if self.catalog else None
        if found:  # the catalog knows which file is the base model, even when a base ships a template
            catalog_id, kind = found[0].id, found[1]
            repo = repo or found[2].repo
        return LibraryEntry(path, name, source, size, meta, None, kind, catalog_id=catalog_id, repo=repo,
                            linked=linked, parts=parts)

    # -- pairs -----------------------------------------------------------------------------------------

    def pair_for(self, entry: LibraryEntry, entries: list[LibraryEntry] | None = None) -> LibraryEntry | None:
        """The sibling of ``entry`` (base <-> instruct) among ``entries`` (default: the last scan)."""
        entries = self.entries() if entries is None else entries
        path = self._pair_path(entry, entries)
        return next((e for e in entries if e.path == path), None) if path else None

    def _pair_path(self, entry: LibraryEntry, entries: list[LibraryEntry]) -> Path | None:
        if not entry.ok or entry.kind not in ("base", "instruct"):
            return None
        want = "instruct" if entry.kind == "base" else "base"
        candidates = [e for e in entries if e.ok and e.kind == want and e.path != entry.path]
        if not candidates:
            return None
        # 1. The catalog's sibling file names, the same quant first.
        if self.catalog:
            for sibling in self.catalog.sibling_files(entry.path.name):
                for cand in candidates:
                    if cand.path.name.lower() == sibling.file.lower():
                        return cand.path
        # 2. Same family and size by name or metadata, same architecture and vocabulary.
        meta = entry.metadata
        keys = {family_key(entry.name)} | ({meta_family_key(meta)} - {None})
        matches = []
        for cand in candidates:
            cm = cand.metadata
            if cm.architecture != meta.architecture:
                continue
            if meta.vocab_size and cm.vocab_size and meta.vocab_size != cm.vocab_size:
                continue
            if (meta.n_layer, meta.n_embd) != (cm.n_layer, cm.n_embd):
                continue
            cand_keys = {family_key(cand.name)} | ({meta_family_key(cm)} - {None})
            if keys & cand_keys:
                matches.append(cand)
        if not matches:
            return None
        matches.sort(key=lambda c: (c.quant != entry.quant, c.source != entry.source, c.source != "library",
                                    str(c.path)))
        return matches[0].path

    # -- import and remove -----------------------------------------------------------------------------

    def check_importable(self, path: str | os.PathLike[str]) -> Path:
        """The resolved path of a GGUF file that ``import_file`` would accept; LibraryError/ModelFileError if not."""
        src = Path(path).expanduser()
        if not src.is_file():
            raise LibraryError(f"no such file: {src}")
        if not src.name.lower().endswith(".gguf"):
            raise LibraryError(f"{src.name} is not a .gguf file")
        read_metadata(src)  # raises ModelFileError with the reason: nothing broken gets in
        return src.resolve()

    def import_file(self, path: str | os.PathLike[str], link: bool = False) -> LibraryEntry:
        """Copy a GGUF into the models folder (or, with ``link``, list it where it is). Validates first.

        Importing a file that is already in the library byte for byte does nothing (so a set-up command
        can be run twice); a different file of the same name is refused."""
        src = self.check_importable(path)
        with self._lock:
            if is_within(src, self.models_dir):
                return self._entry(src, "library", (src,))
            if link:
                links = self._linked_paths()
                if src not in links:
                    self._write_links(links + [src])
                return self._entry(src, "library", (src,), linked=True)
            dest = self.models_dir / src.name
            if dest.exists() and dest.stat().st_size == src.stat().st_size and filecmp.cmp(src, dest, shallow=False):
                return self._entry(dest, "library", (dest,))
            if dest.exists():
                raise LibraryError(f"{dest.name} is already in the library; remove it first to replace it")
            free = shutil.disk_usage(self.models_dir).free
            size = src.stat().st_size
            if size > free:
                raise LibraryError(f"not enough disk space to copy {src.name}: needs {size:,} bytes, "
                                   f"{free:,} free in {self.models_dir}")
            tmp = dest.with_name(f".{dest.name}.importing")
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise LibraryError(f"could not copy {src.name}: {exc.strerror or exc}") from None
            return self._entry(dest, "library", (dest,))

    def remove(self, name_or_path: str | os.PathLike[str]) -> list[Path]:
        """Remove a library model by name or path, with its parts, ``.part`` and sidecars.

        A linked model is only unlisted (its file is not ours); a model found in the Hugging Face cache
        or LM Studio's folder is refused with a message naming where it lives. Returns what was deleted.
        """
        with self._lock:
            target = self._resolve_name(name_or_path)
            if isinstance(target, LibraryEntry) and target.source != "library":
                where = "the Hugging Face cache" if target.source == "hf-cache" else "LM Studio's models folder"
                raise LibraryError(f"{target.name} lives in {where} ({target.path}); Tandem only lists it there. "
                                   "Delete it with the tool that downloaded it.")
            if isinstance(target, LibraryEntry) and target.linked:
                self._write_links([p for p in self._linked_paths() if p != target.path])
                self._cache.forget(target.path)
                self._cache.save()
                self._entries = [e for e in self._entries if e.path != target.path]
                return []
            files = list(target.parts) if isinstance(target, LibraryEntry) else [target]
            removed = []
            for f in files:
                for victim in (f, part_path(f), Path(str(part_path(f)) + ".json"), Path(str(f) + SIDECAR_SUFFIX)):
                    if not is_within(victim, self.models_dir):
                        continue
                    try:
                        victim.unlink()
                        removed.append(victim)
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        raise LibraryError(f"could not delete {victim.name}: {exc.strerror or exc}") from None
                self._cache.forget(f)
            self._cache.save()
            self._entries = [e for e in self._entries if e.path not in files]
            return removed

    def _resolve_name(self, name_or_path: str | os.PathLike[str]) -> LibraryEntry | Path:
        text = str(name_or_path)
        entries = self.scan()
        as_path = Path(text).expanduser()
        for e in entries:
            if e.path == as_path or (as_path.is_absolute() and as_path.exists() and same_file(e.path, as_path)):
                return e
        matches = [e for e in entries if text in (e.name, e.path.name)]
        library = [e for e in matches if e.source == "library"]
        if len(library) == 1 or (len(matches) == 1):
            return (library or matches)[0]
        if len(library) > 1:
            raise LibraryError(f"{text!r} matches several models; give the path: "
                               + ", ".join(str(e.path) for e in library))
        # Only a paused/failed download left: its .part (and sidecar) can be removed by name too.
        stem = text[:-5] if text.lower().endswith(".gguf") else text
        candidate = self.models_dir / f"{stem}.gguf"
        if is_within(candidate, self.models_dir) and part_path(candidate).exists():
            return candidate
        raise LibraryError(f"no model named {text!r} in the library; `tandem models list` shows them")

    # -- links file ------------------------------------------------------------------------------------

    def _linked_paths(self) -> list[Path]:
        file = self.models_dir / LINKS_FILE
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
            return [Path(p) for p in raw.get("paths", []) if isinstance(p, str)]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, AttributeError):
            log.warning("%s is unreadable; linked models are not listed", file)
            return []

    def _write_links(self, links: list[Path]) -> None:
        atomic_write_text(self.models_dir / LINKS_FILE,
                          json.dumps({"version": 1, "paths": [str(p) for p in links]}, indent=1))


# --- helpers ----------------------------------------------------------------------------------------------


def _is_auxiliary(entry: LibraryEntry) -> bool:
    """Vision projectors and importance matrices are GGUF files but not language models."""
    if entry.name.lower().startswith(("mmproj", "imatrix")):
        return True
    meta = entry.metadata
    if meta is None:
        return False
    return meta.kv.get("general.type") in ("mmproj", "imatrix", "adapter") or meta.architecture == "clip"


__all__ = ["Library", "LibraryEntry", "family_key", "hf_hub_cache_dir", "lmstudio_dirs", "name_hint"]
