"""The profile report: how well one source's interest profiles describe what users do next.

For the evaluated cases of a split (one held-out target per user) and the profile each
source builds from the case's history alone:

(a) **hit rate** — the share of users whose held-out item carries at least one descriptor of
    their ``top`` strongest liked interests; against the same rate for a popularity-matched
    random item (``draws`` items per user from the target's popularity bin — items sorted by
    training interactions, cut into ``bins`` equal-count bins — never a history item or the
    target). lift = hit rate / base rate, with a paired bootstrap interval over users;
(c) **specificity** — the share of liked interests finer than a category or category ×
    decade (:func:`~tastelens.agent.profile.grounding.is_coarse`), the distinct liked labels
    across users, the share of users holding the most common one, and the share of users
    with at least 3 keyword- and 2 topic-level liked interests;
(d) **grounding** — the share of liked labels supported by their own descriptors
    (:func:`~tastelens.agent.profile.grounding.is_supported`).

(b), profile-only retrieval on the full protocol, is an evaluation run of its own
(``eval/configs/profile-report.toml``); ``tastelens eval profile-report`` runs both.

An interest without descriptors of its own (a free-form model label) is matched through the
catalog's descriptor index: the descriptors its label or its words name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tastelens.agent.profile.grounding import is_coarse, is_supported
from tastelens.data.dataset import Dataset, item_counts
from tastelens.data.descriptors import DescriptorIndex
from tastelens.data.splits import EvalCase
from tastelens.schemas import Interest, InterestProfile


def interest_descriptors(interest: Interest, index: DescriptorIndex) -> set[str]:
    """The interest's descriptors, else those its label (or a word of it) names."""
    if interest.descriptors:
        return set(interest.descriptors)
    found = set(index.find(interest.label))
    for word in interest.label.split():
        found.update(index.find(word))
    return found


def top_liked(profile: InterestProfile | None, top: int) -> list[Interest]:
    if profile is None:
        return []
    liked = [i for i in profile.interests if i.polarity == "like"]
    return sorted(liked, key=lambda i: -i.weight)[:top]


def popularity_bins(dataset: Dataset, train: pd.DataFrame, bins: int) -> np.ndarray:
    """Catalog index -> popularity bin (0 = least interacted), equal-count bins."""
    order = np.argsort(item_counts(train, dataset), kind="stable")
    out = np.empty(dataset.n_items, dtype=np.int64)
    out[order] = np.arange(dataset.n_items) * bins // dataset.n_items
    return out


def hit_rates(dataset: Dataset, cases: Sequence[EvalCase],
              profiles: Sequence[InterestProfile | None], bins: np.ndarray, *, top: int = 10,
              draws: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per case: (1 when the target carries a top-interest descriptor, the share of
    popularity-matched random items that do)."""
    index = dataset.descriptor_index
    members = {b: np.flatnonzero(bins == b) for b in np.unique(bins)}
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(cases))
    base = np.zeros(len(cases))
    for k, (case, profile) in enumerate(zip(cases, profiles)):
        wanted: set[str] = set()
        for interest in top_liked(profile, top):
            wanted |= interest_descriptors(interest, index)
        if not wanted:
            continue
        ids = dataset.item_ids
        hits[k] = float(bool(wanted & set(index.of(ids[case.target]))))
        pool = np.setdiff1d(members[bins[case.target]],
                            np.append(case.history.items, case.target))
        if len(pool):
            picks = rng.choice(pool, size=draws, replace=len(pool) < draws)
            base[k] = float(np.mean([bool(wanted & set(index.of(ids[j]))) for j in picks]))
    return hits, base


def lift_interval(hits: np.ndarray, base: np.ndarray, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Hit rate, base rate, lift and the bootstrap intervals of lift and of hit − base."""
    rng = np.random.default_rng(seed)
    n = len(hits)
    if n == 0:
        return {"users": 0}
    draws = rng.integers(0, n, size=(n_resamples, n))
    h, b = hits[draws].mean(axis=1), base[draws].mean(axis=1)
    lifts = np.divide(h, b, out=np.full_like(h, np.nan), where=b > 0)
    alpha = (1 - confidence) / 2

    def interval(values: np.ndarray) -> list[float]:
        values = values[np.isfinite(values)]
        return [round(float(np.quantile(values, alpha)), 4),
                round(float(np.quantile(values, 1 - alpha)), 4)] if len(values) else []

    rate, base_rate = float(hits.mean()), float(base.mean())
    return {"users": n, "hit_rate": round(rate, 4), "base_rate": round(base_rate, 4),
            "lift": round(rate / base_rate, 3) if base_rate > 0 else None,
            "lift_ci": interval(lifts), "difference_ci": interval(h - b)}


def specificity(profiles: Sequence[InterestProfile | None],
                catalog_categories: Sequence[str]) -> dict[str, Any]:
    """Part (c) of the module docstring, over every profile's liked interests."""
    users = [p for p in profiles if p is not None]
    liked = [[i for i in p.interests if i.polarity == "like"] for p in users]
    flat = [i for group in liked for i in group]
    holders = Counter(label for group in liked
                      for label in {i.label.casefold() for i in group})
    common = holders.most_common(1)
    per_user = [Counter(i.granularity for i in group) for group in liked]
    return {
        "users": len(users), "liked_interests": len(flat),
        "per_user": round(len(flat) / len(users), 2) if users else 0.0,
        "fine_share": round(sum(not is_coarse(i.label, catalog_categories) for i in flat)
                            / len(flat), 4) if flat else 0.0,
        "distinct_labels": len(holders),
        "most_common_label": common[0][0] if common else None,
        "most_common_share": round(common[0][1] / len(users), 4) if common else 0.0,
        "users_3_keyword_2_topic": round(sum(c["keyword"] >= 3 and c["topic"] >= 2
                                             for c in per_user) / len(users), 4)
        if users else 0.0,
        "granularity": dict(Counter(i.granularity for i in flat)),
    }


def grounding(dataset: Dataset, profiles: Sequence[InterestProfile | None]) -> dict[str, Any]:
    """Part (d): the share of liked labels their own descriptors support."""
    index = dataset.descriptor_index
    checked = supported = 0
    for profile in profiles:
        for interest in profile.interests if profile is not None else []:
            if interest.polarity != "like":
                continue
            items = [dataset.items[e] for e in interest.evidence if e in dataset.items]
            checked += 1
            supported += is_supported(
                interest.label, sorted(interest_descriptors(interest, index)),
                [c for it in items for c in it.categories],
                [it.year for it in items if it.year])
    return {"labels": checked,
            "supported_share": round(supported / checked, 4) if checked else 0.0}


def llm_kept(profiles: Sequence[InterestProfile | None]) -> dict[str, Any]:
    users = [p for p in profiles if p is not None]
    used = sum(p.provenance.llm_used for p in users)
    return {"replies_kept_share": round(used / len(users), 4) if users else 0.0}


def paired_hits(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000,
                confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Hit rate of source a − source b on the same users, with its bootstrap interval."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(n_resamples, len(a)))
    diffs = (a - b)[draws].mean(axis=1)
    alpha = (1 - confidence) / 2
    return {"delta": round(float((a - b).mean()), 4),
            "ci": [round(float(np.quantile(diffs, alpha)), 4),
                   round(float(np.quantile(diffs, 1 - alpha)), 4)]}


def report_source(dataset: Dataset, cases: Sequence[EvalCase],
                  profiles: Sequence[InterestProfile | None], bins: np.ndarray, *,
                  top: int = 10, draws: int = 20, seed: int = 0,
                  keep: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """(a), (c) and (d) for one source's profiles of ``cases``; ``keep`` receives the
    per-user hits (key 'hits') for paired comparisons between sources."""
    hits, base = hit_rates(dataset, cases, profiles, bins, top=top, draws=draws, seed=seed)
    if keep is not None:
        keep["hits"] = hits
    return {"hit_rate": lift_interval(hits, base, seed=seed),
            "specificity": specificity(profiles, dataset.categories),
            "grounding": grounding(dataset, profiles), **llm_kept(profiles),
            "labels_from_model_share": model_label_share(profiles)}


def model_label_share(profiles: Sequence[InterestProfile | None]) -> float:
    """The share of liked labels that are the model's own (kept by the checks)."""
    liked = [i for p in profiles if p is not None for i in p.interests]
    return round(sum(i.source == "llm" for i in liked) / len(liked), 4) if liked else 0.0
