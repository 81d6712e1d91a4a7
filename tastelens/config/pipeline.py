"""The recommendation pipeline's config: the ``[recommend]`` table of the settings, one model
per stage, each field's default here and nowhere else.

    [recommend]                 PipelineConfig
    [recommend.profiler]          ProfilerConfig        (agent/profile/profiler.py)
    [recommend.profiler.facts]      ProfileFactsConfig  (agent/profile/facts.py)
    [recommend.profiler.facts.drift]  DriftSettings     (agent/profile/drift.py)
    [recommend.profiler.facts.mining] MiningConfig      (agent/profile/mining.py)
    [recommend.collaborative]     CollaborativeConfig   (tastelens/config/models.py)
    [recommend.retriever]         RetrieverConfig       (agent/retrieve/retriever.py)
    [recommend.rerank]            RerankConfig          (agent/rank/reranker.py)
    [recommend.explain]           ExplainConfig         (agent/explain/)

The models live in the core, not beside their stages, so that
:class:`tastelens.config.settings.Settings` validates the whole table when settings are resolved
(a wrong key is named as ``recommend.rerank.mode``) without importing the agent. Every model
forbids unknown keys and round-trips through JSON.

A stage's ``concurrency = None`` means the backend's setting, ``llm.concurrency``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from tastelens.config.base import ConfigSection
from tastelens.config.models import CollaborativeConfig

ProfileSource = Literal["store", "llm", "facts"]
RerankMode = Literal["none", "listwise", "score", "learned"]
"""'none': retrieval order; 'listwise': the LLM writes the ranked list of candidate ids;
'score': candidates are scored by the LLM's next-token log-probabilities of their ids;
'learned': the trained LightGBM ranker over candidate features (with the LLM's scores as
one of them when the ranker has that part)."""

MAX_RETRIEVED = 200
"""Most candidates one retrieval may return."""
MAX_K = 100
"""Most items a user may ask for: the one limit on ``k`` of the CLI (``--k``, ``recommend.k``),
the chat and the HTTP API (``k``). Evaluation runs may ask the pipeline for longer lists."""
MAX_RERANKED = 26
"""Most candidates one ranking prompt shows: they are labelled with the letters A–Z."""


# -- profile ----------------------------------------------------------------------------
class DriftConfig(ConfigSection):
    """One exponential decay w(t+1) = α·w(t) + β·x(t) over the event sequence."""

    alpha: float = Field(gt=0.0, le=1.0, description="Decay per event; 1 = no forgetting.")
    beta: float | None = Field(
        default=None, gt=0.0,
        description="Weight of the new event; None means 1 − α (or 1 when α = 1).")

    @property
    def effective_beta(self) -> float:
        if self.beta is not None:
            return self.beta
        return 1.0 - self.alpha if self.alpha < 1.0 else 1.0

    @property
    def half_life(self) -> float:
        """Events after which an event's weight has halved (inf when α = 1)."""
        return math.inf if self.alpha >= 1.0 else math.log(0.5) / math.log(self.alpha)


class DriftSettings(ConfigSection):
    """The two decays that define long-term and recent interest, and what counts as drift."""

    long_term: DriftConfig = Field(default_factory=lambda: DriftConfig(alpha=0.99))
    recent: DriftConfig = Field(default_factory=lambda: DriftConfig(alpha=0.9))
    min_delta: float = Field(default=0.02, ge=0.0,
                             description="Smallest |recent − long_term| reported as drift.")
    max_entries: int = Field(default=6, ge=0, description="Most drift entries reported.")


class MiningConfig(ConfigSection):
    """Interest mining from the data (agent/profile/mining.py and topics.py): which
    descriptors, item groups and rating contrasts of a history become interests."""

    alpha: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Decay per event of the weights the miner counts with (newest = 1); "
                    "None = drift.long_term.alpha. Trends always compare drift.recent with "
                    "drift.long_term.")
    prior_strength: float = Field(
        default=20.0, gt=0.0,
        description="Keyword: α0 of the informative Beta prior (catalog share × α0 pseudo-"
                    "items) in the log-odds of a descriptor among the user's liked items; "
                    "larger = rare descriptors need more support.")
    min_support: int = Field(
        default=2, ge=1, description="Keyword: liked items a descriptor needs.")
    min_z: float = Field(
        default=1.64, ge=0.0,
        description="Keyword: smallest log-odds z-score (over-representation against the "
                    "catalog) a kept descriptor has.")
    rank_by: Literal["z", "delta"] = Field(
        default="z",
        description="Order of the kept descriptors (keywords, a topic's descriptors): 'z' the "
                    "z-score (favours well-supported ones), 'delta' the log-odds ratio "
                    "itself (favours the most particular ones).")
    generic_share: float = Field(
        default=0.002, ge=0.0, lt=1.0,
        description="The catalog's most common descriptors by interaction rate, this share "
                    "of its vocabulary (rounded down: none in a small catalog), name no "
                    "particular taste ('murder', 'based on novel'): no interest is made of "
                    "them.")
    max_keywords: int = Field(default=8, ge=0, description="Keyword interests kept.")
    merge_overlap: float = Field(
        default=0.75, gt=0.0, le=1.0,
        description="A descriptor whose evidence overlaps a kept one's this much (Jaccard) "
                    "joins that interest instead of making its own ('toy' and 'toy comes to "
                    "life' on the same films).")
    max_topics: int = Field(default=4, ge=0, description="Topic interests kept.")
    items_per_topic: int = Field(
        default=6, ge=2, description="Liked items per cluster asked of k-means: k = liked "
                                     "items // this, between 2 and max_topics + 2.")
    min_topic_size: int = Field(default=3, ge=2, description="Smallest cluster kept.")
    topic_descriptors: int = Field(
        default=3, ge=1, le=6, description="Distinguishing descriptors naming a topic.")
    space_dims: int = Field(
        default=64, ge=2, description="Dimensions of the item space topics cluster in "
                                      "(truncated SVD of the items' TF-IDF text).")
    max_sentiment: int = Field(default=3, ge=0, description="Sentiment interests kept.")
    sentiment_min_items: int = Field(
        default=2, ge=1, description="Rated items with and without the descriptor, inside one "
                                     "category, a sentiment contrast needs.")
    sentiment_min_gap: float = Field(
        default=0.15, ge=0.0, le=1.0,
        description="Smallest (shrunk) rating gap, as a share of the rating scale, between "
                    "items with and without the descriptor inside the category.")
    max_applications: int = Field(default=2, ge=0, description="Application interests kept.")
    application_min_support: int = Field(default=2, ge=1,
                                         description="Application: liked items needed.")
    application_min_z: float = Field(
        default=1.0, ge=0.0, description="Application: smallest log-odds z-score (occasion "
                                         "descriptors are rare, so this is below min_z).")
    max_keyword_dislikes: int = Field(default=2, ge=0,
                                      description="Descriptors the user's low ratings share.")


class ProfileFactsConfig(ConfigSection):
    """Rating scale, dislike thresholds and limits of the deterministic profile parts."""

    rating_min: float = Field(default=0.5, description="Lowest rating of the scale.")
    rating_max: float = Field(default=5.0, gt=0.0, description="Highest rating of the scale.")
    dislike_max_rating: float = Field(
        default=2.0, description="An item is disliked at or below min(this, mean − margin).")
    dislike_margin: float = Field(
        default=1.0, ge=0.0, description="How far below the user's mean a dislike must be, so "
                                         "harsh raters' ordinary 2.0s are not dislikes.")
    max_dislikes: int = Field(default=5, ge=0, description="Most low-rated items listed.")
    min_category_count: int = Field(
        default=3, ge=1, description="Items a category needs before it can be a dislike.")
    ignore_categories: tuple[str, ...] = Field(
        default=("(no genres listed)",), description="Placeholder categories to skip.")
    max_categories: int = Field(default=12, ge=1, description="Category preferences kept.")
    drift: DriftSettings = Field(default_factory=DriftSettings)
    mining: MiningConfig = Field(default_factory=MiningConfig)


class ReplyLimits(ConfigSection):
    """Counts and lengths of a profile reply: the bounds of its guided-JSON schema
    (agent/profile/reply_schema.py). Small models fill every list and string to its bound,
    so these set the reply's length, and the reply's length most of a profile's cost."""

    max_likes: int = Field(default=3, ge=1, le=6)
    min_likes: int = Field(default=1, ge=1, le=6)
    max_dislikes: int = Field(default=1, ge=0, le=3)
    max_evidence: int = Field(default=3, ge=1, le=3)
    max_label_chars: int = Field(default=40, ge=8, le=100)
    max_summary_chars: int = Field(default=140, ge=20, le=300)
    max_explore: int = Field(default=2, ge=0, le=3)
    max_explore_chars: int = Field(default=32, ge=8, le=60)

    def tighter(self) -> ReplyLimits:
        """The retry's bounds: two likes at most, one dislike, a short summary, no ideas."""
        return self.model_copy(update={
            "max_likes": min(self.max_likes, 2), "min_likes": 1,
            "max_dislikes": min(self.max_dislikes, 1), "max_evidence": min(self.max_evidence, 2),
            "max_label_chars": min(self.max_label_chars, 32),
            "max_summary_chars": min(self.max_summary_chars, 100), "max_explore": 0})


class ProfilerConfig(ConfigSection):
    """How the profiler asks the model and how strictly it validates the reply."""

    prompt: Literal["groups", "history"] = Field(
        default="groups",
        description="'groups': the model names the interest groups mined from the data "
                    "(agent/profile/groups.py) and writes the summary; 'history': the model "
                    "reads the rated items and states interests itself (the earlier prompt, "
                    "which adapters trained before the grouped prompt expect).")
    max_groups: int = Field(default=8, ge=1, le=20,
                            description="'groups': liked groups shown (and labelled).")
    max_dislike_groups: int = Field(default=2, ge=0, le=5,
                                    description="'groups': disliked groups shown.")
    group_titles: int = Field(default=2, ge=0, le=4,
                              description="'groups': evidence titles shown per group.")
    max_tokens: int = Field(
        default=320, ge=16, description="Reply length limit (tokens). A reply cut off here is "
                                        "repaired (closed at its last complete value) and "
                                        "read; only one that cannot be is retried.")
    retry_max_tokens: int = Field(
        default=160, ge=16, description="Limit of the one retry, asked under the tighter "
                                        "schema (reply.tighter()).")
    reply: ReplyLimits = Field(default_factory=ReplyLimits)
    temperature: float | None = Field(
        default=None, ge=0.0, description="Sampling temperature; None = llm.temperature.")
    adapter: str | None = Field(default=None, description="LoRA adapter to answer with.")
    concurrency: int | None = Field(
        default=None, ge=1, description="Requests in flight when profiling many users; "
                                        "None = the backend's (llm.concurrency).")
    batch_size: int | None = Field(
        default=None, ge=1, description="Users per backend call when profiling many; "
                                        "finished profiles are yielded after each batch. None "
                                        "= twice the requests in flight (at least 8): the "
                                        "server stays busy and a kill loses one batch at most.")
    max_label_chars: int = Field(default=80, ge=8)
    require_evidence: bool = Field(
        default=True, description="Drop interests whose evidence did not survive validation.")
    max_explore: int = Field(default=3, ge=0)
    facts: ProfileFactsConfig = Field(default_factory=ProfileFactsConfig)


# -- retrieve ---------------------------------------------------------------------------
class SourceWeights(ConfigSection):
    """RRF weight of each kind of query (an interest's or category's own weight multiplies
    its kind's)."""

    collaborative: float = Field(
        default=2.0, ge=0.0, description="The sequence model's top items for the user's "
                                         "encoded history (Chroma, inner product).")
    cooccurrence: float = Field(default=2.0, ge=0.0,
                                description="The item-item model's (EASE) top items.")
    interest: float = Field(default=1.0, ge=0.0, description="Liked profile interests.")
    category: float = Field(default=0.5, ge=0.0, description="Top categories.")
    wish: float = Field(default=2.0, ge=0.0, description="Free-text wishes of the request.")
    seed: float = Field(default=2.0, ge=0.0, description="Seed items ('like Heat').")
    dislike: float = Field(default=0.5, ge=0.0,
                           description="Strength of the demotion by a disliked interest.")
    descriptor: float = Field(default=1.0, ge=0.0,
                              description="Items carrying a descriptor the request names "
                                          "('zombies' -> the catalog's 'zombie').")
    prior: float = Field(default=1.0, ge=0.0,
                         description="The popularity prior's top items (requests with a short "
                                     "history: see retriever.prior), divided by 1 + the "
                                     "history items, seeds and wishes the request has.")


class ExploreConfig(ConfigSection):
    """Exploration slots: candidates outside the user's usual taste, marked 'explored'."""

    slots: int = Field(
        default=2, ge=0, le=50,
        description="Explored candidates: the retriever finds at most this many (marked "
                    "'explored'), and they take the last positions of the final list, at most "
                    "half of k; 0 = no exploration.")
    max_queries: int = Field(default=3, ge=1, le=10,
                             description="explore_next interests (or fallback categories) "
                                         "asked.")


class PriorConfig(ConfigSection):
    """The popularity prior as a retrieval source (:mod:`tastelens.vectorstore.popularity`):
    what people actually watch, for requests that say little about the user."""

    max_history: int = Field(
        default=5, ge=-1, description="Asked for histories of at most this many items (a new "
                                      "visitor's, a cold user's); -1 = never.")
    keep: int = Field(default=100, ge=1, le=1000,
                      description="Allowed items kept from the prior's order before fusion.")
    freshness: float = Field(
        default=1.0, ge=0.0, description="Log-popularity a decade of release-year age costs "
                                         "(0 = plain popularity; no effect without years).")


class RetrieverConfig(ConfigSection):
    """How many candidates, from which queries, fused and diversified how."""

    n_candidates: int = Field(default=100, ge=5, le=MAX_RETRIEVED,
                              description="Candidates returned when the call gives no n "
                                          "(what the re-ranker orders).")
    per_query_k: int = Field(default=50, ge=1, le=1000,
                             description="Allowed hits kept per query before fusion.")
    max_fetch: int = Field(
        default=1024, ge=1, le=10_000,
        description="Most results asked of Chroma per query. Seen items are removed after the "
                    "query, so it over-fetches per_query_k + min(|history|, per_query_k), "
                    "rounded up to a power of two (users of similar history length then share "
                    "one batched call).")
    rrf_k: float = Field(default=60.0, gt=0.0, description="RRF constant: w / (rrf_k + rank).")
    weights: SourceWeights = Field(default_factory=SourceWeights)
    max_interest_queries: int = Field(default=6, ge=0, le=50,
                                      description="Liked interests asked, strongest first.")
    max_category_queries: int = Field(default=3, ge=0, le=20,
                                      description="Top categories asked.")
    evidence_titles: int = Field(
        default=2, ge=0, le=5, description="Titles of an interest's newest evidence items "
                                           "appended to its query text (0 = the label "
                                           "alone).")
    max_descriptor_queries: int = Field(
        default=4, ge=0, le=20, description="Descriptors named by the request's wishes and "
                                            "stated likes that are asked (first named first).")
    descriptor_min_items: int = Field(
        default=2, ge=1, description="A descriptor is asked only when at least this many "
                                     "items carry it.")
    interest_query: Literal["text", "evidence"] = Field(
        default="text",
        description="How a liked interest is asked: 'text' embeds its label and the titles "
                    "of its evidence; 'evidence' averages its evidence items' stored vectors "
                    "(the centre of the group the interest stands for).")
    interest_trend_gain: float = Field(
        default=0.0, ge=0.0, le=10.0,
        description="An interest query's weight is multiplied by max(0.1, 1 + this × the "
                    "interest's trend): rising interests (drift) are asked harder; 0 = off.")
    popularity_prior: float = Field(
        default=0.0, ge=0.0, le=5.0,
        description="Interest queries: hits are re-ordered by similarity + this × "
                    "log(1 + interactions) / log(1 + the most interactions), among the "
                    "prior_fetch nearest items; 0 = similarity alone.")
    popularity_half_life_days: float = Field(
        default=0.0, ge=0.0, le=36_500.0,
        description="The popularity prior of interest queries counts the events before the "
                    "request's moment (its history's newest event), each halved per this many "
                    "days of age: what is watched then, not what was watched ever; 0 = "
                    "all-time counts (also for a request or catalog without timestamps).")
    prior_fetch: int = Field(
        default=256, ge=1, le=10_000,
        description="Nearest items an interest query fetches when popularity_prior > 0.")
    max_dislike_queries: int = Field(default=3, ge=0, le=20,
                                     description="Non-category dislikes asked (demotion).")
    category_dislike_penalty: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Score factor 1 − this·weight for items in a disliked category.")
    collaborative_k: int = Field(
        default=100, ge=1, le=1000,
        description="Allowed hits kept from each collaborative source (sequence model, "
                    "item-item model) before fusion.")
    mmr_lambda: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="MMR trade-off (1 = relevance only); None = no diversity re-ordering.")
    mmr_pool: int = Field(default=3, ge=1, le=10,
                          description="MMR picks from the top mmr_pool × n fused items.")
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)


# -- re-rank ----------------------------------------------------------------------------
class RerankConfig(ConfigSection):
    """How (and whether) the LLM re-orders retrieved candidates."""

    mode: RerankMode = Field(
        default="learned", description="'learned': the trained ranker (`tastelens rank "
                                       "train`); 'score': the LLM's next-token "
                                       "log-probabilities of the labels (one token per "
                                       "prompt); 'listwise': the model writes the ranked "
                                       "labels; 'none': retrieval order.")
    visitors: Literal["retrieval", "learned"] = Field(
        default="retrieval",
        description="Requests without a dataset user (a chat visitor, an anonymous API "
                    "request): 'retrieval' serves the retrieval order — the popularity prior, "
                    "the named films' neighbours, the stated genres — and 'learned' the stage "
                    "'mode' names. The learned ranker is trained on dataset users' histories; "
                    "bench/results/chat-redial.md compares both on real dialogues.")
    ranker: str = Field(
        default="default", min_length=1,
        description="Mode 'learned': the ranker's name under <cache_dir>/rankers/<dataset>/, "
                    "or a folder holding one.")
    llm_feature: bool = Field(
        default=True, description="Mode 'learned': let the LLM score the first "
                                  "max_candidates candidates for a ranker trained with that "
                                  "feature (one request per user); false = never ask the LLM.")
    max_candidates: int = Field(
        default=20, ge=1, le=MAX_RERANKED,
        description="The first this many candidates (retrieval order) are shown to the LLM; "
                    "in the LLM modes the rest follow them in retrieval order.")
    max_history: int = Field(default=10, ge=0, description="Most recent history items shown.")
    compact: bool = Field(
        default=True, description="Show titles only (with the rating for history items); "
                                  "false adds each item's year and genres (a longer prompt).")
    permutations: int = Field(
        default=1, ge=1, le=10, description="Prompts per user: the retrieval order plus "
                                            "permutations-1 seeded shuffles, aggregated.")
    aggregate: Literal["borda", "mrr"] = Field(
        default="borda", description="Listwise aggregation over permutations: Borda count or "
                                     "mean reciprocal rank.")
    seed: int = Field(default=0, description="Seed of the candidate shuffles.")
    adapter: str | None = Field(default=None, description="LoRA adapter to rank with.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Listwise reply limit; None = 32 + 9 per candidate "
                                        "(room for a label and the separators the grammar "
                                        "allows around it).")
    top_logprobs: int = Field(default=20, ge=1, le=20,
                              description="Score mode: alternatives returned per token.")
    temperature: float | None = Field(
        default=None, ge=0.0, description="Sampling temperature; None = llm.temperature.")
    concurrency: int | None = Field(
        default=None, ge=1, description="Requests in flight; None = the backend's "
                                        "(llm.concurrency).")


# -- explain ----------------------------------------------------------------------------
class ExplainConfig(ConfigSection):
    """How recommended items are explained."""

    enabled: bool = Field(default=True, description="False: items carry no explanation.")
    use_llm: bool = Field(
        default=False, description="Let the model write the sentence (one short request per "
                                   "item); False: the data template only (instant).")
    max_tokens: int = Field(
        default=64, ge=16, description="Reply limit per item; room for a guided reply of "
                                       "max_text_chars.")
    adapter: str | None = Field(default=None, description="LoRA adapter to explain with.")
    max_evidence: int = Field(default=2, ge=1, le=5, description="History items cited per item.")
    shown_history: int = Field(default=4, ge=1, le=20,
                               description="History items the model may cite (h1..hN); at "
                                           "most evidence_pool of them.")
    liked_rating: float = Field(
        default=3.5, description="A rated history item is cited as 'you liked' only at or "
                                 "above this rating (unrated items count as liked).")
    evidence_pool: int = Field(
        default=5, ge=1, le=20, description="A cited history item must be among this many "
                                            "liked items most similar to the recommended one.")
    evidence_margin: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="Diversity within the pool: a pick's first citation is an item the list "
                    "has not cited yet when it is at most this much less similar (cosine) than "
                    "a cited one; the others are chosen list-wide, as many distinct as possible.")
    list_min_distinct: int = Field(
        default=6, ge=0, le=50,
        description="Distinct history items a list cites at least, when its picks' pools allow "
                    "it: below it a pick's first citation may give way to another pool item.")
    evidence_min_similarity: float = Field(
        default=0.55, ge=-1.0, le=1.0,
        description="Text-vector cosine below which a history item is not cited as 'like' a "
                    "recommended one (nothing cited rather than something unrelated).")
    interest_min_similarity: float = Field(
        default=0.5, ge=-1.0, le=1.0,
        description="Cosine between a claim's text (an interest label, minus the categories "
                    "and decade it names) and the item's text vector above which the item's "
                    "text supports it, when its tags and text do not contain the words.")
    max_interests: int = Field(default=2, ge=1, le=5,
                               description="Supported interests named in one explanation.")
    max_text_chars: int = Field(
        default=120, ge=40, description="Longest text (the guided schema's maxLength), so the "
                                        "JSON closes within max_tokens.")
    temperature: float | None = Field(
        default=None, ge=0.0, description="Sampling temperature; None = llm.temperature.")
    concurrency: int | None = Field(
        default=None, ge=1, description="Requests in flight; None = the backend's "
                                        "(llm.concurrency).")


# -- the pipeline -----------------------------------------------------------------------
class PipelineConfig(ConfigSection):
    """The whole pipeline's config: the ``[recommend]`` table of the settings."""

    moved = {"explore_slots": "retriever.explore.slots"}

    k: int = Field(default=10, ge=1, description="Items returned when a call gives no k.")
    profiler: ProfilerConfig = Field(default_factory=ProfilerConfig)
    collaborative: CollaborativeConfig = Field(default_factory=CollaborativeConfig)
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    profile_source: ProfileSource = Field(
        default="store", description="'store': the latest stored profile when it matches the "
                                     "history, else on_missing_profile; 'llm': built now by the "
                                     "profiler; 'facts': data facts only, no LLM call.")
    on_missing_profile: Literal["llm", "facts"] = Field(
        default="facts", description="How 'store' computes a profile that is absent or stale "
                                     "('facts' makes no LLM call).")
