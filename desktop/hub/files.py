"""A repository's GGUF files: names, sizes, quantization labels, and split files grouped as one model.

File names come from the hub's API, so they are untrusted: ``safe_local_name`` refuses any name that
could write outside the models folder (``..``, absolute paths, backslashes, drive letters, NUL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from desktop.core.errors import DownloadError
from desktop.hub._common import check_repo_id, endpoint, get_json_pages

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)
# Longest labels first so "Q4_K_M" wins over "Q4_K" and "IQ4_XS" over "Q4".
_QUANTS = sorted([
    "Q2_K_S", "Q2_K_L", "Q2_K", "Q3_K_XL", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_XL", "Q4_K_S", "Q4_K_M",
    "Q4_K_L", "Q5_K_XL", "Q5_K_S", "Q5_K_M", "Q5_K_L", "Q6_K_XL", "Q6_K_L", "Q6_K", "Q8_K_XL", "Q8_0",
    "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ1_S", "IQ1_M", "IQ2_XXS",
    "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_XS", "IQ4_NL", "TQ1_0",
    "TQ2_0", "MXFP4_MOE", "MXFP4", "BF16", "F16", "FP16", "F32",
], key=len, reverse=True)
_QUANT_RE = re.compile(r"(?:^|[-_. ])(" + "|".join(_QUANTS) + r")(?=$|[-_. ])", re.I)


@dataclass(frozen=True)
class GGUFFile:
    """One downloadable model: a single file, or every part of a split model (``parts`` in order)."""

    name: str  # the path in the repo of the (first) file
    size: int  # bytes, all parts together
    quant: str | None
    parts: tuple[str, ...]
    part_sizes: tuple[int, ...]
    sha256: tuple[str | None, ...]  # the LFS oid of each part, when the listing gave it

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "quant": self.quant, "parts": list(self.parts)}


def quant_from_name(name: str) -> str | None:
    """"Qwen2.5-0.5B-Instruct-Q4_K_M.gguf" -> "Q4_K_M"; "model.fp16.gguf" -> "F16"."""
    stem = name.rsplit("/", 1)[-1]
    m = _SPLIT.match(stem)
    stem = m.group("stem") if m else (stem[:-5] if stem.lower().endswith(".gguf") else stem)
    found = _QUANT_RE.findall(stem)
    if not found:
        return None
    label = found[-1].upper()  # the last label is the file's own (names can embed a base quant)
    return "F16" if label == "FP16" else label


def safe_local_name(repo_path: str) -> str:
    """The local file name for a path from a hub listing, or DownloadError if it could escape the folder."""
    if not isinstance(repo_path, str) or not repo_path:
        raise DownloadError("refusing an empty file name from the hub")
    bad = (
        "\\" in repo_path or "\x00" in repo_path or repo_path.startswith("/")
        or re.match(r"^[A-Za-z]:", repo_path) is not None
        or any(part in ("", ".", "..") for part in repo_path.split("/"))
    )
    if bad:
        raise DownloadError(f"refusing the file name {repo_path!r} from the hub: it could write outside "
                            "the models folder")
    name = repo_path.rsplit("/", 1)[-1]
    if name.startswith(".") or len(name.encode("utf-8")) > 255:
        raise DownloadError(f"refusing the file name {repo_path!r} from the hub")
    return name


def group_gguf(files: list[tuple[str, int, str | None]]) -> list[GGUFFile]:
    """(path, size, sha256) of every file -> one GGUFFile per model, split parts grouped, sorted by size."""
    singles: list[GGUFFile] = []
    splits: dict[tuple[str, int], dict[int, tuple[str, int, str | None]]] = {}
    for path, size, sha in files:
        if not path.lower().endswith(".gguf"):
            continue
        try:
            base = safe_local_name(path)
        except DownloadError:
            continue  # a name that could escape the models folder is never offered
        if base.lower().startswith(("mmproj", "imatrix")):
            continue  # vision projectors and importance matrices are not language models
        m = _SPLIT.match(base)
        if m:
            folder = path[: len(path) - len(base)]
            splits.setdefault((folder + m.group("stem"), int(m.group("count"))), {})[int(m.group("index"))] = (
                path, size, sha)
        else:
            singles.append(GGUFFile(path, size, quant_from_name(path), (path,), (size,), (sha,)))
    for (_, count), by_index in splits.items():
        if sorted(by_index) != list(range(1, count + 1)):
            continue  # an incomplete upload: not offered
        ordered = [by_index[i] for i in range(1, count + 1)]
        singles.append(GGUFFile(ordered[0][0], sum(s for _, s, _ in ordered), quant_from_name(ordered[0][0]),
                                tuple(p for p, _, _ in ordered), tuple(s for _, s, _ in ordered),
                                tuple(h for _, _, h in ordered)))
    return sorted(singles, key=lambda f: (f.size, f.name))


def list_gguf_files(repo: str, revision: str = "main") -> list[GGUFFile]:
    """The GGUF models in ``repo`` (RepoNotFound / GatedRepoError / OfflineError otherwise). Blocks."""
    repo = check_repo_id(repo)
    # The request HfApi.list_repo_tree(repo, recursive=True) sends, with a short retry.
    url = f"{endpoint()}/api/models/{repo}/tree/{quote(revision, safe='')}"
    items = get_json_pages(url, {"recursive": True}, repo, f"list the files of {repo}")
    entries = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "file" or not isinstance(item.get("path"), str):
            continue
        lfs = item.get("lfs") if isinstance(item.get("lfs"), dict) else None
        size = (lfs or {}).get("size", item.get("size"))
        sha = (lfs or {}).get("oid")
        entries.append((item["path"], size if isinstance(size, int) else 0, sha if isinstance(sha, str) else None))
    return group_gguf(entries)
