"""OpenAI-shaped errors: ``{"error": {"message", "type", "code"}}`` with the right HTTP status.

``ApiError`` is raised by the work (no HTTP in it); ``from_exception`` turns an engine error into one, so
every route answers the same way. The HTTP handlers that send them live in ``app``.
"""

from __future__ import annotations

import logging

from desktop.core.errors import (
    ChatTemplateError,
    ContextOverflow,
    EngineBusy,
    EngineCrashed,
    EngineError,
    GrammarError,
    ScoringUnavailable,
    TandemError,
)

log = logging.getLogger("tandem.serve")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 413: "invalid_request_error", 500: "internal_server_error",
         503: "service_unavailable"}


class ApiError(Exception):
    """A request's failure as the client sees it."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def body(self) -> dict:
        return error_body(self.status, self.message, self.code)


def error_body(status: int, message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"),
                      "code": code or str(status)}}


def from_exception(exc: BaseException) -> ApiError:
    """The client's view of a failure: a bad request is 400, a crashed worker 503, a bug of ours 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ContextOverflow):
        return ApiError(400, f"This model's context holds {exc.n_ctx} tokens, but the prompt has "
                             f"{exc.prompt_tokens} tokens: shorten it.", "context_length_exceeded")
    if isinstance(exc, EngineCrashed):
        return ApiError(503, f"The model's worker stopped during this request ({exc}); it is loaded again "
                             "on the next request.", "worker_crashed")
    if isinstance(exc, EngineBusy):
        return ApiError(503, str(exc), "model_busy")
    if isinstance(exc, (ChatTemplateError, GrammarError, ScoringUnavailable)):
        return ApiError(400, str(exc), "unsupported")
    if isinstance(exc, (EngineError, ValueError)):
        return ApiError(400, str(exc), "invalid_request")
    if isinstance(exc, TandemError):
        return ApiError(500, str(exc), "server_error")
    log.error("unexpected error serving a request", exc_info=exc)
    return ApiError(500, f"internal error ({type(exc).__name__}: {exc})", "server_error")
