"""Hugging Face: search, file lists, resumable verified downloads. The only importer of huggingface_hub.

    search_models(query, limit)        -> [RepoSummary]    (search.py; GGUF repos, most downloaded first)
    list_gguf_files(repo, revision)    -> [GGUFFile]       (files.py; split parts grouped as one model)
    DownloadManager(models_dir, ...)   queue, events, pause/resume/cancel, pending() after restart
    download_blocking(repo, file, dir) -> Path             (download.py; the CLI's path)
    set_token / clear_token / token_status                 (auth.py; the hub's own token store)

Every call blocks (run it on a worker thread) and raises only our errors (desktop.core.errors): OfflineError
before any socket is opened when offline, RepoNotFound, GatedRepoError, DownloadError and its kinds.
Names are imported lazily so `import desktop.hub` stays cheap.
"""

from __future__ import annotations

_EXPORTS = {
    "search_models": "desktop.hub.search", "RepoSummary": "desktop.hub.search",
    "list_gguf_files": "desktop.hub.files", "GGUFFile": "desktop.hub.files",
    "quant_from_name": "desktop.hub.files", "safe_local_name": "desktop.hub.files",
    "DownloadManager": "desktop.hub.download", "DownloadEvent": "desktop.hub.download",
    "PendingDownload": "desktop.hub.download", "download_blocking": "desktop.hub.download",
    "RetryPolicy": "desktop.hub.transfer",
    "set_token": "desktop.hub.auth", "clear_token": "desktop.hub.auth", "token_status": "desktop.hub.auth",
    "TokenStatus": "desktop.hub.auth", "is_offline": "desktop.hub._common",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
