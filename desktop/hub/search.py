"""Search the hub for GGUF repositories by text, most downloaded first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from desktop.hub._common import endpoint, get_json_pages


@dataclass(frozen=True)
class RepoSummary:
    id: str
    downloads: int
    likes: int
    gated: bool  # True when a token and an accepted licence are needed to download
    last_modified: str | None  # ISO date
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "downloads": self.downloads, "likes": self.likes, "gated": self.gated,
                "last_modified": self.last_modified}


def search_models(query: str, limit: int = 50) -> list[RepoSummary]:
    """GGUF model repos matching ``query`` (blank: the most downloaded GGUF repos). Blocks: use a thread.

    The same request ``HfApi.list_models(search=..., filter="gguf", sort="downloads")`` sends, made with
    the hub's session and headers but a short retry (see ``get_json_pages``).
    """
    query = query.strip()
    limit = max(1, min(int(limit), 500))
    params: dict[str, Any] = {"filter": "gguf", "sort": "downloads", "direction": -1, "limit": limit}
    if query:
        params["search"] = query
    items = get_json_pages(f"{endpoint()}/api/models", params, query or "(all)",
                           f"search Hugging Face for {query!r}", max_pages=1)
    out = []
    for item in items[:limit]:
        if not isinstance(item, dict) or not isinstance(item.get("id") or item.get("modelId"), str):
            continue
        gated = item.get("gated", False)
        modified = item.get("lastModified")
        out.append(RepoSummary(
            id=item.get("id") or item["modelId"],
            downloads=_int(item.get("downloads")), likes=_int(item.get("likes")),
            gated=gated not in (False, None, "false"),
            last_modified=modified[:10] if isinstance(modified, str) else None,
            tags=tuple(t for t in item.get("tags") or () if isinstance(t, str)),
        ))
    out.sort(key=lambda r: r.downloads, reverse=True)  # the server sorts; a mirror may not
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
