"""Per-candidate features of the learned re-ranker (:mod:`tastelens.agent.rank.learned`).

One row per (user, candidate); a feature that does not apply is NaN (LightGBM learns where
missing values go), so catalogs without categories, years, ratings or timestamps, and users
without a profile interest or a wish, need no special model. The groups:

- **retrieval**: the candidate's position and fused score in the retriever's list, its rank
  in the sequence model's, the item-item model's, the best interest query's, the best
  category query's and the popularity prior's answer, and how many lists held it;
- **collaborative**: the sequence model's score (user state · item vector) and its rank
  among all unseen items; the same for the item-item model (EASE);
- **profile**: cosine between the candidate's text vector and each liked interest's label
  (max and weight-averaged), the strongest dislike's label, the recent history (mean of the
  newest 5 items) and the liked history; wish and seed similarity; the long-term and recent
  share of the candidate's categories and their difference (drift), a disliked category,
  the exploration flag;
- **item**: log popularity, log popularity in the 90 days before the user's newest event,
  smoothed mean rating, years since the item's first event, release-year gap to the user's
  recent items; **user**: log history length;
- **llm** (:data:`LLM_FEATURE`): the LLM's score-mode log-probability of the candidate's
  label, for the candidates it was shown (NaN for the others);
- **interest** (:data:`INTEREST_FEATURES`, used by a ranker trained with them): the
  candidate's descriptors (:mod:`tastelens.data.descriptors`) against the profile's
  descriptor-backed interests — the summed weight of the keyword/application interests it
  carries a descriptor of, that sum with each weight scaled by 1 + the interest's trend
  (drift), the best share of a topic's descriptors it carries (× the topic's weight), the
  summed idf of its descriptors shared with any liked interest, and the summed weight of the
  disliked interests it matches. NaN when the profile has no descriptor-backed interest or
  the candidate no descriptor.

Popularity, ratings and first-seen times come from :class:`ItemStats` of the interactions
the models were fitted on, counted as of the history's newest event: an item no one had
seen yet has no age and no popularity, whatever happened later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tastelens.agent.recommendation import Candidate
from tastelens.data.dataset import Dataset, catalog_indices
from tastelens.schemas import InterestProfile
from tastelens.vectorstore.collaborative import CollaborativeModels

LLM_FEATURE = "llm_logprob"
BASE_FEATURES: tuple[str, ...] = (
    "retrieval_pos", "retrieval_score", "rank_collaborative", "rank_cooccurrence",
    "rank_interest", "rank_category", "rank_prior", "n_sources",
    "sasrec_score", "sasrec_rank", "ease_score", "ease_rank",
    "interest_sim_max", "interest_sim_mean", "dislike_sim_max", "recent_sim", "liked_sim",
    "wish_sim", "seed_sim", "cat_long", "cat_recent", "cat_drift", "cat_disliked", "explored",
    "log_pop", "log_pop_recent", "mean_rating", "item_age", "year_gap", "log_history",
)
INTEREST_FEATURES: tuple[str, ...] = (
    "interest_kw", "interest_kw_drift", "interest_topic", "interest_idf", "interest_dislike")
FEATURES: tuple[str, ...] = (*BASE_FEATURES, LLM_FEATURE, *INTEREST_FEATURES)
"""Every feature the builder computes, in column order."""


def feature_sets(*, interest: bool, llm: bool) -> dict[str, list[str]]:
    """The columns of each ensemble a ranker trains: 'base', and 'llm' = base + the LLM's."""
    base = [*BASE_FEATURES, *(INTEREST_FEATURES if interest else ())]
    return {"base": base, **({"llm": [*base, LLM_FEATURE]} if llm else {})}

_RECENT_DAYS = 90
_DAY = 86_400
_RATING_PRIOR = 5.0  # pseudo-ratings at the global mean that smooth an item's mean rating
_SPAN = 1 << 34  # > any Unix timestamp + 2 in seconds until the year 2514


@dataclass(frozen=True)
class ItemStats:
    """Item popularity, smoothed mean rating and first-seen time from one set of
    interactions, as of any moment: :meth:`as_of` counts only the events at or before it, so
    a case's features never read an event after the case's own newest one (other users'
    later events included). Events without a timestamp count at every moment."""

    keys: np.ndarray
    """``item * _SPAN + (timestamp + 1)`` of every event, ascending (untimed: timestamp -1)."""
    starts: np.ndarray
    """Position in ``keys`` of each item's first event (n_items + 1 entries)."""
    rating_sums: np.ndarray
    """Cumulative ratings along ``keys`` (len(keys) + 1 entries; unrated events add 0)."""
    rated_counts: np.ndarray
    """Cumulative count of rated events along ``keys``."""
    prior: float
    """Global mean rating (NaN without ratings): the smoothing prior."""
    times: np.ndarray
    """Timestamps of the timed events, ascending."""
    items_by_time: np.ndarray
    """Catalog index of each of those events."""

    @classmethod
    def from_events(cls, events: pd.DataFrame, dataset: Dataset) -> ItemStats:
        n = dataset.n_items
        items = catalog_indices(events["item"], dataset)
        ratings = events["rating"].to_numpy(dtype=np.float64)
        times = events["timestamp"].to_numpy(dtype=np.int64)
        rated = ~np.isnan(ratings)
        keys = items * _SPAN + (np.maximum(times, -1) + 1)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        cum = np.concatenate([[0.0], np.cumsum(np.where(rated, ratings, 0.0)[order])])
        cum_n = np.concatenate([[0], np.cumsum(rated[order])])
        starts = np.searchsorted(keys, np.arange(n + 1) * _SPAN, side="left")
        timed = times >= 0
        by_time = np.argsort(times[timed], kind="stable")
        prior = float(ratings[rated].mean()) if rated.any() else math.nan
        return cls(keys, starts, cum, cum_n, prior, times[timed][by_time],
                   items[timed][by_time])

    @property
    def latest(self) -> float | None:
        """The newest event's timestamp (None without timestamps)."""
        return float(self.times[-1]) if len(self.times) else None

    def as_of(self, items: np.ndarray, now: float | None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(event count, smoothed mean rating, first-seen Unix seconds or NaN) of ``items``
        from the events at or before ``now`` (None: every event)."""
        lo = self.starts[items]
        if now is None:
            hi = self.starts[items + 1]
        else:
            hi = np.searchsorted(self.keys, items * _SPAN + (int(now) + 1), side="right")
        count = (hi - lo).astype(np.float64)
        n_rated = self.rated_counts[hi] - self.rated_counts[lo]
        sums = self.rating_sums[hi] - self.rating_sums[lo]
        mean = (sums + _RATING_PRIOR * self.prior) / (n_rated + _RATING_PRIOR)
        first = np.full(len(items), np.nan)
        if not len(self.keys):
            return count, mean, first
        has = count > 0
        first_key = self.keys[np.minimum(lo, len(self.keys) - 1)] - items * _SPAN - 1
        first[has & (first_key >= 0)] = first_key[has & (first_key >= 0)]
        return count, mean, first

    def first_seen(self) -> np.ndarray:
        """Unix seconds of every catalog item's first timed event (NaN: none)."""
        return self.as_of(np.arange(len(self.starts) - 1), None)[2]

    def recent_counts(self, now: float, days: int = _RECENT_DAYS) -> np.ndarray:
        """Events per item in the ``days`` before ``now`` (inclusive)."""
        lo, hi = np.searchsorted(self.times, [now - days * _DAY, now], side="right")
        return np.bincount(self.items_by_time[lo:hi], minlength=len(self.starts) - 1)


@dataclass
class RankRequest:
    """One user's candidates and what their features are computed from."""

    history: np.ndarray
    """Catalog indices, oldest first."""
    ratings: np.ndarray
    """float, NaN when unrated; aligned with ``history``."""
    timestamps: np.ndarray
    """int64 Unix seconds, -1 when unknown; aligned with ``history``."""
    profile: InterestProfile | None
    candidates: list[Candidate]
    wishes: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)
    llm_scores: dict[str, float] | None = None
    """Item id -> the LLM's log-probability, for the candidates the LLM was shown."""


class FeatureBuilder:
    """Computes :data:`FEATURES` for batches of :class:`RankRequest` (see module docstring).

    ``item_vectors(ids)`` returns the item text vectors (the Chroma item index's stored
    embeddings); ``encode(texts)`` embeds interest labels and wishes with the same encoder.
    Both are cached here: one read per item and per label however many users share them.
    """

    def __init__(self, dataset: Dataset, *, collaborative: CollaborativeModels | None,
                 stats: ItemStats, item_vectors: Callable[[list[str]], np.ndarray],
                 encode: Callable[[list[str]], np.ndarray], max_cached: int = 200_000) -> None:
        self.dataset = dataset
        self.collaborative = collaborative
        self.stats = stats
        self._item_vectors = item_vectors
        self._encode = encode
        self._max_cached = max_cached
        self._vec: dict[str, np.ndarray] = {}
        self._text: dict[str, np.ndarray] = {}
        self._years = np.array([np.nan if it.year is None else float(it.year)
                                for it in dataset.items.values()])

    # -- caches -----------------------------------------------------------------------
    def _vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        missing = list(dict.fromkeys(i for i in ids if i not in self._vec))
        if missing:
            if len(self._vec) + len(missing) > self._max_cached:
                self._vec.clear()
            self._vec.update(zip(missing, self._item_vectors(missing)))
        return self._vec

    def _texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._text))
        if missing:
            if len(self._text) + len(missing) > self._max_cached:
                self._text.clear()
            self._text.update(zip(missing, self._encode(missing)))
        return self._text

    # -- building ---------------------------------------------------------------------
    def build(self, requests: Sequence[RankRequest]) -> list[np.ndarray]:
        """One float32 matrix (candidates × :data:`FEATURES`) per request."""
        if not requests:
            return []
        ids = self.dataset.item_ids
        wanted = [c.item for r in requests for c in r.candidates]
        wanted += [ids[i] for r in requests for i in r.history[-20:]]
        wanted += [s for r in requests for s in r.seeds]
        vectors = self._vectors(wanted)
        texts = [i.label for r in requests if r.profile is not None
                 for i in (*r.profile.interests, *r.profile.dislikes)]
        texts += [w for r in requests for w in r.wishes]
        labels = self._texts(texts)
        sas, ease = self._model_scores(requests)
        return [self._one(r, vectors, labels,
                          None if sas is None else sas[row], None if ease is None else ease[row])
                for row, r in enumerate(requests)]

    def _model_scores(self, requests: Sequence[RankRequest],
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
        collab = self.collaborative
        rows = [r.history for r in requests]
        if collab is None or not any(len(h) for h in rows):
            return None, None
        sas = collab.user_states(rows) @ collab.item_vectors.T
        return sas, collab.ease_scores(rows)

    def _one(self, req: RankRequest, vectors: dict[str, np.ndarray],
             labels: dict[str, np.ndarray], sas: np.ndarray | None,
             ease: np.ndarray | None) -> np.ndarray:
        ds = self.dataset
        n = len(req.candidates)
        out = np.full((n, len(FEATURES)), np.nan, dtype=np.float32)
        if n == 0:
            return out
        col = {name: j for j, name in enumerate(FEATURES)}
        cand_ids = [c.item for c in req.candidates]
        cand = np.array([ds.item_index[i] for i in cand_ids], dtype=np.int64)
        cv = np.stack([vectors[i] for i in cand_ids])

        def put(name: str, values: np.ndarray | float) -> None:
            out[:, col[name]] = values

        # retrieval
        put("retrieval_pos", np.arange(n))
        put("retrieval_score", [c.score for c in req.candidates])
        interest_labels, category_labels = _label_kinds(req.profile)
        put("rank_collaborative", [c.ranks.get("collaborative", np.nan) for c in req.candidates])
        put("rank_cooccurrence", [c.ranks.get("cooccurrence", np.nan) for c in req.candidates])
        put("rank_interest", [_best(c.ranks, interest_labels) for c in req.candidates])
        put("rank_category", [_best(c.ranks, category_labels) for c in req.candidates])
        put("rank_prior", [c.ranks.get("prior", np.nan) for c in req.candidates])
        put("n_sources", [len(c.ranks) for c in req.candidates])
        put("explored", [float(c.source == "explored") for c in req.candidates])
        # collaborative
        seen = req.history
        for name, scores in (("sasrec", sas), ("ease", ease)):
            if scores is not None and len(seen):
                put(f"{name}_score", scores[cand])
                put(f"{name}_rank", _unseen_ranks(scores, seen, cand))
        # profile: text similarity
        profile = req.profile
        if profile is not None and profile.interests:
            lv = np.stack([labels[i.label] for i in profile.interests])
            w = np.array([max(i.weight, 1e-3) for i in profile.interests])
            sims = cv @ lv.T
            put("interest_sim_max", sims.max(axis=1))
            put("interest_sim_mean", sims @ (w / w.sum()))
        if profile is not None and profile.dislikes:
            dv = np.stack([labels[i.label] for i in profile.dislikes])
            put("dislike_sim_max", (cv @ dv.T).max(axis=1))
        ids = ds.item_ids
        if len(seen):
            put("recent_sim", cv @ _unit(np.mean([vectors[ids[i]] for i in seen[-5:]], axis=0)))
            tail, rated = seen[-20:], req.ratings[-20:]
            mean = np.nanmean(rated) if np.isfinite(rated).any() else np.nan
            liked = tail[rated >= mean] if np.isfinite(mean) else tail
            if len(liked):
                put("liked_sim", cv @ _unit(np.mean([vectors[ids[i]] for i in liked], axis=0)))
        if req.wishes:
            put("wish_sim", (cv @ np.stack([labels[t] for t in req.wishes]).T).max(axis=1))
        if req.seeds:
            put("seed_sim", (cv @ np.stack([vectors[s] for s in req.seeds]).T).max(axis=1))
        # profile: categories
        if profile is not None:
            cats = [ds.items[i].categories for i in cand_ids]
            long, recent = profile.long_term, profile.recent
            disliked = {d.label.casefold(): d.weight for d in profile.dislikes}
            put("cat_long", [_mean_of(long, c) for c in cats])
            put("cat_recent", [_mean_of(recent, c) for c in cats])
            put("cat_drift", out[:, col["cat_recent"]] - out[:, col["cat_long"]])
            put("cat_disliked", [max((disliked.get(x.casefold(), 0.0) for x in c), default=0.0)
                                 for c in cats])
        # item and user, as of the history's newest event (or the data's, without one)
        timed = req.timestamps[req.timestamps >= 0]
        now = float(timed.max()) if len(timed) else self.stats.latest
        count, mean_rating, first_seen = self.stats.as_of(cand, now)
        put("log_pop", np.log1p(count))
        put("mean_rating", mean_rating)
        if now is not None:
            put("log_pop_recent", np.log1p(self.stats.recent_counts(now)[cand]))
            put("item_age", (now - first_seen) / (365.25 * _DAY))
        years = self._years[seen[-20:]] if len(seen) else np.array([])
        if np.isfinite(years).any():
            put("year_gap", self._years[cand] - np.nanmean(years))
        put("log_history", math.log1p(len(seen)))
        if req.llm_scores:
            put(LLM_FEATURE, [req.llm_scores.get(i, np.nan) for i in cand_ids])
        if profile is not None:
            self._interest_features(profile, cand_ids, put)
        return out

    def _interest_features(self, profile: InterestProfile, cand_ids: list[str],
                           put: Callable[[str, np.ndarray | list[float]], None]) -> None:
        index = self.dataset.descriptor_index
        liked = [i for i in profile.interests if i.descriptors]
        disliked = [i for i in profile.dislikes if i.descriptors]
        if not liked and not disliked:
            return
        words = [set(index.of(c)) for c in cand_ids]
        has = [bool(w) for w in words]
        union = {d for i in liked for d in i.descriptors}
        keywordish = [i for i in liked if i.granularity in ("keyword", "application")]
        topics = [i for i in liked if i.granularity == "topic"]

        def total(interests: list, own: set[str], drift: bool = False) -> float:
            return float(sum(i.weight * ((1 + (i.trend or 0.0)) if drift else 1.0)
                             for i in interests if own.intersection(i.descriptors)))

        nan = float("nan")
        put("interest_kw", [total(keywordish, w) if h else nan for w, h in zip(words, has)])
        put("interest_kw_drift", [total(keywordish, w, True) if h else nan
                                  for w, h in zip(words, has)])
        put("interest_topic", [max((i.weight * len(w.intersection(i.descriptors))
                                    / len(i.descriptors) for i in topics), default=0.0)
                               if h else nan for w, h in zip(words, has)])
        put("interest_idf", [float(sum(index.idf(d) for d in w & union)) if h else nan
                             for w, h in zip(words, has)])
        put("interest_dislike", [total(disliked, w) if h else nan
                                 for w, h in zip(words, has)])


def _label_kinds(profile: InterestProfile | None) -> tuple[frozenset[str], frozenset[str]]:
    if profile is None:
        return frozenset(), frozenset()
    return (frozenset(i.label for i in profile.interests),
            frozenset(c.category for c in profile.categories))


def _best(ranks: dict[str, int], labels: frozenset[str]) -> float:
    found = [r for label, r in ranks.items() if label in labels]
    return float(min(found)) if found else np.nan


def _mean_of(shares: dict[str, float], categories: Sequence[str]) -> float:
    return float(np.mean([shares.get(c, 0.0) for c in categories])) if categories else np.nan


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _unseen_ranks(scores: np.ndarray, seen: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """0-based rank of each candidate among the items not in ``seen`` (by score)."""
    s = scores.astype(np.float64, copy=True)
    s[seen] = -np.inf
    ordered = np.sort(s)[::-1]
    return np.searchsorted(-ordered, -s[cand], side="left").astype(np.float32)
