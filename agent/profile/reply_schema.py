"""The guided-JSON schema of one user's profile reply: grounded by construction.

Every user gets a schema of their own, built from the history lines their prompt shows:

- a liked interest's ``evidence`` is an enum of the short ids (``h3``) of the shown items the
  user liked (rated at or above their mean; every shown item when nothing is rated), a
  dislike's an enum of the shown items rated at or below their dislike threshold; with no
  such item the ``dislikes`` list is left out of the schema;
- ``granularity`` is an enum, every string and list is bounded, and a label is letters,
  digits, spaces and ``' & / -`` only (no "Heat (1995)", no "Mummy, The").

Under guided decoding the model cannot cite an item it was not shown, or one whose rating
says the opposite, so that evidence is impossible rather than filtered. The profiler still
validates every reply (backends without guided decoding only *ask* for the schema).

:func:`tighter` gives the schema of the one retry after a reply that neither parsed nor could
be repaired: fewer and shorter fields, so it fits a smaller ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tastelens.schemas import Granularity

GRANULARITIES: tuple[Granularity, ...] = ("keyword", "topic", "sentiment", "application")


class ReplyLimits(BaseModel):
    """Counts and lengths of a profile reply (the schema's bounds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_likes: int = Field(default=4, ge=1, le=6)
    min_likes: int = Field(default=2, ge=1, le=6)
    max_dislikes: int = Field(default=2, ge=0, le=3)
    max_evidence: int = Field(default=3, ge=1, le=3)
    max_label_chars: int = Field(default=48, ge=8, le=100)
    max_summary_chars: int = Field(default=160, ge=20, le=300)
    max_explore: int = Field(default=2, ge=0, le=3)
    max_explore_chars: int = Field(default=40, ge=8, le=60)

    def tighter(self) -> ReplyLimits:
        """The retry's bounds: two likes at most, one dislike, a short summary, no ideas."""
        return self.model_copy(update={
            "max_likes": min(self.max_likes, 2), "min_likes": 1,
            "max_dislikes": min(self.max_dislikes, 1), "max_evidence": min(self.max_evidence, 2),
            "max_label_chars": min(self.max_label_chars, 32),
            "max_summary_chars": min(self.max_summary_chars, 100), "max_explore": 0})


def _label(max_chars: int) -> dict[str, Any]:
    # The length is in the pattern too: some guided-decoding backends ignore maxLength when a
    # pattern is present.
    return {"type": "string", "minLength": 3, "maxLength": max_chars,
            "pattern": f"^[A-Za-z0-9][A-Za-z0-9 '&/-]{{2,{max_chars - 1}}}$"}


def _interests(ids: Sequence[str], min_items: int, max_items: int,
               limits: ReplyLimits) -> dict[str, Any]:
    interest = {
        "type": "object",
        "properties": {
            "label": _label(limits.max_label_chars),
            "granularity": {"type": "string", "enum": list(GRANULARITIES)},
            "evidence": {"type": "array", "items": {"type": "string", "enum": list(ids)},
                         "minItems": 1, "maxItems": min(limits.max_evidence, len(ids))},
        },
        "required": ["label", "granularity", "evidence"],
        "additionalProperties": False,
    }
    return {"type": "array", "items": interest, "minItems": min_items, "maxItems": max_items}


def profile_reply_schema(like_ids: Sequence[str], dislike_ids: Sequence[str],
                         limits: ReplyLimits | None = None) -> dict[str, Any]:
    """The JSON schema of one user's reply (see the module docstring). ``like_ids`` must not
    be empty: a user with no item to back a liked interest gets no LLM call."""
    limits = limits or ReplyLimits()
    if not like_ids:
        raise ValueError("a profile reply schema needs at least one liked item id")
    properties: dict[str, Any] = {
        "likes": _interests(like_ids, min(limits.min_likes, limits.max_likes),
                            limits.max_likes, limits)}
    if dislike_ids and limits.max_dislikes:
        properties["dislikes"] = _interests(dislike_ids, 0, limits.max_dislikes, limits)
    properties["summary"] = {"type": "string", "minLength": 20,
                             "maxLength": limits.max_summary_chars}
    if limits.max_explore:
        properties["explore_next"] = {
            "type": "array", "maxItems": limits.max_explore,
            "items": {"type": "string", "minLength": 3, "maxLength": limits.max_explore_chars}}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}
