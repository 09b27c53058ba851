"""The catalog of base/instruct pairs Tandem offers (``resources/catalog.json``), loaded and validated.

Pairs are the unit: every entry has a base and an instruct variant of the same family and size, each
naming its Hugging Face repo and one file per offered quantization. The catalog also carries each
model's shape (layers, widths, heads, vocab) so the fit estimate works before anything is downloaded.
A malformed catalog is a bug in a release, so ``load_catalog`` fails loudly (LibraryError) with the
first problem it finds; the tests run the same validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from desktop.core import paths
from desktop.core.errors import LibraryError
from desktop.core.fit import FITS, FitEstimate, estimate_fit

KINDS = ("base", "instruct")


@dataclass(frozen=True)
class CatalogFile:
    quant: str
    repo: str  # usually the variant's repo; a file may come from another quantizer's repo
    file: str
    size: int  # bytes, approximate unless confirmed; the hub's size wins at download time
    evidence: str

    @property
    def confirmed(self) -> bool:
        return not self.evidence.startswith("unconfirmed")


@dataclass(frozen=True)
class Variant:
    kind: str  # "base" | "instruct"
    repo: str
    default_quant: str
    files: tuple[CatalogFile, ...]
    context_length: int

    def file_for(self, quant: str | None = None) -> CatalogFile:
        quant = quant or self.default_quant
        for f in self.files:
            if f.quant.lower() == quant.lower():
                return f
        raise LibraryError(f"{self.repo} offers no {quant} file in the catalog "
                           f"(offered: {', '.join(f.quant for f in self.files)})")

    @property
    def quants(self) -> tuple[str, ...]:
        return tuple(f.quant for f in self.files)


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int


@dataclass(frozen=True)
class Family:
    """One catalog entry: a base and an instruct model of one family and size."""

    id: str
    family: str
    size: str
    license: str
    context_length: int
    shape: Shape
    base: Variant
    instruct: Variant
    note: str = ""

    @property
    def title(self) -> str:
        return f"{self.family} {self.size}"

    def variant(self, kind: str) -> Variant:
        if kind not in KINDS:
            raise LibraryError(f"kind must be base or instruct, not {kind!r}")
        return self.base if kind == "base" else self.instruct

    def pair_fit(self, free_ram: int | None, n_ctx: int = 4096, quant: str | None = None,
                 free_vram: int | None = None) -> FitEstimate:
        """Fit of base and instruct loaded together (the Compare pane), at their default quants."""
        b = self.base.file_for(quant if quant in self.base.quants else None)
        i = self.instruct.file_for(quant if quant in self.instruct.quants else None)
        s = self.shape
        return estimate_fit(b.size + i.size, s.n_layer, s.n_embd, s.n_head, s.n_head_kv, n_ctx,
                            free_ram, free_vram, head_dim=s.head_dim, n_models=2)

    def to_json(self) -> dict[str, Any]:
        def variant(v: Variant) -> dict[str, Any]:
            return {
                "repo": v.repo, "default_quant": v.default_quant, "context_length": v.context_length,
                "files": [{"quant": f.quant, "repo": f.repo, "file": f.file, "size": f.size,
                           "confirmed": f.confirmed, "evidence": f.evidence} for f in v.files],
            }

        return {"id": self.id, "family": self.family, "size": self.size, "license": self.license,
                "context_length": self.context_length, "base": variant(self.base),
                "instruct": variant(self.instruct), "note": self.note}


@dataclass(frozen=True)
class Catalog:
    families: tuple[Family, ...]

    def get(self, family_id: str) -> Family:
        for fam in self.families:
            if fam.id == family_id:
                return fam
        raise LibraryError(f"no catalog entry {family_id!r}; see `tandem catalog` for the list")

    def match_file(self, filename: str) -> tuple[Family, str, CatalogFile] | None:
        """The catalog entry a downloaded file came from, by its file name (case-insensitive)."""
        name = Path(filename).name.lower()
        for fam in self.families:
            for kind in KINDS:
                for f in fam.variant(kind).files:
                    if f.file.lower() == name:
                        return fam, kind, f
        return None

    def sibling_files(self, filename: str) -> list[CatalogFile]:
        """The other kind's files for a catalog file, the same quant first."""
        found = self.match_file(filename)
        if not found:
            return []
        fam, kind, f = found
        other = fam.variant("instruct" if kind == "base" else "base")
        return sorted(other.files, key=lambda g: (g.quant != f.quant, g.quant != other.default_quant))

    def pairs_by_size(self) -> list[Family]:
        return sorted(self.families, key=lambda fam: fam.base.file_for().size + fam.instruct.file_for().size)

    def smallest_pair_that_fits(self, free_ram: int | None, n_ctx: int = 4096,
                                free_vram: int | None = None) -> Family | None:
        """The smallest pair whose two default files and KV caches fit comfortably (verdict "fits")."""
        for fam in self.pairs_by_size():
            if fam.pair_fit(free_ram, n_ctx, free_vram=free_vram).verdict == FITS:
                return fam
        return None


# --- loading and validation -----------------------------------------------------------------------------


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise LibraryError(f"catalog: {where}: {what}")


def _variant(raw: Any, kind: str, where: str, family_ctx: int) -> Variant:
    _require(isinstance(raw, dict), where, f"{kind} must be an object")
    repo = raw.get("repo")
    _require(isinstance(repo, str) and repo.count("/") == 1 and ".." not in repo, where, f"bad {kind} repo {repo!r}")
    files_raw = raw.get("files")
    _require(isinstance(files_raw, dict) and files_raw, where, f"{kind} has no files")
    files = []
    for quant, f in files_raw.items():
        _require(isinstance(f, dict), where, f"{kind} {quant} must be an object")
        name, size, evidence = f.get("file"), f.get("size"), f.get("evidence")
        _require(isinstance(name, str) and name.lower().endswith(".gguf") and "/" not in name
                 and "\\" not in name and ".." not in name, where, f"bad file name {name!r}")
        _require(isinstance(size, int) and size > 0, where, f"{name} needs a size in bytes")
        _require(isinstance(evidence, str) and evidence.strip(), where, f"{name} needs evidence")
        file_repo = f.get("repo", repo)
        _require(isinstance(file_repo, str) and file_repo.count("/") == 1, where, f"bad repo for {name}")
        files.append(CatalogFile(quant, file_repo, name, size, evidence))
    default = raw.get("default_quant")
    _require(default in files_raw, where, f"{kind} default quant {default!r} is not among its files")
    ctx = raw.get("context_length", family_ctx)
    _require(isinstance(ctx, int) and ctx > 0, where, f"{kind} context_length must be a positive number")
    return Variant(kind, repo, default, tuple(files), ctx)


def parse_catalog(data: Any) -> Catalog:
    _require(isinstance(data, dict) and data.get("version") == 1, "file", "expected version 1")
    families_raw = data.get("families")
    _require(isinstance(families_raw, list) and families_raw, "file", "no families")
    families = []
    seen: set[str] = set()
    for i, raw in enumerate(families_raw):
        where = f"family #{i}"
        _require(isinstance(raw, dict), where, "must be an object")
        fid = raw.get("id")
        _require(isinstance(fid, str) and fid and fid not in seen, where, f"missing or duplicate id {fid!r}")
        seen.add(fid)
        where = fid
        for key in ("family", "size", "license"):
            _require(isinstance(raw.get(key), str) and raw[key], where, f"needs {key}")
        ctx = raw.get("context_length")
        _require(isinstance(ctx, int) and ctx > 0, where, "needs context_length")
        shape_raw = raw.get("shape")
        _require(isinstance(shape_raw, dict), where, "needs shape")
        try:
            shape = Shape(**{k: int(shape_raw[k]) for k in Shape.__dataclass_fields__})
        except (KeyError, TypeError, ValueError):
            raise LibraryError(f"catalog: {where}: shape needs {', '.join(Shape.__dataclass_fields__)}") from None
        base = _variant(raw.get("base"), "base", where, ctx)
        instruct = _variant(raw.get("instruct"), "instruct", where, ctx)
        families.append(Family(fid, raw["family"], raw["size"], raw["license"], ctx, shape, base, instruct,
                               raw.get("note", "")))
    return Catalog(tuple(families))


def catalog_path() -> Path:
    return paths.resources_dir() / "catalog.json"


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Catalog:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LibraryError(f"catalog: cannot read {path}: {exc}") from None
    return parse_catalog(data)


def load_catalog(path: Path | None = None) -> Catalog:
    path = path or catalog_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise LibraryError(f"catalog: {path} is missing") from None
    return _load(str(path), mtime)
