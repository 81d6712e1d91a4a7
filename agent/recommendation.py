"""The types that flow through the recommendation pipeline: profile → retrieve → re-rank →
explain, and what every interface (CLI, chat, HTTP API, eval harness) gets back.

- :class:`Constraints`: what the caller (or a chat turn) asks for on top of the profile —
  genres to include or exclude, a year range, seed items ("like Heat"), free-text queries
  ("funnier"), items to leave out.
- :class:`Candidate`: one retrieved item with its fused retrieval score and where it came
  from (which interest queries found it, or the exploration slots).
- :class:`RerankResult`: the re-ranker's order of one user's candidates, and its fallback.
- :class:`Recommendation` / :class:`RecommendationList`: the final, explained answer, with
  what happened on the way (stage timings, LLM fallbacks and counts).
- :data:`HistoryEvent`: a history as the re-ranker and the explainer take it.

The protocols say what the pipeline needs of each stage it wires — :class:`Retrieves`,
:class:`Reranks`, :class:`Explains` — and what the chat needs of the pipeline,
:class:`Recommends`; the real stages and any stand-in satisfy them by shape.

Item ids are strings, as everywhere in tastelens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tastelens.config.pipeline import RerankMode
from tastelens.data.categories import check_year_range, match_categories
from tastelens.schemas import Interaction, InterestProfile

Source = Literal["retrieved", "explored"]
"""'retrieved': found for the user's interests; 'explored': an exploration slot (an item for
the profile's "explore next" interests, adjacent to but outside the user's usual taste)."""



class Constraints(BaseModel):
    """Hard filters and soft hints for one request. Empty = just the profile."""

    model_config = ConfigDict(extra="forbid")

    include_categories: list[str] = Field(
        default_factory=list, description="Keep only items in any of these categories.")
    exclude_categories: list[str] = Field(
        default_factory=list, description="Drop items in any of these ('no horror').")
    year_min: int | None = Field(default=None, description="Release year ≥ this.")
    year_max: int | None = Field(default=None, description="Release year ≤ this.")
    seed_items: list[str] = Field(
        default_factory=list, description="Item ids the answer should resemble ('like Heat').")
    queries: list[str] = Field(
        default_factory=list, description="Free-text wishes used as extra retrieval queries "
                                          "and shown to the re-ranker ('but funnier').")
    exclude_items: list[str] = Field(
        default_factory=list, description="Item ids never to return (e.g. already shown).")

    def is_empty(self) -> bool:
        return self == Constraints()

    def checked(self, categories: Iterable[str], labels: tuple[str, str, str, str] = (
            "include_categories", "exclude_categories", "year_min", "year_max"),
                ) -> Constraints:
        """These constraints with genres spelled as in ``categories`` (matched
        case-insensitively). An unknown genre or ``year_min`` after ``year_max`` raises
        :class:`~tastelens.errors.InvalidRequestError` naming the field by its ``labels``
        (the CLI's options or the API's fields)."""
        known = list(categories)
        check_year_range(self.year_min, self.year_max, names=(labels[2], labels[3]))
        return self.model_copy(update={
            "include_categories": match_categories(self.include_categories, known,
                                                   field=labels[0]),
            "exclude_categories": match_categories(self.exclude_categories, known,
                                                   field=labels[1])})


class Candidate(BaseModel):
    """One retrieved item, before re-ranking."""

    model_config = ConfigDict(extra="forbid")

    item: str
    score: float = Field(description="Fused retrieval score (reciprocal-rank fusion); higher "
                                     "is better.")
    source: Source = "retrieved"
    matched: list[str] = Field(
        default_factory=list,
        description="Labels of the queries that retrieved it: profile interest labels, "
                    "'collaborative' (sequence model), 'cooccurrence' (item-item model), 'prior' "
                    "(popularity), "
                    "'seed:<id>', or a free-text query.")
    ranks: dict[str, int] = Field(
        default_factory=dict, description="Its 1-based rank in each query's list that held "
                                          "it, by query label (features of the re-ranker).")


ReasonKind = Literal["interest", "category", "wish", "seed", "explore", "collaborative",
                     "cooccurrence", "prior"]
"""interest: a liked profile interest; category: one of the user's top categories; wish: a
free-text request; seed: an item the request named ("like Heat"); explore: the exploration
idea the slot is for; collaborative / cooccurrence: found by the sequence model / the
item-item model from the user's history; prior: among the catalog's most-watched items (the
popularity prior: a new visitor's first picks)."""


class Reason(BaseModel):
    """One claim an explanation makes about its item, and what in the item's own data makes
    it true (the explainer states nothing it cannot support)."""

    model_config = ConfigDict(extra="forbid")

    kind: ReasonKind
    label: str = Field(description="What is claimed: the interest label, category, request "
                                   "or seed title; '' for collaborative and "
                                   "cooccurrence.")
    support: str = Field(description="Why it holds for this item, e.g. 'category Comedy; "
                                     "year 1995', \"tag 'heist'\", 'text similarity 0.52'.")


class Explanation(BaseModel):
    """Why one item is recommended, grounded in the user's own history."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="One or two sentences for the user.")
    interests: list[str] = Field(
        default_factory=list, description="Profile interest labels the item matches: each "
                                          "supported by the item's categories, year, tags "
                                          "or text.")
    reasons: list[Reason] = Field(
        default_factory=list, description="Every claim the text makes besides the cited "
                                          "history, each with its support in the item's data.")
    evidence: list[str] = Field(
        default_factory=list, description="Item ids from the user's history it is like: "
                                          "liked items among the most similar to it.")
    source: Literal["llm", "data"] = Field(
        default="data", description="'llm': written by the model and validated; 'data': "
                                    "the template built from retrieval matches.")


class Recommendation(BaseModel):
    """One recommended item."""

    model_config = ConfigDict(extra="forbid")

    item: str
    title: str
    year: int | None = Field(default=None, description="The item's year, when known.")
    categories: list[str] = Field(default_factory=list, description="The item's categories.")
    rank: int = Field(ge=1, description="1 = first.")
    score: float = Field(description="The score that placed it: the re-ranker's (the learned "
                                     "ranker's score, or a label log-probability in score "
                                     "mode) for re-ranked items, the retrieval fusion score "
                                     "otherwise (explored items, retrieval-order fallbacks); "
                                     "comparable within one source only.")
    source: Source = "retrieved"
    explanation: Explanation | None = None

    @property
    def evidence(self) -> list[str]:
        return self.explanation.evidence if self.explanation else []


class PipelineReport(BaseModel):
    """What happened while answering: timings per stage, fallbacks, LLM use."""

    model_config = ConfigDict(extra="forbid")

    profile_source: Literal["given", "store", "llm", "facts", "empty"] = Field(
        default="given", description="Where the profile came from: passed in, the profile "
                                     "store, built now by the LLM, built from data facts "
                                     "only, or an empty one (no history; constraints only).")
    profile_fallback: bool = Field(
        default=False, description="An LLM profile was asked for but the data-facts "
                                   "profile was used (the model's reply was unusable or the "
                                   "server was down).")
    rerank: RerankMode = "none"
    rerank_fallback: bool = Field(
        default=False, description="The re-ranker failed or timed out; retrieval order kept.")
    rerank_fallback_reason: str | None = None
    invalid_ids: int = Field(default=0, description="Duplicate or out-of-candidate ids the "
                                                    "listwise re-ranker returned (removed).")
    appended: int = Field(default=0, description="Candidates the re-ranker left out, appended "
                                                 "in retrieval order.")
    explain_fallbacks: int = Field(
        default=0, description="Explanations replaced by the data template (model reply "
                               "invalid, or it cited items outside the history).")
    candidates: int = 0
    explored: int = 0
    llm_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = Field(
        default_factory=dict, description="Seconds per stage: profile, retrieve, rerank, "
                                          "explain, total.")


class RecommendationList(BaseModel):
    """The answer to one recommend call."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, description="None for an anonymous chat user.")
    items: list[Recommendation] = Field(default_factory=list)
    constraints: Constraints = Field(default_factory=Constraints)
    report: PipelineReport = Field(default_factory=PipelineReport)


HistoryEvent = Interaction | tuple[str, float | None] | str
"""One history event as the stages take it: an interaction, an (item, rating) pair or an id."""


def history_pairs(history: Sequence[HistoryEvent]) -> list[tuple[str, float | None]]:
    """(item id, rating or None) pairs from interactions, pairs or bare item ids."""
    pairs: list[tuple[str, float | None]] = []
    for event in history:
        if isinstance(event, Interaction):
            pairs.append((event.item, event.rating))
        elif isinstance(event, str):
            pairs.append((event, None))
        else:
            pairs.append((str(event[0]), event[1]))
    return pairs


@dataclass
class RerankResult:
    """A user's re-ranked candidates: ``order`` holds every candidate exactly once."""

    order: list[str]
    scores: dict[str, float]
    fallback: bool = False
    reason: str | None = None
    invalid_ids: int = 0
    """Duplicate or unknown labels removed from listwise replies (summed over permutations)."""
    appended: int = 0
    """Candidates a listwise reply left out, appended (summed over permutations)."""


# -- what each stage does ---------------------------------------------------------------
class Retrieves(Protocol):
    """The retrieve stage (:class:`~tastelens.agent.retrieve.retriever.Retriever`)."""

    def retrieve_many(self, profiles: Sequence[InterestProfile],
                      histories: Sequence[Sequence[str]],
                      constraints: Constraints | Sequence[Constraints | None] | None = None,
                      n: int | None = None, *,
                      moments: Sequence[float | None] | None = None) -> list[list[Candidate]]:
        """Up to ``n`` unseen candidates per user: exploit ones by score, explored ones last;
        ``moments`` are the requests' moments (Unix seconds, the histories' newest events)."""
        ...


class Reranks(Protocol):
    """The re-rank stage (:class:`~tastelens.agent.rank.reranker.Reranker`)."""

    def rerank_many(self, profiles: Sequence[InterestProfile | None],
                    histories: Sequence[Sequence[HistoryEvent]],
                    candidates: Sequence[Sequence[Candidate]],
                    constraints: Sequence[Constraints | None] | Constraints | None = None,
                    ) -> list[RerankResult]:
        """Each user's candidates in a new order (every candidate once), or the retrieval
        order flagged as a fallback."""
        ...


class Explains(Protocol):
    """The explain stage (:class:`~tastelens.agent.explain.Explainer`)."""

    def explain_many(self, profiles: Sequence[InterestProfile | None],
                     histories: Sequence[Sequence[HistoryEvent]],
                     recs: Sequence[Sequence[Candidate]],
                     ) -> list[tuple[list[Explanation], int]]:
        """One explanation per item of each list, and how many fell back to the template."""
        ...


class Recommends(Protocol):
    """What the chat needs of :class:`~tastelens.agent.pipeline.RecommendPipeline`."""

    def recommend(self, user: str | None, *, k: int | None = None,
                  constraints: Constraints | None = None,
                  profile: InterestProfile | None = None,
                  history: list[str] | None = None) -> RecommendationList: ...

    def history_profile(self, history: list[str]) -> InterestProfile:
        """The data-facts profile of an anonymous history (a visitor's named films)."""
        ...
