"""Request and response bodies of the HTTP API (what the OpenAPI docs at /docs show).

Recommendation results are the pipeline's own types
(:class:`~tastelens.agent.recommendation.RecommendationList`), so the API, the CLI's
``--json`` and the chat agent return the same JSON. Every error, whatever its cause, is an
:class:`ErrorResponse`: ``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.recommendation import Constraints, RecommendationList

MAX_ID_CHARS = 200
MAX_MESSAGE_CHARS = 4_000


class RecommendRequest(BaseModel):
    """POST /v1/recommend."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_CHARS,
        description="User id of the dataset. Omit it for an anonymous request, which then "
                    "needs constraints (queries, seed items or categories) to go on.")
    k: int | None = Field(
        default=None, ge=1, description="How many items (default: the pipeline's k); at most "
                                        "the server's api.max_k, else 422.")
    constraints: Constraints = Field(default_factory=Constraints)


class ChatRequestBody(BaseModel):
    """POST /v1/chat: one user message in a (new or existing) conversation."""

    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(
        default=None, max_length=MAX_ID_CHARS,
        description="The id a previous reply returned; omit it to start a new conversation.")
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    user: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_CHARS,
        description="Dataset user id the conversation is about (only when starting one); "
                    "omit for a new, anonymous user.")


class ChatReply(BaseModel):
    """The agent's answer to one chat message."""

    session_id: str = Field(description="Send it back with the next message.")
    text: str
    recommendations: RecommendationList | None = None
    turn: dict[str, Any] = Field(
        default_factory=dict, description="The whole chat turn as the agent returned it "
                                          "(fields beyond text and recommendations).")


class Health(BaseModel):
    """GET /health: the server is up and its pipeline is built."""

    status: str = "ok"
    dataset: str | None = None
    items: int | None = None
    users: int | None = None
    chat_sessions: int = 0


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. 'UnknownIdError', "
                                  "'validation_error', 'unauthorized', 'internal_error'.")
    message: str = Field(description="What is wrong, for a person.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail
