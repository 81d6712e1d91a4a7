"""The API's routes: thin wrappers that parse, call the pipeline, and return its types.

The routes are plain ``def`` functions: FastAPI runs them in its thread pool, so a
recommendation waiting on the LLM never blocks the event loop (or /health).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastelens.agent.recommendation import RecommendationList
from tastelens.api.protocol import (
    MAX_ID_CHARS,
    ChatReply,
    ChatRequestBody,
    ErrorResponse,
    Health,
    RecommendRequest,
)
from tastelens.errors import ConfigError
from tastelens.schemas import InterestProfile

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in [
        (401, "Missing or wrong API key."), (404, "Unknown user or session."),
        (413, "Request body too large."), (422, "Invalid request."),
        (500, "Unexpected server error (no details in the body).")]}

public = APIRouter()
protected = APIRouter(prefix="/v1", responses=ERRORS)


class KOutOfRange(ConfigError):
    """``k`` above the server's limit (settings api.max_k)."""


def pipeline_of(request: Request) -> Any:
    pipeline = request.app.state.pipeline
    if pipeline is None:  # only between start-up failure and shutdown
        raise StarletteHTTPException(503, "the recommendation pipeline is not ready")
    return pipeline


Pipeline = Annotated[Any, Depends(pipeline_of)]


@public.get("/health", response_model=Health, tags=["service"])
def health(request: Request) -> Health:
    """Liveness and what is served; needs no API key."""
    pipeline = request.app.state.pipeline
    dataset = getattr(pipeline, "dataset", None)
    return Health(dataset=getattr(dataset, "name", None),
                  items=dataset.n_items if dataset is not None else None,
                  users=len(dataset.user_ids) if dataset is not None else None,
                  chat_sessions=len(request.app.state.sessions))


@protected.post("/recommend", response_model=RecommendationList, tags=["recommend"])
def recommend(body: RecommendRequest, request: Request,
              pipeline: Pipeline) -> RecommendationList:
    """Top-k explained recommendations for a user, honouring the constraints."""
    max_k = request.app.state.settings.api.max_k
    if body.k is not None and body.k > max_k:
        raise KOutOfRange(f"k={body.k} is above this server's limit of {max_k} "
                          "(settings api.max_k)")
    return pipeline.recommend(body.user, k=body.k, constraints=body.constraints)


@protected.post("/chat", response_model=ChatReply, tags=["chat"])
def chat(body: ChatRequestBody, request: Request,
         pipeline: Pipeline) -> ChatReply:
    """One message of a conversation with the recommender agent."""
    if body.user is not None and body.session_id is None:
        pipeline.check_user(body.user)  # 404 before a session is made for a wrong id
    sessions = request.app.state.sessions
    entry = sessions.open(body.session_id, body.user)
    with entry.lock:  # one conversation answers one message at a time, in order
        turn = entry.session.respond(body.message)
    sessions.touch(entry)
    dumped = turn.model_dump(mode="json") if hasattr(turn, "model_dump") else {}
    return ChatReply(session_id=entry.id, text=turn.text,
                     recommendations=getattr(turn, "recommendations", None),
                     turn={k: v for k, v in dumped.items()
                           if k not in ("text", "recommendations")})


@protected.get("/users/{user_id}/profile", response_model=InterestProfile, tags=["profile"])
def profile(user_id: Annotated[str, Path(max_length=MAX_ID_CHARS)],
            pipeline: Pipeline) -> InterestProfile:
    """The user's interest profile, as the pipeline uses it (stored, else computed)."""
    return pipeline.profile_for(user_id)
