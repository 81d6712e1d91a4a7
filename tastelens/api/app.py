"""The tastelens HTTP API (FastAPI): recommendations, chat and profiles over one pipeline.

    app = create_app(settings, pipeline_factory=lambda: RecommendPipeline.from_settings(...))
    uvicorn.run(app, host=settings.api.host, port=settings.api.port)

Routes (OpenAPI docs at /docs, schema at /openapi.json):

- ``POST /v1/recommend`` {user, k, constraints} -> RecommendationList
- ``POST /v1/chat`` {session_id?, message, user?} -> ChatReply (sessions in memory, capped)
- ``GET /v1/users/{id}/profile`` -> InterestProfile
- ``GET /v1/users/{id}/taste`` -> TasteView; ``POST`` {action, label} edits the user's taste
- ``GET|HEAD /health`` -> Health (never needs the API key, never waits on the LLM)
- ``GET /`` -> the web page (chat, profile, taste edits; :mod:`tastelens.api.web`)

Auth (:mod:`tastelens.api.access`): the operator key (``settings.api.api_key``) reaches every
/v1 route and user; a user's token (``tastelens token issue``) reaches that user's data only;
/health and the docs stay open (they reveal no data). Without a key the app only starts on a
loopback host (127.0.0.1, ::1, localhost), and says so in the log; an empty or weak key is a
settings error. Requests a web page elsewhere could make a browser send (another Host name:
DNS rebinding; a cross-origin write; a body that is not JSON) are refused first
(:mod:`tastelens.api.sameorigin`); /v1/recommend and /v1/chat are rate-limited per client
address (:mod:`tastelens.api.ratelimit`).
Bodies over ``api.max_body_bytes`` get 413; ``k`` outside 1..MAX_K, an over-long list or
string, or text that is not valid Unicode get 422. The docs (/docs, /redoc) load their
scripts from this server (the ``fastapi-offline`` package), so they work without Internet.

Every error is JSON ``{"error": {"type", "message"}}``: the library's named errors keep their
message (UnknownIdError -> 404, ConfigError and other invalid input -> 422); a server-side
dependency that is down is a 503 whose body names the kind only (the detail, which may name
internal hosts, is logged); anything unexpected is a 500 whose body says only that, the
traceback goes to the server log. How a hung LLM is kept from stalling the server is in
:mod:`tastelens.api.routes`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastelens.api.access import Access, current_caller
from tastelens.api.guard import BodyLimitMiddleware, error_body
from tastelens.api.ratelimit import RateLimiter
from tastelens.api.redact import public_message
from tastelens.api.routes import protected, public
from tastelens.api.sameorigin import SameOriginMiddleware, is_loopback
from tastelens.api.sessions import SessionStore, SessionUserMismatchError, UnknownSessionError
from tastelens.api.web import page
from tastelens.config.chat import ChatConfig
from tastelens.config.settings import APISettings, Settings
from tastelens.errors import (
    ConfigError,
    InvalidRequestError,
    TastelensError,
    UnknownIdError,
    VectorIndexError,
)
from tastelens.profile_store import OverridesConflictError
from tastelens.user_tokens import default_tokens_path

log = logging.getLogger("tastelens.api")

ChatFactory = Callable[[Any, "str | None"], Any]
"""(pipeline, user id or None) -> an object with ``respond(message) -> ChatTurn``."""

_HTTP_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "validation_error",
               429: "too_many_requests", 501: "not_implemented", 503: "unavailable"}

__all__ = ["api_key_of", "create_app", "default_chat_factory", "is_loopback", "status_for"]


def default_chat_factory(pipeline: Any, user: str | None, *,
                         config: ChatConfig | None = None) -> Any:
    """A :class:`tastelens.agent.chat.session.ChatSession` over the API's pipeline
    (``config``: None = the defaults; the app passes ``settings.chat``)."""
    try:
        from tastelens.agent.chat.session import ChatSession
    except ModuleNotFoundError as exc:
        if exc.name != "tastelens.agent.chat.session":
            raise
        raise StarletteHTTPException(501, "chat is not available in this build "
                                          "(tastelens.agent.chat.session is missing)") from None
    return ChatSession(pipeline, llm=pipeline.llm, dataset=pipeline.dataset, user=user,
                       config=config)


def status_for(exc: TastelensError) -> int:
    """HTTP status of a named library error."""
    from tastelens.agent.history import EmptyHistoryError
    from tastelens.llm.errors import LLMError

    if isinstance(exc, (UnknownIdError, UnknownSessionError)):
        return 404
    if isinstance(exc, (SessionUserMismatchError, OverridesConflictError)):
        return 409
    if isinstance(exc, (LLMError, VectorIndexError)):
        return 503  # the server's own dependencies (LLM server, vector index) are down
    if isinstance(exc, (ConfigError, EmptyHistoryError, InvalidRequestError)):
        return 422
    return 400


def api_key_of(api: APISettings) -> str | None:
    """The configured API key; None (no auth) only on a loopback host, else a ConfigError."""
    if api.api_key is not None:
        return api.api_key.get_secret_value()
    if not is_loopback(api.host):
        raise ConfigError(
            f"api.host {api.host!r} is not a loopback address and no api.api_key is set: set "
            "a key (TASTELENS_API__API_KEY) to serve other hosts; without one the API may "
            "only listen on 127.0.0.1, ::1 or localhost")
    return None


def create_app(settings: Settings, *, pipeline: Any | None = None,
               pipeline_factory: Callable[[], Any] | None = None,
               chat_factory: ChatFactory | None = None) -> FastAPI:
    """The FastAPI app. Give either a built ``pipeline`` (the caller closes it) or a
    ``pipeline_factory`` that the app calls once at start-up and closes at shutdown."""
    if (pipeline is None) == (pipeline_factory is None):
        raise ValueError("create_app needs exactly one of pipeline= or pipeline_factory=")
    api = settings.api
    key = api_key_of(api)
    make_chat = chat_factory or partial(default_chat_factory, config=settings.chat)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if key is None:
            log.warning("no API key (api.api_key unset): every process that can reach %s "
                        "can use this API", settings.api.host)
        if app.state.pipeline is None and pipeline_factory is not None:
            # Building loads the dataset, the embedder and starts/reuses the LLM server.
            owned = await run_in_threadpool(pipeline_factory)
            app.state.pipeline = owned
        try:
            yield
        finally:
            app.state.sessions.clear()
            app.state.access.close()
            if owned is not None:
                app.state.pipeline = None
                await run_in_threadpool(owned.close)

    # FastAPIOffline: FastAPI whose /docs and /redoc pages load Swagger UI and ReDoc from
    # files shipped in the fastapi-offline package, not from a CDN.
    # strict_content_type (FastAPI's default since 0.132, said here so it stays so): a JSON
    # body must come with a JSON Content-Type; SameOriginMiddleware says 415 before that.
    app = FastAPIOffline(title="tastelens", version="1", lifespan=lifespan,
                         strict_content_type=True,
                         summary="LLM-agent recommendations with interest profiles and "
                                 "explanations.")
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.workers = anyio.CapacityLimiter(api.workers)
    app.state.sessions = SessionStore(lambda user: make_chat(app.state.pipeline, user),
                                      max_sessions=api.max_chat_sessions,
                                      max_per_client=api.max_chat_sessions_per_client,
                                      ttl_s=api.chat_session_ttl_s)
    app.state.access = Access(api, partial(_tokens_path, settings, app))
    app.state.rate_limiter = (RateLimiter(api.rate_limit_per_minute, api.rate_limit_burst)
                              if api.rate_limit_per_minute > 0 else None)
    # Starlette runs the middleware added last first: the body limit, then the origin checks.
    app.add_middleware(SameOriginMiddleware, allowed_hosts=api.allowed_hosts,
                       any_host=key is not None)
    app.add_middleware(BodyLimitMiddleware, max_bytes=api.max_body_bytes)
    app.include_router(public)
    app.include_router(page)
    app.include_router(protected, dependencies=[Depends(current_caller)])
    _install_error_handlers(app)
    return app


def _tokens_path(settings: Settings, app: FastAPI) -> Path | None:
    """The token store of the dataset the app serves (None before the pipeline is built)."""
    dataset = getattr(app.state.pipeline, "dataset", None)
    name = getattr(dataset, "name", None)
    return default_tokens_path(settings.cache_dir, name) if name else None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, "http_error")
        return JSONResponse(error_body(kind, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else
                         str(err.get("msg", "invalid")))
        return JSONResponse(error_body("validation_error", "; ".join(parts) or "invalid request"),
                            status_code=422)

    @app.exception_handler(TastelensError)
    async def named(request: Request, exc: TastelensError) -> JSONResponse:
        status = status_for(exc)
        kind, message = type(exc).__name__, str(exc)
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, kind, message)
            message = public_message(exc, status)
        return JSONResponse(error_body(kind, message), status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error in %s %s", request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return JSONResponse(error_body("internal_error", "internal server error; see the "
                                                         "server log"), status_code=500)
