"""Domain types shared by every part of tastelens.

Ids are strings everywhere (MovieLens' integer ids become "1", "296", ...), so the
generic format and any later catalog can use whatever ids they have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Item(BaseModel):
    """One catalog item with the text the embedder and the prompts see."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Item id, unique in its catalog.")
    title: str = Field(min_length=1, description="Display title, e.g. 'Heat (1995)'.")
    year: int | None = Field(default=None, description="Release year when known.")
    categories: tuple[str, ...] = Field(
        default=(), description="Genres or categories, in the source's order.")
    tags: tuple[str, ...] = Field(
        default=(), description="Free-text tags (e.g. MovieLens tags.csv), most frequent first.")
    keywords: tuple[str, ...] = Field(
        default=(), description="Descriptors from the catalog or a side-information file: "
                                "keywords ('heist', 'toy comes to life') and the deeper parts "
                                "of category paths, most important first.")
    text: str | None = Field(
        default=None, description="Optional longer description from the source.")

    @field_validator("categories", "tags", "keywords", mode="before")
    @classmethod
    def _drop_blanks(cls, value: object) -> object:
        if isinstance(value, (list, tuple)):
            return tuple(str(v).strip() for v in value if str(v).strip())
        return value

    def document(self, max_tags: int = 12, max_keywords: int = 20) -> str:
        """The text that is embedded for retrieval: title, categories, keywords, tags,
        description (the encoder truncates what is past its window, so the short, specific
        parts come first)."""
        parts = [self.title]
        if self.categories:
            parts.append("Genres: " + ", ".join(self.categories))
        if self.keywords:
            parts.append("Keywords: " + ", ".join(self.keywords[:max_keywords]))
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags[:max_tags]))
        if self.text:
            parts.append(self.text)
        return ". ".join(parts)


class Interaction(BaseModel):
    """One user-item event. Every rating counts as an interaction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str = Field(min_length=1)
    item: str = Field(min_length=1)
    rating: float | None = Field(
        default=None, description="Explicit rating when the source has one.")
    timestamp: int | None = Field(default=None, description="Unix seconds when known.")


# --- Interest profiles ------------------------------------------------------------------
# The fine-grained profile is tastelens' core idea: what a user likes at several granularities
# (concrete keywords, themes, the feeling sought, the occasion), each interest grounded in
# items of the user's own history. Deterministic facts (categories, drift, dislikes from low
# ratings) are computed from data; the LLM only adds labels, a summary and exploration ideas.

Granularity = Literal["keyword", "topic", "sentiment", "application"]
"""keyword: concrete entities/terms ("Pixar", "heist"); topic: themes or sub-genres ("1990s
Disney musicals"); sentiment: the feeling sought ("bittersweet endings"); application: the
context of use or occasion ("family movie night")."""

GRANULARITY_ORDER: tuple[Granularity, ...] = ("keyword", "topic", "sentiment", "application")

Polarity = Literal["like", "dislike"]


class Interest(BaseModel):
    """One interest, grounded in items of the user's history."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=80,
                       description="Specific wording, e.g. '1990s Disney musicals'.")
    granularity: Granularity = Field(description="keyword, topic, sentiment or application.")
    weight: float = Field(ge=0.0, le=1.0, description="Strength within this profile, 0..1.")
    polarity: Polarity = Field(default="like")
    evidence: list[str] = Field(
        default_factory=list, description="Real item ids from the user's history.")
    descriptors: list[str] = Field(
        default_factory=list,
        description="Catalog descriptors (tastelens.data.descriptors) this interest stands "
                    "for, most distinctive first: what grounds its label, what a candidate "
                    "must carry to match it. Empty when the catalog has none to give.")
    trend: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="Drift of this interest: the share of the user's recent liked items "
                    "(fast decay) in its evidence minus the long-term share (slow decay); "
                    "positive = rising. None when not computed.")
    source: Literal["llm", "data", "user"] = Field(
        default="llm", description="'llm': stated by the model and validated; 'data': "
                                   "computed; 'user': added by the user (tastelens.taste).")
    pinned: bool = Field(default=False, description="The user pinned it: kept at full weight "
                                                    "and asked first (tastelens.taste).")


class CategoryPreference(BaseModel):
    """Coarse, deterministic preference for one catalog category (genre)."""

    model_config = ConfigDict(extra="forbid")

    category: str
    weight: float = Field(ge=0.0, le=1.0, description="Count- and rating-weighted share; "
                                                      "the weights of a profile sum to 1.")
    count: int = Field(ge=0, description="History items carrying this category.")
    mean_rating: float | None = Field(default=None, description="None when nothing was rated.")


class CategoryDrift(BaseModel):
    """How a category's share moved: recent (fast decay) minus long-term (slow decay)."""

    model_config = ConfigDict(extra="forbid")

    category: str
    long_term: float = Field(ge=0.0, le=1.0)
    recent: float = Field(ge=0.0, le=1.0)
    delta: float = Field(ge=-1.0, le=1.0, description="recent - long_term.")
    direction: Literal["rising", "falling"]


class ProfileProvenance(BaseModel):
    """What produced a profile, and how much of the model's reply validation removed."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="", description="LLM name; '' when none was asked.")
    adapter: str | None = Field(default=None, description="LoRA adapter name, if any.")
    prompt_version: str = Field(default="", description="Hash of the prompt templates.")
    llm_used: bool = Field(
        default=False, description="False: summary/interests come from the deterministic "
                                   "fallback, not from the model.")
    dropped_interests: int = Field(default=0, ge=0)
    dropped_evidence: int = Field(default=0, ge=0)


class InterestProfile(BaseModel):
    """A user's fine-grained interest profile (schema version 1)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    user: str = Field(min_length=1)
    dataset: str = Field(default="", description="Dataset name the history came from.")
    created_at: datetime
    history_hash: str = Field(description="sha256 over the user's (item, rating, timestamp) "
                                          "events; a changed hash means a stale profile.")
    n_items: int = Field(ge=0, description="Events in the history the profile was built from.")
    interests: list[Interest] = Field(default_factory=list, description="Liked interests.")
    dislikes: list[Interest] = Field(
        default_factory=list, description="Disliked interests and low-rated items.")
    categories: list[CategoryPreference] = Field(
        default_factory=list, description="Coarse preferences, strongest first.")
    long_term: dict[str, float] = Field(
        default_factory=dict, description="Category shares under slow decay (sum 1).")
    recent: dict[str, float] = Field(
        default_factory=dict, description="Category shares under fast decay (sum 1).")
    drift: list[CategoryDrift] = Field(
        default_factory=list, description="Largest |recent - long_term| first.")
    summary: str = Field(default="", description="Short natural-language description.")
    summary_source: Literal["llm", "data"] = Field(
        default="data", description="'data': the template summary built from the facts.")
    explore_next: list[str] = Field(
        default_factory=list, description="Adjacent interests worth trying.")
    explore_source: Literal["llm", "data"] = "data"
    provenance: ProfileProvenance = Field(default_factory=ProfileProvenance)

    def query_text(self, max_interests: int = 8) -> str:
        """Text for embedding the profile: liked interests, top categories, summary."""
        parts = [i.label for i in sorted(self.interests, key=lambda i: -i.weight)[:max_interests]]
        parts += [c.category for c in self.categories[:3]]
        return ". ".join(p for p in ("; ".join(parts), self.summary) if p)


# What the LLM is asked to produce. The profiler sends each user a JSON schema of their own
# (agent/profile/reply_schema.py): evidence is an enum of that user's liked (or low-rated)
# short ids, lengths and counts are bounded. These models only *read* a reply, so they are
# looser than that schema: a reply cut off at max_tokens and repaired (closed after its last
# complete value) still parses, and the profiler's validation decides what survives.

class ProfileReplyInterest(BaseModel):
    """One interest as the model states it; evidence uses the prompt's short ids (h1, h2…).
    Its polarity is the list it stands in (``likes`` or ``dislikes``)."""

    model_config = ConfigDict(extra="forbid")

    # Looser than Interest's 80 on purpose: one rambling label should cost that interest
    # (the profiler drops it and counts it), not the whole reply.
    label: str = Field(min_length=2, max_length=100)
    granularity: Granularity
    evidence: list[Annotated[str, Field(pattern=r"^h[1-9][0-9]{0,2}$")]] = Field(
        default_factory=list, max_length=3)


class ProfileReply(BaseModel):
    """The LLM's whole answer to the profile prompt."""

    model_config = ConfigDict(extra="forbid")

    # Field order is generation order under guided decoding: interests first, so the summary
    # is written after them (SmolLM2-135M asked for the summary first wrote a film title).
    likes: list[ProfileReplyInterest] = Field(min_length=1, max_length=6)
    dislikes: list[ProfileReplyInterest] = Field(default_factory=list, max_length=3)
    summary: str = Field(default="", max_length=300)
    explore_next: list[Annotated[str, Field(min_length=2, max_length=60)]] = Field(
        default_factory=list, max_length=3)

    def interests(self) -> list[tuple[Polarity, ProfileReplyInterest]]:
        """Likes then dislikes, each with its polarity."""
        return ([("like", i) for i in self.likes]
                + [("dislike", i) for i in self.dislikes])
