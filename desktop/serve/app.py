"""The thin HTTP layer: FastAPI routes that parse a request, hand it to the work (``completion``, ``chat``,
``tokenization``) and shape the answer; OpenAI-shaped errors for everything, FastAPI's own 422 included.

Every model-scoped route is served twice: at the root (the one model served, or the body's ``model``) and
under ``/models/<id>``, each model's own root (lm-eval finds the tokenizer by cutting ``/v1/completions``
off its base URL, so that root must name one model)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from desktop.serve import completion, tokenization
from desktop.serve.chat import run_chat, token_logprobs
from desktop.serve.config import RequestRecord, ServerConfig
from desktop.serve.errors import ApiError, error_body, from_exception
from desktop.serve.middleware import ServeMiddleware
from desktop.serve.protocol import (
    ChatChoice,
    ChatLogprobs,
    ChatRequest,
    ChatResponse,
    ChatResponseMessage,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    DetokenizeRequest,
    ModelCard,
    ModelList,
    TokenizeRequest,
    Usage,
)
from desktop.serve.registry import Registry, Served
from desktop.serve.work import Cancel, stream_job


@dataclass
class ServeState:
    registry: Registry
    config: ServerConfig
    active: set[Cancel] = field(default_factory=set)  # every running job: stop() cancels them
    created: int = field(default_factory=lambda: int(time.time()))


def _state(request: Request) -> ServeState:
    return request.app.state.serve


def _served(request: Request, asked: str | None, route: str) -> Served:
    served = _state(request).registry.resolve(request.path_params.get("root_id"), asked, route)
    request.state.tandem_record = {"model": served.id}
    return served


def _count(request: Request, prompt: int, completion_tokens: int) -> None:
    record = request.state.tandem_record
    record["prompt_tokens"] = record.get("prompt_tokens", 0) + prompt
    record["completion_tokens"] = record.get("completion_tokens", 0) + completion_tokens


def _sse(obj) -> str:
    data = obj if isinstance(obj, dict) else obj.model_dump(exclude_none=True)
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _first(events):
    """The first event of a job: an error before anything was sent is an HTTP error, not a 200 stream."""
    kind, value = await events.__anext__()
    if kind == "error":
        await events.aclose()
        raise from_exception(value)
    return kind, value


router = APIRouter()
DISCONNECT_POLL_S = 0.1  # how often a request without a stream checks its client is still there


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    state = _state(request)
    root_id = request.path_params.get("root_id")
    chosen = [state.registry.get(root_id)] if root_id else state.registry.all()
    return ModelList(data=[ModelCard(id=s.id, created=state.created, root=s.id, max_model_len=s.n_ctx)
                           for s in chosen]).model_dump()


@router.post("/v1/completions")
async def create_completion(body: CompletionRequest, request: Request):
    served = _served(request, body.model, "/v1/completions")
    prompts = completion.prompts_of(body)
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    active = _state(request).active

    def job(prompt, streaming: bool):
        return lambda emit, cancel: completion.run_prompt(
            served.model, prompt, body, emit if streaming else _ignore, cancel)

    if not body.stream:  # a batch's prompts queue in the lane together: a model with slots runs them at once
        outs = await asyncio.gather(*(_result(request, served, job(p, False)) for p in prompts))
        choices, usage = [], Usage()
        for i, out in enumerate(outs):
            logprobs = None
            if body.logprobs is not None:
                builder = completion.LogprobsBuilder(served.model, body.logprobs)
                logprobs = completion.merged(builder.prompt_part(out) if body.echo else
                                             completion.CompletionLogprobs(), builder.token_part(out.generated))
            choices.append(CompletionChoice(index=i, text=(out.echo_text if body.echo else "") + out.text,
                                            logprobs=logprobs, finish_reason=out.finish))
            _add_usage(usage, len(out.ids), len(out.generated), out.capped_to)
        _count(request, usage.prompt_tokens, usage.completion_tokens)
        return CompletionResponse(id=rid, created=created, model=served.id, choices=choices,
                                  usage=usage).model_dump(exclude_none=True)

    first_events = stream_job(served, job(prompts[0], True), active)
    first = await _first(first_events)

    def pieces(index: int, builder, item) -> str:
        what, value = item
        if what == "prompt":
            if not body.echo:
                builder.offset = 0
                return ""
            lp = builder.prompt_part(value) if body.logprobs is not None else None
            return _sse(_chunk(rid, created, served.id, index, value.echo_text, lp, None))
        lp = builder.token_part([value]) if body.logprobs is not None else None
        return _sse(_chunk(rid, created, served.id, index, value.text, lp, None))

    async def chunks():
        usage = Usage()
        for i, prompt in enumerate(prompts):
            events = first_events if i == 0 else stream_job(served, job(prompt, True), active)
            builder = completion.LogprobsBuilder(served.model, body.logprobs or 0)
            pending = [first] if i == 0 else []
            try:
                while True:
                    kind, value = pending.pop() if pending else await events.__anext__()
                    if kind == "error":
                        yield _sse(from_exception(value).body())
                        yield "data: [DONE]\n\n"
                        return
                    if kind == "done":
                        _add_usage(usage, len(value.ids), len(value.generated), value.capped_to)
                        _count(request, len(value.ids), len(value.generated))
                        yield _sse(_chunk(rid, created, served.id, i, "", None, value.finish))
                        break
                    text = "".join(pieces(i, builder, item) for item in value)
                    if text:
                        yield text
            finally:
                await events.aclose()
        if body.stream_options and body.stream_options.include_usage:
            yield _sse({"id": rid, "object": "text_completion", "created": created, "model": served.id,
                        "choices": [], "usage": usage.model_dump(exclude_none=True)})
        yield "data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


def _ignore(_item) -> None:
    """A job's emit when nothing streams."""


def _chunk(rid, created, model_id, index, text, logprobs, finish) -> dict:
    choice = {"index": index, "text": text, "logprobs": logprobs.model_dump() if logprobs else None,
              "finish_reason": finish}
    return {"id": rid, "object": "text_completion", "created": created, "model": model_id, "choices": [choice]}


def _add_usage(usage: Usage, prompt: int, generated: int, capped_to: int | None) -> None:
    usage.prompt_tokens += prompt
    usage.completion_tokens += generated
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    if capped_to is not None:
        usage.max_tokens_capped_to = capped_to if usage.max_tokens_capped_to is None else min(
            capped_to, usage.max_tokens_capped_to)


async def _result(request: Request, served: Served, job):
    """Run a job to its end and return its result (its error raised as an ApiError). A client that leaves
    before the answer cancels it, as a stream's does: the model is not kept busy for nobody."""
    cancel = Cancel()

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(DISCONNECT_POLL_S)
        cancel.cancel("disconnected")

    watcher = asyncio.create_task(watch())
    events = stream_job(served, job, _state(request).active, cancel)
    try:
        async for kind, value in events:
            if kind == "error":
                raise from_exception(value)
            if kind == "done":
                return value
    finally:
        watcher.cancel()
        await events.aclose()
    raise ApiError(500, "The request ended without a result.", "server_error")


@router.post("/v1/chat/completions")
async def create_chat(body: ChatRequest, request: Request):
    served = _served(request, body.model, "/v1/chat/completions")
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    k = (body.top_logprobs or 0) if body.logprobs else 0

    def job(streaming: bool):
        return lambda emit, cancel: run_chat(served.model, body, emit if streaming else _ignore, cancel)

    if not body.stream:
        out = await _result(request, served, job(False))
        usage = Usage()
        _add_usage(usage, out.prompt_tokens, len(out.generated), out.capped_to)
        _count(request, usage.prompt_tokens, usage.completion_tokens)
        logprobs = ChatLogprobs(content=token_logprobs(out.generated, k)) if body.logprobs else None
        return ChatResponse(id=rid, created=created, model=served.id, usage=usage, choices=[ChatChoice(
            message=ChatResponseMessage(content=out.text), logprobs=logprobs, finish_reason=out.finish)]
        ).model_dump(exclude_none=True)

    events = stream_job(served, job(True), _state(request).active)
    first = await _first(events)

    def chunk(delta: dict, logprobs=None, finish=None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": served.id,
                "choices": [choice]}

    def token_chunk(event) -> str:
        lp = {"content": [t.model_dump() for t in token_logprobs([event], k)]} if body.logprobs else None
        return _sse(chunk({"content": event.text}, lp))

    async def chunks():
        pending = [first]
        yield _sse(chunk({"role": "assistant", "content": ""}))
        try:
            while True:
                kind, value = pending.pop() if pending else await events.__anext__()
                if kind == "error":
                    yield _sse(from_exception(value).body())
                    break
                if kind == "done":
                    _count(request, value.prompt_tokens, len(value.generated))
                    yield _sse(chunk({}, None, value.finish))
                    if body.stream_options and body.stream_options.include_usage:
                        usage = Usage()
                        _add_usage(usage, value.prompt_tokens, len(value.generated), value.capped_to)
                        yield _sse({"id": rid, "object": "chat.completion.chunk", "created": created,
                                    "model": served.id, "choices": [], "usage": usage.model_dump(exclude_none=True)})
                    break
                yield "".join(token_chunk(event) for event in value)
        finally:
            await events.aclose()
        yield "data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, request: Request) -> dict:
    served = _served(request, body.model, "/tokenize")
    reply = await _state(request).registry.run(served, tokenization.tokenize, served.model, body)
    return reply.model_dump(exclude_none=True)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, request: Request) -> dict:
    served = _served(request, body.model, "/detokenize")
    reply = await _state(request).registry.run(served, tokenization.detokenize, served.model, body)
    return reply.model_dump()


@router.get("/tokenizer_info")
async def tokenizer_info(request: Request) -> dict:
    served = _served(request, request.query_params.get("model"), "/tokenizer_info")
    return tokenization.tokenizer_info(served.model)


def build_app(state: ServeState, on_request=None) -> FastAPI:
    app = FastAPI(title="Tandem", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = state

    @app.exception_handler(ApiError)
    async def api_error(_request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)  # FastAPI's 422, malformed JSON included: a 400
    async def invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        if first.get("type") == "json_invalid" or (not where and first.get("type") in ("dict_type",
                                                                                        "model_attributes_type")):
            return JSONResponse(error_body(400, "The request body is not valid JSON (an object is expected).",
                                           "invalid_json"), status_code=400)
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
        return JSONResponse(error_body(400, f"Invalid request: {message}.", "invalid_request"), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def crash(_request, exc: Exception):
        error = from_exception(exc)
        return JSONResponse(error.body(), status_code=error.status)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    app.include_router(router)
    app.include_router(router, prefix="/models/{root_id}")
    config = state.config
    app.add_middleware(ServeMiddleware, api_key=config.api_key, max_body_bytes=config.max_body_bytes,
                       on_request=on_request)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    return app


__all__ = ["RequestRecord", "ServeState", "build_app"]
