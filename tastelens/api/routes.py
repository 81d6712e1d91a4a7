"""The API's routes: thin wrappers that parse, call the pipeline, and return its types.

Capacity is kept for /health whatever the LLM does:

- ``/health`` is an ``async`` route on the event loop: it reads the pipeline's dataset and the
  LLM breaker's state from memory and never waits for a worker thread or the LLM.
- Every route that runs the pipeline does it in a worker thread, at most ``api.workers`` at
  once (an anyio capacity limiter of its own, so those threads never starve anything else);
  more requests wait for a free worker. The request's LLM calls share the interactive
  deadline (``llm.interactive_deadline_s``), counted from its arrival: a request that waited
  long for a worker gets what is left, and none once it is spent, so it is answered without
  the LLM (flagged) instead of queueing for the LLM on top.
- What a response says about a fallback is a reason code (:mod:`tastelens.api.redact`); the
  detail, which may name internal hosts, goes to the server log.

Every route about one user checks that the caller may reach that user
(:meth:`tastelens.api.access.Access.check_user`) before any work, and so does a chat message
to a session started for a user. /v1/recommend and /v1/chat take a token from the client's
bucket first (:mod:`tastelens.api.ratelimit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastelens.agent.recommendation import RecommendationList
from tastelens.api.access import Caller, current_caller
from tastelens.api.protocol import (
    MAX_ID_CHARS,
    ChatReply,
    ChatRequestBody,
    ErrorResponse,
    Health,
    LLMHealth,
    RecommendRequest,
    TasteView,
    unicode_text,
)
from tastelens.api.ratelimit import rate_limit
from tastelens.api.redact import public_list
from tastelens.errors import ConfigError
from tastelens.llm.deadline import llm_deadline
from tastelens.schemas import InterestProfile
from tastelens.taste import TasteEdit

T = TypeVar("T")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in [
        (400, "A Host name this server does not answer to."),
        (401, "Missing or wrong API key or token, or a user's data without their token."),
        (403, "A user token naming another user, or a write from another origin."),
        (404, "Unknown user or session."),
        (409, "A stale taste edit, or a session of another user."),
        (413, "Request body too large."), (415, "A write whose body is not JSON."),
        (422, "Invalid request."),
        (429, "Too many requests from this client (recommend and chat); see Retry-After."),
        (500, "Unexpected server error (no details in the body)."),
        (503, "A dependency of the server (the vector index) is unavailable.")]}

public = APIRouter()
protected = APIRouter(prefix="/v1", responses=ERRORS)


async def pipeline_of(request: Request) -> Any:  # on the event loop: no thread hop
    pipeline = request.app.state.pipeline
    if pipeline is None:  # only between start-up failure and shutdown
        raise StarletteHTTPException(503, "the recommendation pipeline is not ready")
    return pipeline


Pipeline = Annotated[Any, Depends(pipeline_of)]
CallerOf = Annotated[Caller, Depends(current_caller)]
LIMITED = [Depends(rate_limit)]


async def in_worker(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a pipeline worker thread, under the interactive LLM deadline."""
    deadline_s = request.app.state.settings.llm.interactive_deadline_s
    arrived = time.monotonic()

    def call() -> T:
        with llm_deadline(deadline_s, since=arrived):
            return fn(*args)

    return await anyio.to_thread.run_sync(call, limiter=request.app.state.workers)


@public.head("/health", response_model=Health, include_in_schema=False)
@public.get("/health", response_model=Health, tags=["service"])
async def health(request: Request) -> Health:
    """Liveness, what is served and the LLM's state; needs no API key, never calls the LLM."""
    pipeline = request.app.state.pipeline
    if pipeline is None:
        return Health(status="starting", chat_sessions=len(request.app.state.sessions))
    dataset = getattr(pipeline, "dataset", None)
    llm = getattr(pipeline, "llm", None)
    breaker = getattr(llm, "breaker", None)
    llm_health = (LLMHealth(backend=getattr(llm, "name", type(llm).__name__),
                            breaker=breaker.snapshot()) if breaker is not None else None)
    degraded = llm_health is not None and llm_health.breaker.state in ("open", "half_open")
    return Health(status="degraded" if degraded else "ok",
                  dataset=getattr(dataset, "name", None),
                  items=dataset.n_items if dataset is not None else None,
                  users=len(dataset.user_ids) if dataset is not None else None,
                  chat_sessions=len(request.app.state.sessions), llm=llm_health)


@protected.post("/recommend", response_model=RecommendationList, tags=["recommend"],
                dependencies=LIMITED)
async def recommend(body: RecommendRequest, request: Request, pipeline: Pipeline,
                    caller: CallerOf) -> RecommendationList:
    """Top-k explained recommendations for a user, honouring the constraints."""
    if body.user is not None:
        request.app.state.access.check_user(caller, body.user)
    constraints = body.constraints.to_constraints().checked(pipeline.dataset.categories)
    result = await in_worker(request, lambda: pipeline.recommend(body.user, k=body.k,
                                                                 constraints=constraints))
    return public_list(result)


@protected.post("/chat", response_model=ChatReply, tags=["chat"], dependencies=LIMITED)
async def chat(body: ChatRequestBody, request: Request, pipeline: Pipeline,
               caller: CallerOf) -> ChatReply:
    """One message of a conversation with the recommender agent."""
    access, sessions = request.app.state.access, request.app.state.sessions
    # The user the conversation is about: the session's (it was started for them), else the
    # one this message starts it for.
    owner = sessions.owner(body.session_id) if body.session_id is not None else body.user
    if owner is not None:
        access.check_user(caller, owner)
    return await in_worker(request, _chat, body, sessions, pipeline, caller.client)


def _chat(body: ChatRequestBody, sessions: Any, pipeline: Any, client: str | None) -> ChatReply:
    if body.user is not None and body.session_id is None:
        pipeline.check_user(body.user)  # 404 before a session is made for a wrong id
    entry = sessions.open(body.session_id, body.user, client)
    with entry.lock:  # one conversation answers one message at a time, in order
        turn = (entry.session.observe(body.message) if body.role == "assistant"
                else entry.session.respond(body.message))
    sessions.touch(entry)
    dumped = turn.model_dump(mode="json") if hasattr(turn, "model_dump") else {}
    recommendations = getattr(turn, "recommendations", None)
    cited = [e for r in recommendations.items for e in r.evidence] if recommendations else []
    return ChatReply(session_id=entry.id, text=turn.text,
                     recommendations=public_list(recommendations) if recommendations else None,
                     turn=echoed_turn(dumped), titles=_titles(pipeline, cited))


def echoed_turn(dumped: dict[str, Any]) -> dict[str, Any]:
    """The turn as the reply echoes it: without the text and list (sent on their own) and
    with the excluded items as a count — after many "more"s the session excludes every item
    it showed, and each reply would carry them all again."""
    turn = {k: v for k, v in dumped.items() if k not in ("text", "recommendations")}
    constraints = turn.get("constraints")
    if isinstance(constraints, dict) and "exclude_items" in constraints:
        constraints = dict(constraints)
        constraints["exclude_items_count"] = len(constraints.pop("exclude_items") or [])
        turn["constraints"] = constraints
    return turn


def _titles(pipeline: Any, ids: Any) -> dict[str, str]:
    items = pipeline.dataset.items
    return {i: items[i].title for i in dict.fromkeys(ids) if i in items}


UserId = Annotated[str, Path(max_length=MAX_ID_CHARS)]


def _allowed(request: Request, caller: Caller, user_id: str) -> str:
    """``user_id`` of the path, once the caller may reach it."""
    try:
        user = unicode_text(user_id)
    except ValueError as exc:
        raise ConfigError(f"path.user_id: {exc}") from None
    request.app.state.access.check_user(caller, user)
    return user


@protected.get("/users/{user_id}/profile", response_model=InterestProfile, tags=["profile"])
async def profile(user_id: UserId, request: Request, pipeline: Pipeline,
                  caller: CallerOf) -> InterestProfile:
    """The user's interest profile, as the pipeline uses it (stored, else computed, with the
    user's own edits applied)."""
    return await in_worker(request, pipeline.profile_for, _allowed(request, caller, user_id))


@protected.get("/users/{user_id}/taste", response_model=TasteView, tags=["profile"])
async def taste(user_id: UserId, request: Request, pipeline: Pipeline,
                caller: CallerOf) -> TasteView:
    """The profile as the user edited it, their edits (versioned) and the titles it names."""
    return await in_worker(request, taste_view, pipeline, _allowed(request, caller, user_id))


@protected.post("/users/{user_id}/taste", response_model=TasteView, tags=["profile"])
async def edit_taste(user_id: UserId, body: TasteEdit, request: Request,
                     pipeline: Pipeline, caller: CallerOf) -> TasteView:
    """Edit the user's taste: remove, restore, pin or unpin an interest, add or drop a
    dislike. Stored as the next version of their overrides; the next list honours it."""
    user = _allowed(request, caller, user_id)

    def run() -> TasteView:
        pipeline.edit_taste(user, body)
        return taste_view(pipeline, user)

    return await in_worker(request, run)


def taste_view(pipeline: Any, user: str) -> TasteView:
    """What the page's profile panel shows, in one answer."""
    overrides = pipeline.overrides_for(user)
    edited = pipeline.profile_for(user)
    removed_keys = {r.casefold() for r in overrides.removed}
    removed = []
    if removed_keys:
        base = pipeline.profile_for(user, edited=False)
        found = {i.label.casefold(): i for i in (*overrides.pinned, *base.interests)}
        removed = [found[k] for k in dict.fromkeys(removed_keys) if k in found]
    ids = [e for i in (*edited.interests, *edited.dislikes, *removed) for e in i.evidence]
    return TasteView(profile=edited, overrides=overrides, removed=removed,
                     titles=_titles(pipeline, ids))
