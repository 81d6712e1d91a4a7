"""Model-written explanations: the request, the guided reply schema and the checks a reply
passes before it is shown.

The model sees only checked facts: the reasons the item supports (never an interest it does
not) and the item's evidence pool as short ids ``h1..hN`` (liked history items among the most
similar to it, least-cited first). Its guided JSON reply ``{"text", "evidence"}`` has the
ids as an enum. A reply is shown only when its text claims nothing the template could not:

- ids in the text are shown ids, mapped back to titles; a quoted title is the recommended
  item's or a shown item's (a title from elsewhere — the catalog or the rest of the
  history — is not among the most similar);
- every catalog category it names is one the item carries, every decade and year it names
  outside the titles it may name is the item's (so "a 1990s drama" needs a 1990s Drama);
- every profile interest it names is one the item supports.

Anything else, or no usable evidence, and the data template stands in (counted).
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, Field, create_model

from tastelens.agent.explain.support import CategoryReader, claimed_parts, mentioned_years, tokens
from tastelens.data.titles import strip_year, title_key
from tastelens.prompts.renderer import json_data
from tastelens.schemas import InterestProfile, Item

SHORT_ID = re.compile(r"\bh([1-9][0-9]?)\b")
QUOTED = re.compile(r'"([^"]{2,120})"')
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


class ExplainReply(BaseModel):
    """The model's reply; the schema sent for guided decoding narrows ``evidence``."""

    text: str
    evidence: list[str] = Field(default_factory=list, max_length=10)


@lru_cache(maxsize=64)
def reply_schema(n_shown: int, max_evidence: int, max_chars: int) -> type[ExplainReply]:
    ids = [f"h{k}" for k in range(1, n_shown + 1)]
    return create_model(
        f"ExplainReply{n_shown}", __base__=ExplainReply,
        text=(str, Field(json_schema_extra={"maxLength": max_chars, "minLength": 10})),
        evidence=(list[str], Field(json_schema_extra={
            "items": {"type": "string", "enum": ids}, "minItems": 1,
            "maxItems": min(max_evidence, n_shown)})))


def trim(text: str, max_chars: int) -> str:
    """Whitespace collapsed, cut to ``max_chars``, a sentence the cut left unfinished dropped."""
    text = " ".join(text.split())[:max_chars]
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and not text.endswith((".", "!", "?")):
        text = text[: ends[-1]]
    return text


UNSUPPORTED = ("title", "quoted", "genre", "decade", "year", "interest")
"""Rejection kinds that are claims the item does not support (the rest: 'id', 'short')."""


def unsupported(text: str, *, item: Item, shown: dict[str, Item], labels: list[str],
                profile: InterestProfile | None, categories: CategoryReader,
                title_owners: dict[str, set[str]]) -> tuple[str, str] | None:
    """Why the model's ``text`` claims more than the facts, as (kind, detail); None: it
    does not. Kinds: 'id', and the claims of :data:`UNSUPPORTED`.

    ``shown`` maps short ids to the pool items the model saw; ``labels`` are the supported
    reason labels it was given."""
    if any(f"h{m}" not in shown for m in SHORT_ID.findall(text)):
        return "id", "an id it was not shown"
    allowed = [*shown.values(), item]
    allowed_ids = {it.id for it in allowed}
    allowed_labels = {label.casefold() for label in labels}
    for quoted in QUOTED.findall(text):
        owners = title_owners.get(title_key(quoted), set())
        if owners and not owners & allowed_ids:
            return "title", f"quotes {quoted!r}, not among the items shown"
        if not owners and quoted.casefold() not in allowed_labels:
            parts = claimed_parts(quoted, categories)
            if parts.categories or parts.decades:
                return "quoted", f"quotes {quoted!r}, not a supported fact"
    # Outside quotes, ids and the titles it may name: every category, decade and year named
    # must be the item's own.
    bare = SHORT_ID.sub(" ", QUOTED.sub(" ", text))
    for it in allowed:
        for title in (it.title, strip_year(it.title)):
            bare = re.sub(re.escape(title), " ", bare, flags=re.IGNORECASE)
    parts = claimed_parts(bare, categories)
    have = {c.casefold() for c in item.categories}
    wrong = [c for c in parts.categories if c.casefold() not in have]
    if wrong:
        return "genre", f"calls it {', '.join(wrong)}"
    if parts.decades and (item.year is None or not any(
            d <= item.year < d + 10 for d in parts.decades)):
        return "decade", "names a decade it is not from"
    if any(y != item.year for y in mentioned_years(bare)):
        return "year", "names a year it is not from"
    if profile is not None:
        folded = " ".join(tokens(text))
        for interest in profile.interests:
            words = " ".join(tokens(interest.label))
            if words and f" {words} " in f" {folded} " and \
                    interest.label.casefold() not in allowed_labels:
                return "interest", f"names the interest {interest.label!r}, not supported"
    return None


def fill_ids(text: str, shown: dict[str, Item]) -> str:
    """Short ids replaced by the quoted titles they stand for."""
    return SHORT_ID.sub(lambda m: json_data(shown[m.group(0)].title), text)
