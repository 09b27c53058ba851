"""The one list of remote engines Tandem knows, in the order detection tries them, and the lookups by kind.

A new engine is one ``Dialect`` subclass (``remote_engines`` or ``remote_native``) and one line in
``ENGINES``. The order matters: the engines with a route of their own are asked first, and the generic
OpenAI-compatible server, which matches anything with a model list, comes last.
"""

from __future__ import annotations

from collections.abc import Mapping

from desktop.core.errors import RemoteError, ServerProtocolError
from desktop.engine.remote_engines import VLLM, Dialect, LlamaCppPython, ServerFacts, ServerModel
from desktop.engine.remote_http import Transport
from desktop.engine.remote_native import LlamaServer, Ollama, SGLang

ENGINES: tuple[type[Dialect], ...] = (LlamaServer, SGLang, Ollama, VLLM, LlamaCppPython, Dialect)

_BY_KIND = {e.kind: e for e in ENGINES}


def dialect(kind: str) -> Dialect:
    """The dialect of engine ``kind`` (ServerFacts.engine). Raises KeyError for a kind no class has."""
    return _BY_KIND[kind]()


def label(kind: str) -> str:
    """The engine's name as people write it ("vLLM"), for messages and the status bar."""
    return _BY_KIND[kind].label


def listed_models(t: Transport, listing: object) -> tuple[ServerModel, ...]:
    """The models in a /v1/models reply, with the context sizes vLLM (max_model_len) and llama-server
    (meta.n_ctx_train) add to OpenAI's shape."""
    if listing is None:
        return ()
    if not (isinstance(listing, Mapping) and isinstance(listing.get("data"), list)):
        raise ServerProtocolError(f"{t.where} answered /v1/models with something that is not a model list.")
    models = []
    for m in listing["data"]:
        if isinstance(m, Mapping) and m.get("id"):
            meta = m.get("meta") if isinstance(m.get("meta"), Mapping) else {}
            models.append(ServerModel(str(m["id"]), int(m.get("max_model_len") or meta.get("n_ctx_train") or 0),
                                      int(meta.get("n_vocab") or 0)))
    return tuple(models)


def detect(t: Transport) -> ServerFacts:
    """Which engine answers at ``t`` and which models it serves. Raises RemoteError (down, 401/403...)."""
    listing = t.get_json("/v1/models", quiet_404=True)  # every engine has it; 401/403/down raise here
    models = listed_models(t, listing)
    for engine in ENGINES:
        facts = engine.detect(t, listing, models)
        if facts is not None:
            return facts
    raise RemoteError(f"{t.where} is not an inference server Tandem knows (no /v1/models, /props or /api/tags).")
