"""Topic interests: groups of liked items that belong together, and what sets each apart.

The liked items of a history are clustered with k-means (scikit-learn) in the catalog's item
space (:mod:`.signals`), each item weighted by its long-term drift weight so that old
clusters need more items to count; k = liked items // ``items_per_topic``, between 2 and
``max_topics + 2``. A cluster of at least ``min_topic_size`` items becomes a topic:

- its descriptors are those most particular to it: descriptors on two or more members, more
  common among them than among the user's other liked items, ranked by the keyword miner's
  log-odds z of the members against the catalog; ``topic_descriptors`` of them;
- its label is the members' most common category and those descriptors
  ("Crime: heist, bank robbery, los angeles"); a catalog without descriptors gets the two
  most common categories and the members' decade ("Crime / Thriller, 1990s");
- its weight is the cluster's share of the liked items' long-term weight (the largest topic
  has weight 1), its evidence the members nearest the centroid, newest first among equals,
  and its trend recent − long-term share.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from tastelens.agent.profile.mining import HistoryView, Presence, log_odds
from tastelens.agent.profile.signals import CatalogSignals
from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.schemas import Interest

MIN_DESCRIPTOR_MEMBERS = 2


def clusters(signals: CatalogSignals, view: HistoryView, config: ProfileFactsConfig,
             ) -> list[np.ndarray]:
    """Boolean member masks (over the history's items) of the liked items' clusters, each
    of ``min_topic_size`` items at least, heaviest first."""
    cfg = config.mining
    liked = np.flatnonzero(view.liked)
    if cfg.max_topics == 0 or len(liked) < cfg.min_topic_size:
        return []
    vectors = signals.space[view.rows[liked]]
    k = int(np.clip(len(liked) // cfg.items_per_topic, 2, cfg.max_topics + 2))
    k = min(k, len(np.unique(vectors.round(6), axis=0)))  # no more clusters than points
    if k < 2 or not np.any(vectors):
        labels = np.zeros(len(liked), dtype=np.int64)
    else:
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=1, random_state=0)
        labels = model.fit_predict(vectors, sample_weight=view.long[liked])
    out = []
    for c in np.unique(labels):
        members = np.zeros(len(view.entries), dtype=bool)
        members[liked[labels == c]] = True
        if members.sum() >= cfg.min_topic_size:
            out.append(members)
    out.sort(key=lambda m: -float(view.long[m].sum()))
    return out


def topic_interests(signals: CatalogSignals, view: HistoryView, present: Presence,
                    config: ProfileFactsConfig) -> list[Interest]:
    """One interest per cluster (see the module docstring), at most ``max_topics``."""
    found = clusters(signals, view, config)
    if not found:
        return []
    total = float(view.long[view.liked].sum())
    heaviest = float(view.long[found[0]].sum())
    out: list[Interest] = []
    seen: set[str] = set()
    for members in found:
        descriptors = _distinguishing(signals, view, present, members, config)
        label = _label(view, members, descriptors, config)
        if label.casefold() in seen:
            continue
        seen.add(label.casefold())
        out.append(Interest(
            label=label, granularity="topic",
            weight=round(float(view.long[members].sum()) / heaviest, 4) if total else 0.0,
            polarity="like", evidence=_central(signals, view, members),
            descriptors=descriptors, trend=view.trend(members), source="data"))
        if len(out) >= config.mining.max_topics:
            break
    return out


def _distinguishing(signals: CatalogSignals, view: HistoryView, found: Presence,
                    members: np.ndarray, config: ProfileFactsConfig) -> list[str]:
    """The cluster's descriptors by log-odds z against the catalog (as keywords are chosen,
    :func:`~tastelens.agent.profile.mining.log_odds_z`), on two members at least and at
    as common in the cluster as in the user's other liked items (a user whose every liked
    item shares one descriptor still gets it named in each of their topics)."""
    if not signals.has_descriptors:
        return []
    present = found.matrix
    inside = present[members].sum(axis=0)
    others = view.liked & ~members
    outside = present[others].sum(axis=0) / max(others.sum(), 1)
    cols = np.flatnonzero((inside >= MIN_DESCRIPTOR_MEMBERS)
                          & (inside / members.sum() >= outside))
    if not len(cols):
        return []
    g = view.long[members]
    delta, z = log_odds(g @ present[members][:, cols], float(g.sum()),
                        signals.background[found.columns[cols]], config.mining.prior_strength)
    rank = delta if config.mining.rank_by == "delta" else z
    order = [cols[k] for k in np.argsort(-rank, kind="stable") if z[k] > 0]
    return found.names(signals, order[: config.mining.topic_descriptors])


def _label(view: HistoryView, members: np.ndarray, descriptors: list[str],
           config: ProfileFactsConfig) -> str:
    items = [view.entries[k].item for k in np.flatnonzero(members)]
    categories = Counter(c for it in items for c in dict.fromkeys(it.categories)
                         if c not in config.ignore_categories)
    top = [c for c, _ in categories.most_common(2)]
    if descriptors:
        label = f"{top[0]}: " if top else ""
        for k, d in enumerate(descriptors):  # whole descriptors only, within 80 characters
            part = (", " if k else "") + d
            if len(label) + len(part) > 80:
                break
            label += part
        return label.rstrip(": ") or descriptors[0][:80]
    decades = Counter(it.year // 10 * 10 for it in items if it.year)
    decade = f"{decades.most_common(1)[0][0]}s" if decades else ""
    return ", ".join(p for p in (" / ".join(top), decade) if p)[:80] or "liked items"


def _central(signals: CatalogSignals, view: HistoryView, members: np.ndarray) -> list[str]:
    idx = np.flatnonzero(members)
    vectors = signals.space[view.rows[idx]]
    centre = vectors.mean(axis=0)
    closeness = vectors @ centre
    order = sorted(range(len(idx)), key=lambda k: (-round(float(closeness[k]), 4), -idx[k]))
    return [view.entries[idx[k]].item.id for k in order[:4]]
