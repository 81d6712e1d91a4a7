"""Request and response bodies of the HTTP API (what the OpenAPI docs at /docs show).

Recommendation results are the pipeline's own types
(:class:`~tastelens.agent.recommendation.RecommendationList`), so the API, the CLI's
``--json`` and the chat agent return the same JSON. Every error, whatever its cause, is an
:class:`ErrorResponse`: ``{"error": {"type": ..., "message": ...}}``.

Requests are bounded before any work starts (422 otherwise): every text field must be valid
Unicode (a lone surrogate such as ``"\\ud800"`` is refused, whatever field it is in) and fit its
length, every list has a size limit (``MAX_*`` below), and ``k`` is at most
:data:`~tastelens.config.pipeline.MAX_K`, the limit the CLI has too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tastelens.agent.recommendation import Constraints, RecommendationList
from tastelens.config.pipeline import MAX_K
from tastelens.llm.breaker import BreakerSnapshot
from tastelens.schemas import Interest, InterestProfile
from tastelens.taste import TasteOverrides

MAX_ID_CHARS = 200
MAX_MESSAGE_CHARS = 4_000
MAX_QUERIES = 10
"""Free-text wishes per request: each is one more retrieval query (an embedding and a search)."""
MAX_QUERY_CHARS = 300
MAX_SEEDS = 20
MAX_CATEGORIES = 30
"""Genres to include, and to exclude, per request."""
MAX_CATEGORY_CHARS = 100
MAX_EXCLUDED = 1_000
"""Item ids to leave out (e.g. every item already shown while paging)."""


def unicode_text(value: str) -> str:
    """``value`` when it is valid Unicode text (encodable as UTF-8); a lone surrogate, which
    JSON allows (``"\\ud800"``) and nothing downstream can encode, is a validation error."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text (a lone surrogate at character {exc.start})"
                         ) from None
    return value


def _text(max_chars: int) -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_chars),
                     AfterValidator(unicode_text)]


Id = _text(MAX_ID_CHARS)
Query = _text(MAX_QUERY_CHARS)
Category = _text(MAX_CATEGORY_CHARS)
Message = _text(MAX_MESSAGE_CHARS)
_FIELDS = Constraints.model_fields


class RequestConstraints(Constraints):
    """The request's :class:`~tastelens.agent.recommendation.Constraints`, bounded: each list
    has a size limit and each string a length, so a request's cost is bounded before it runs.
    Genres match the catalog's case-insensitively; an unknown one is a 422 that lists the
    closest known genres; ``year_min`` after ``year_max`` is a 422."""

    include_categories: list[Category] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_CATEGORIES,
        description=_FIELDS["include_categories"].description)
    exclude_categories: list[Category] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_CATEGORIES,
        description=_FIELDS["exclude_categories"].description)
    seed_items: list[Id] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_SEEDS, description=_FIELDS["seed_items"].description)
    queries: list[Query] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_QUERIES, description=_FIELDS["queries"].description)
    exclude_items: list[Id] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_EXCLUDED,
        description=_FIELDS["exclude_items"].description)

    def to_constraints(self) -> Constraints:
        """The pipeline's own type (equal to ``Constraints()`` when nothing was asked)."""
        return Constraints.model_validate(self.model_dump())


class RecommendRequest(BaseModel):
    """POST /v1/recommend."""

    model_config = ConfigDict(extra="forbid")

    user: Id | None = Field(  # type: ignore[valid-type]
        default=None,
        description="User id of the dataset. Omit it for an anonymous request, which then "
                    "needs constraints (queries, seed items or categories) to go on.")
    k: int | None = Field(
        default=None, ge=1, le=MAX_K,
        description=f"How many items (default: the pipeline's recommend.k); 1..{MAX_K}.")
    constraints: RequestConstraints = Field(default_factory=RequestConstraints)


class ChatRequestBody(BaseModel):
    """POST /v1/chat: one user message in a (new or existing) conversation."""

    model_config = ConfigDict(extra="forbid")

    session_id: Id | None = Field(  # type: ignore[valid-type]
        default=None,
        description="The id a previous reply returned; omit it to start a new conversation.")
    message: Message  # type: ignore[valid-type]
    user: Id | None = Field(  # type: ignore[valid-type]
        default=None,
        description="Dataset user id the conversation is about (only when starting one); "
                    "omit for a new, anonymous user.")
    role: Literal["user", "assistant"] = Field(
        default="user",
        description="'user': a message to answer. 'assistant': a message someone else said to "
                    "the user in this conversation (e.g. a human recommender's, when a "
                    "conversation is imported or replayed): it is recorded — the titles it "
                    "names count as shown and are not recommended back — and not answered.")


class ChatReply(BaseModel):
    """The agent's answer to one chat message."""

    session_id: str = Field(description="Send it back with the next message.")
    text: str
    recommendations: RecommendationList | None = None
    turn: dict[str, Any] = Field(
        default_factory=dict, description="The chat turn as the agent returned it (fields "
                                          "beyond text and recommendations), with "
                                          "constraints.exclude_items given as its count, "
                                          "constraints.exclude_items_count.")
    titles: dict[str, str] = Field(
        default_factory=dict, description="Title of every history item the explanations "
                                          "cite (item id -> title).")


class TasteView(BaseModel):
    """GET (and POST) /v1/users/{id}/taste: the profile as the user edited it, their edits,
    and the titles of the items it names."""

    profile: InterestProfile = Field(description="The profile the pipeline uses: computed, "
                                                 "with the user's edits applied.")
    overrides: TasteOverrides
    removed: list[Interest] = Field(
        default_factory=list, description="The interests the user removed (to restore).")
    titles: dict[str, str] = Field(
        default_factory=dict, description="Title of every item id the profile names "
                                          "(evidence of interests and dislikes).")


class LLMHealth(BaseModel):
    """The LLM backend as this server sees it, from memory (the LLM is never called)."""

    backend: str
    breaker: BreakerSnapshot


class Health(BaseModel):
    """GET /health: the server is up; what it serves, and whether its LLM is reachable."""

    status: Literal["ok", "degraded", "starting"] = Field(
        default="ok", description="'degraded': the LLM circuit breaker is open (answers come "
                                  "without the LLM, flagged); 'starting': the pipeline is not "
                                  "built yet.")
    dataset: str | None = None
    items: int | None = None
    users: int | None = None
    chat_sessions: int = 0
    llm: LLMHealth | None = None


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. 'UnknownIdError', "
                                  "'validation_error', 'unauthorized', 'internal_error'.")
    message: str = Field(description="What is wrong, for a person.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail
