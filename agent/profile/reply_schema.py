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

``ReplyLimits.tighter()`` bounds the one retry after a reply that neither parsed nor could be
repaired: fewer and shorter fields, so it fits a smaller ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tastelens.config.pipeline import ReplyLimits
from tastelens.schemas import Granularity

GRANULARITIES: tuple[Granularity, ...] = ("keyword", "topic", "sentiment", "application")


def _label(max_chars: int) -> dict[str, Any]:
    # The length lives in the pattern: xgrammar rejects a pattern next to min/maxLength.
    return {"type": "string", "pattern": f"^[A-Za-z0-9][A-Za-z0-9 '&/-]{{2,{max_chars - 1}}}$"}


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
    return reply_object(properties, limits)


def reply_object(properties: dict[str, Any], limits: ReplyLimits) -> dict[str, Any]:
    """A profile reply's object schema: ``properties`` (what the model is shown to answer
    about), then the summary and, when ``limits`` allow ideas, ``explore_next``; every one
    required, nothing else allowed."""
    properties = {**properties, "summary": {"type": "string", "minLength": 20,
                                            "maxLength": limits.max_summary_chars}}
    if limits.max_explore:
        properties["explore_next"] = {
            "type": "array", "maxItems": limits.max_explore,
            "items": {"type": "string", "minLength": 3, "maxLength": limits.max_explore_chars}}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}
