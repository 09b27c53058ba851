"""``tandem serve``: the loaded models behind an OpenAI-compatible HTTP API (vLLM's routes and shapes).

Importing this package costs nothing: FastAPI and uvicorn are imported when a server starts, so the app's
cold start never pays for them. The pieces, in the shape of vLLM's ``entrypoints/openai``:
``config`` (settings, the request log's record, the error), ``protocol`` (pydantic request and response
models), ``errors`` (OpenAI-shaped errors), ``registry`` (the served models and their queues),
``completion`` / ``chat`` / ``tokenization`` (the work, apart from HTTP), ``app`` (the thin routes) and
``server`` (``ServerHandle``: uvicorn on a background thread).
"""

from __future__ import annotations

from desktop.serve.config import RequestRecord, ServeError, ServerConfig
from desktop.serve.server import ServerHandle

__all__ = ["RequestRecord", "ServeError", "ServerConfig", "ServerHandle"]
