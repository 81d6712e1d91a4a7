"""Interests mined from a history at each granularity — the data half of a profile.

Each history event t (oldest first, the newest last of T) gets two drift weights, the
long-term and the recent decay of :mod:`tastelens.agent.profile.drift`:
g(t) = α^(T−1−t), with α = ``drift.long_term.alpha`` (≈ 0.99) and ``drift.recent.alpha``
(≈ 0.9). Liked events are those rated at or above the user's mean (all, when unrated);
disliked ones those at or below the dislike threshold (:mod:`.facts`).

**keyword** — a descriptor w over-represented in the liked items against the catalog. With
y_w = Σ_{liked t ∋ w} g(t), n = Σ_{liked} g(t) and p_w the descriptor's background rate
(:mod:`.signals`), the log-odds with an informative Beta(α0·p_w, α0·(1−p_w)) prior is

    δ_w = ln((y_w + α0·p_w) / (n − y_w + α0·(1 − p_w))) − ln(p_w / (1 − p_w))
    z_w = δ_w / sqrt(1/(y_w + α0·p_w) + 1/(n − y_w + α0·(1 − p_w)))

(Monroe, Colaresi & Quinn 2008, for one user against the catalog). Descriptors on at least
``min_support`` liked items with z ≥ ``min_z`` are kept, best z first; one whose liked items
overlap a kept one's by ``merge_overlap`` (Jaccard) joins it. weight = z / max z.

**topic** — k-means clusters of the liked items in the catalog's item space, each named by
its distinguishing descriptors (:mod:`.topics`).

**sentiment** — inside one category, a descriptor whose items the user rates apart from the
category's other items: Δ = mean rating with w − mean without, shrunk by n_w / (n_w + 2),
each rating taken against the item's mean rating over everybody (``signals.item_rating``)
where ratings exist, so that "rates twist-ending thrillers high" is kept only for a person
who rates them higher than people do;
|Δ| ≥ ``sentiment_min_gap`` of the rating scale, at least ``sentiment_min_items`` on each
side. Δ > 0 is a liked interest ("Comedy: dark comedy"), Δ < 0 a disliked one.

**application** — keyword mining restricted to occasion/use descriptors (``signals``), with
its own support; a catalog without such descriptors has none.

Dislikes also get the descriptors over-represented in the low-rated items against the liked
ones (share among disliked − share among liked ≥ 0.25, two items at least).

Every interest carries its ``descriptors`` and evidence (liked items, best rated then newest
first) and its ``trend``: recent − long-term share of the liked items' weight it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tastelens.agent.profile.signals import CatalogSignals
from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.prompts.selection import HistoryEntry
from tastelens.schemas import Interest

MAX_EVIDENCE = 4
DISLIKE_SHARE_GAP = 0.25


@dataclass(frozen=True)
class HistoryView:
    """One history as arrays over its distinct items (latest event of each)."""

    entries: list[HistoryEntry]
    rows: np.ndarray  # catalog rows
    ratings: np.ndarray  # NaN = unrated
    long: np.ndarray  # the miner's event weight (mining.alpha), newest = 1
    recent: np.ndarray  # recent drift weight, newest = 1
    slow: np.ndarray  # long-term drift weight, newest = 1
    liked: np.ndarray  # bool
    disliked: np.ndarray  # bool

    @property
    def ids(self) -> list[str]:
        return [e.item.id for e in self.entries]

    def share(self, members: np.ndarray, weights: np.ndarray) -> float:
        """``members``' part of the liked items' total ``weights``."""
        total = float(weights[self.liked].sum())
        return float(weights[members].sum()) / total if total > 0 else 0.0

    def trend(self, members: np.ndarray) -> float:
        return round(float(np.clip(self.share(members, self.recent)
                                   - self.share(members, self.slow), -1, 1)), 4)

    def evidence(self, members: np.ndarray, *, low_first: bool = False) -> list[str]:
        """Member item ids, best rated (lowest with ``low_first``) then newest first."""
        idx = np.flatnonzero(members)
        rating = np.nan_to_num(self.ratings[idx], nan=0.0)
        order = sorted(range(len(idx)), key=lambda k: ((rating[k] if low_first
                                                         else -rating[k]), -idx[k]))
        return [self.entries[idx[k]].item.id for k in order[:MAX_EVIDENCE]]


def history_view(signals: CatalogSignals, entries: Sequence[HistoryEntry],
                 config: ProfileFactsConfig, mean: float | None,
                 threshold: float | None) -> HistoryView:
    """The distinct items of ``entries`` (a re-rated item counts once, at its latest event)
    with drift weights by position in the full history."""
    last = {e.item.id: t for t, e in enumerate(entries)}
    positions = sorted(last.values())
    kept = [entries[t] for t in positions]
    age = (len(entries) - 1 - np.asarray(positions, dtype=np.float64))
    ratings = np.array([np.nan if e.rating is None else e.rating for e in kept])
    if mean is None:
        liked = np.ones(len(kept), dtype=bool)
        disliked = np.zeros(len(kept), dtype=bool)
    else:
        rated = ~np.isnan(ratings)
        liked = rated & (np.nan_to_num(ratings, nan=-np.inf) >= mean)
        disliked = rated & (np.nan_to_num(ratings, nan=np.inf) <= (threshold or -np.inf))
    drift = config.drift
    alpha = config.mining.alpha or drift.long_term.alpha
    return HistoryView(entries=kept, rows=signals.rows([e.item.id for e in kept]),
                       ratings=ratings, long=alpha ** age, recent=drift.recent.alpha ** age,
                       slow=drift.long_term.alpha ** age, liked=liked, disliked=disliked)


@dataclass(frozen=True)
class Presence:
    """The history's items × the descriptors they carry (dense, only touched columns)."""

    matrix: np.ndarray  # bool, items × len(columns)
    columns: np.ndarray  # vocabulary index of each column

    def names(self, signals: CatalogSignals, cols: Sequence[int]) -> list[str]:
        return [signals.vocabulary[self.columns[c]] for c in cols]


def presence(signals: CatalogSignals, view: HistoryView, generic_share: float = 0.0,
             ) -> Presence:
    """The history's descriptors, leaving out the catalog's ``generic_share`` most common
    (:meth:`CatalogSignals.generic`)."""
    sub = signals.matrix[view.rows]
    columns = np.unique(sub.indices)
    columns = columns[~signals.generic(generic_share)[columns]]
    return Presence(sub[:, columns].toarray().astype(bool), columns)


def log_odds(y: np.ndarray, n: float, p: np.ndarray, prior: float,
             ) -> tuple[np.ndarray, np.ndarray]:
    """(δ, z) of the module docstring, vectorised over descriptors."""
    num = y + prior * p
    den = np.maximum(n - y + prior * (1 - p), 1e-9)
    delta = np.log(num / den) - np.log(p / (1 - p))
    return delta, delta / np.sqrt(1 / num + 1 / den)


def log_odds_z(y: np.ndarray, n: float, p: np.ndarray, prior: float) -> np.ndarray:
    """The z-scores of the module docstring (vectorised over descriptors)."""
    return log_odds(y, n, p, prior)[1]


def keyword_interests(signals: CatalogSignals, view: HistoryView, found: Presence,
                      config: ProfileFactsConfig, *, application: bool = False,
                      ) -> list[Interest]:
    """Keyword (or, with ``application``, occasion) interests of the liked items."""
    cfg = config.mining
    limit = cfg.max_applications if application else cfg.max_keywords
    liked = view.liked
    if limit == 0 or not liked.any() or not signals.has_descriptors:
        return []
    present = found.matrix
    counts = present[liked].sum(axis=0)
    support = cfg.application_min_support if application else cfg.min_support
    kind = signals.application[found.columns]
    allowed = kind if application else ~kind
    candidates = np.flatnonzero((counts >= support) & allowed)
    if not len(candidates):
        return []
    g = view.long[liked]
    y = g @ present[liked][:, candidates]
    delta, z = log_odds(y, float(g.sum()), signals.background[found.columns[candidates]],
                        cfg.prior_strength)
    floor = cfg.application_min_z if application else cfg.min_z
    rank = delta if cfg.rank_by == "delta" else z
    order = [candidates[k] for k in np.argsort(-rank, kind="stable") if z[k] >= floor]
    z_of = dict(zip(candidates.tolist(), rank.tolist()))
    groups: list[tuple[np.ndarray, list[int]]] = []  # (liked members, descriptor columns)
    for j in order:
        members = present[:, j] & liked
        for kept, columns in groups:
            overlap = (members & kept).sum() / max((members | kept).sum(), 1)
            if overlap >= cfg.merge_overlap:
                columns.append(j)
                break
        else:
            if len(groups) < limit:
                groups.append((members, [j]))
    if not groups:
        return []
    top = z_of[groups[0][1][0]]
    return [Interest(label=found.names(signals, cols[:1])[0][:80],
                     granularity="application" if application else "keyword",
                     weight=round(min(1.0, z_of[cols[0]] / top), 4), polarity="like",
                     evidence=view.evidence(members),
                     descriptors=found.names(signals, cols[:6]),
                     trend=view.trend(members), source="data")
            for members, cols in groups]


def keyword_dislikes(signals: CatalogSignals, view: HistoryView, found: Presence,
                     config: ProfileFactsConfig) -> list[Interest]:
    """Descriptors the low-rated items share far more than the liked ones."""
    limit = config.mining.max_keyword_dislikes
    if limit == 0 or view.disliked.sum() < 2 or not signals.has_descriptors:
        return []
    present = found.matrix
    bad = present[view.disliked].sum(axis=0)
    good = present[view.liked].sum(axis=0)
    gap = bad / view.disliked.sum() - good / max(view.liked.sum(), 1)
    picks = [j for j in np.argsort(-gap, kind="stable")
             if bad[j] >= 2 and gap[j] >= DISLIKE_SHARE_GAP][:limit]
    return [Interest(label=found.names(signals, [j])[0][:80], granularity="keyword",
                     weight=round(float(min(1.0, gap[j])), 4), polarity="dislike",
                     evidence=view.evidence(present[:, j] & view.disliked, low_first=True),
                     descriptors=found.names(signals, [j]), source="data")
            for j in picks]


def sentiment_interests(signals: CatalogSignals, view: HistoryView, found: Presence,
                        groups: dict[str, np.ndarray], config: ProfileFactsConfig,
                        ) -> tuple[list[Interest], list[Interest]]:
    """(liked, disliked) rating contrasts inside each group (category name -> members)."""
    cfg, facts = config.mining, config
    if cfg.max_sentiment == 0 or not signals.has_descriptors:
        return [], []
    present = found.matrix
    span = max(facts.rating_max - facts.rating_min, 1e-9)
    m = cfg.sentiment_min_items
    best: dict[int, tuple[float, str, np.ndarray, float]] = {}
    rated = ~np.isnan(view.ratings)
    for name, members in groups.items():
        inside = members & rated
        if inside.sum() < 2 * m:
            continue
        sub = present[inside]
        with_w = sub.sum(axis=0)
        cols = np.flatnonzero((with_w >= m) & (inside.sum() - with_w >= m))
        if not len(cols):
            continue
        r = view.ratings[inside]
        if signals.item_rating is not None:  # against how everybody rates these items
            r = r - signals.item_rating[view.rows[inside]]
        mean_with = (r @ sub[:, cols]) / with_w[cols]
        mean_without = (r.sum() - r @ sub[:, cols]) / (inside.sum() - with_w[cols])
        shrunk = (mean_with - mean_without) * with_w[cols] / (with_w[cols] + 2)
        for k, j in enumerate(cols):
            gap = float(shrunk[k])
            if abs(gap) < cfg.sentiment_min_gap * span:
                continue
            score = abs(gap) * np.sqrt(with_w[j])
            if j not in best or score > best[j][0]:
                members_w = inside.copy()
                members_w[inside] = sub[:, j]
                best[int(j)] = (score, name, members_w, gap)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], int(found.columns[kv[0]])))
    likes: list[Interest] = []
    dislikes: list[Interest] = []
    top = ranked[0][1][0] if ranked else 1.0
    for j, (score, name, members, gap) in ranked:
        target = likes if gap > 0 else dislikes
        if len(target) >= cfg.max_sentiment:
            continue
        target.append(Interest(
            label=f"{name}: {found.names(signals, [j])[0]}"[:80], granularity="sentiment",
            weight=round(score / top, 4), polarity="like" if gap > 0 else "dislike",
            evidence=view.evidence(members & (view.liked if gap > 0 else ~view.liked),
                                   low_first=gap < 0) or view.evidence(members,
                                                                       low_first=gap < 0),
            descriptors=found.names(signals, [j]), trend=view.trend(members & view.liked)
            if gap > 0 else None, source="data"))
    return likes, dislikes


def category_groups(view: HistoryView, config: ProfileFactsConfig) -> dict[str, np.ndarray]:
    """Category name -> which of the history's items carry it."""
    groups: dict[str, np.ndarray] = {}
    for k, e in enumerate(view.entries):
        for c in dict.fromkeys(e.item.categories):
            if c not in config.ignore_categories:
                groups.setdefault(c, np.zeros(len(view.entries), dtype=bool))[k] = True
    return groups
