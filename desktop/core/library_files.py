"""What the library knows about a model file before reading it: where other apps keep models, what a file's
name says (its split parts, the name people see, the family used to pair base and instruct), and small file
helpers that never raise.

Split from ``library`` so that the library class keeps to scanning, pairing and importing; everything here
takes a path (or reads the environment) and keeps no state, so it is easy to test on its own.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from desktop.core.gguf_meta import GGUFMetadata

SIDECAR_SUFFIX = ".tandem.json"  # written by the downloader beside a finished file: repo, sha256, ...
PART_SUFFIX = ".part"
SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


# --- where other apps keep models -------------------------------------------------------------------


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache as huggingface_hub resolves it (HF_HUB_CACHE, else HF_HOME/hub)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def lmstudio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


# --- pairing by name --------------------------------------------------------------------------------------

_QUANT_TOKEN = re.compile(
    r"(?:^|[-_. ])(?:i?q\d(?:_[a-z0-9]+)*|f16|f32|bf16|fp16|gguf|imat|i1|ud|mxfp4(?:_moe)?)(?=$|[-_. ])", re.I
)
_KIND_TOKEN = re.compile(r"(?:^|[-_. ])(?:instruct|it|chat|base|pt|sft|dpo)(?=$|[-_. ])", re.I)


def family_key(name: str) -> str:
    """"Qwen2.5-0.5B-Instruct-Q4_K_M" and "qwen2.5-0.5b.Q4_K_M" both give "qwen2.5 0.5b"."""
    text = SPLIT_NAME.sub(lambda m: m.group("stem"), name)
    if text.lower().endswith(".gguf"):
        text = text[:-5]
    for _ in range(3):  # tokens can be adjacent ("-Instruct-Q4_K_M"); repeat until stable
        text = _QUANT_TOKEN.sub(" ", text)
        text = _KIND_TOKEN.sub(" ", text)
    return " ".join(re.split(r"[-_ ]+", text.lower())).strip(" .")


def meta_family_key(meta: GGUFMetadata) -> str | None:
    if meta.basename and meta.size_label:
        return family_key(f"{meta.basename} {meta.size_label}")
    return None


def hf_cache_files(root: Path) -> list[Path]:
    """Every GGUF in a Hugging Face hub cache: the newest revision of each file of each repo."""
    found: dict[tuple[str, str], tuple[float, Path]] = {}
    try:
        repos = [d for d in root.iterdir() if d.name.startswith("models--")]
    except OSError:
        return []
    for repo_dir in repos:
        try:
            snapshots = list((repo_dir / "snapshots").iterdir())
        except OSError:
            continue
        for snap in snapshots:
            for path in snap.rglob("*.gguf"):
                rel = path.relative_to(snap).as_posix()
                try:
                    mtime = path.stat().st_mtime  # follows the symlink; a dangling one is skipped
                except OSError:
                    continue
                key = (repo_dir.name, rel)
                if key not in found or mtime > found[key][0]:
                    found[key] = (mtime, path)  # the newest revision of each file
    return sorted(p for _, p in found.values())


def group_parts(files: list[Path]) -> list[tuple[Path, tuple[Path, ...]]]:
    """One item per model: split files (-00001-of-00003.gguf) become their first part with all parts."""
    singles: list[tuple[Path, tuple[Path, ...]]] = []
    splits: dict[tuple[Path, str, int], dict[int, Path]] = {}
    for path in files:
        m = SPLIT_NAME.match(path.name)
        if m:
            key = (path.parent, m.group("stem"), int(m.group("count")))
            splits.setdefault(key, {})[int(m.group("index"))] = path
        else:
            singles.append((path, (path,)))
    for (parent, stem, count), by_index in splits.items():
        first = by_index.get(1) or parent / f"{stem}-00001-of-{count:05d}.gguf"
        parts = tuple(by_index.get(i, parent / f"{stem}-{i:05d}-of-{count:05d}.gguf")
                      for i in range(1, count + 1))
        singles.append((first, parts))
    return sorted(singles)


# --- file helpers -----------------------------------------------------------------------------------------


def part_path(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)


def file_size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def display_name(path: Path) -> str:
    m = SPLIT_NAME.match(path.name)
    return m.group("stem") if m else path.name[:-5] if path.name.lower().endswith(".gguf") else path.name


def hf_repo_of(path: Path) -> str | None:
    for parent in path.parents:
        if parent.name.startswith("models--"):
            return parent.name[len("models--"):].replace("--", "/", 1)
    return None


def sidecar_repo(path: Path) -> str | None:
    try:
        data = json.loads(Path(str(path) + SIDECAR_SUFFIX).read_text(encoding="utf-8"))
        repo = data.get("repo")
        return repo if isinstance(repo, str) else None
    except (OSError, ValueError, AttributeError):
        return None
