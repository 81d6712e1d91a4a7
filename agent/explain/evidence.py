"""Which of the user's own items an explanation cites: liked ones, most like the item.

For a recommended item *x* and the user's liked history *L* (rated ≥ ``liked_rating``, or
unrated), every h ∈ L gets ``sim(h, x)``: the cosine of their stored text vectors (without
vectors: the Jaccard overlap of their categories and tags). The **pool** of *x* is the
``evidence_pool`` most similar items that share a category with it (when it has any: the
text vectors of titles alone make "Varsity Blues" like "Blues Brothers 2000") and have
``sim ≥ evidence_min_similarity`` (overlap > 0 without vectors); ties go to the higher
rating, then the more recent item. Only pool items are ever cited or shown to the model: a
cited item is, per recommended item, among the user's liked items most similar to it.

Across one list the picks are diversified, walking the list in rank order: a pick's first
citation is its most similar pool item, where an item already cited for an earlier pick
counts ``evidence_margin`` less similar (an uncited one nearly as similar goes first); its
further citations are chosen for the whole list at once (:meth:`spread`): as many pool items
not cited yet as a matching of items to the picks' remaining citation slots allows, then
each pick's most similar remaining ones. So one history item does not explain every pick,
and a list cites at least ``list_min_distinct`` distinct items whenever its pools allow.
An item with an empty pool cites nothing: the explanation then says less.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tastelens.agent.explain.vectors import ExplainVectors
from tastelens.config.pipeline import ExplainConfig
from tastelens.data.dataset import Dataset


@dataclass(frozen=True)
class Liked:
    """A user's liked history items, in history order, with ratings (None = unrated)."""

    items: tuple[str, ...]
    ratings: tuple[float | None, ...]


def liked_history(history: Sequence[tuple[str, float | None]], liked_rating: float) -> Liked:
    """Items rated at least ``liked_rating`` or unrated; the last event of an item counts."""
    last: dict[str, float | None] = {}
    for item, rating in history:
        last.pop(item, None)
        last[item] = rating
    kept = [(i, r) for i, r in last.items() if r is None or r >= liked_rating]
    return Liked(tuple(i for i, _ in kept), tuple(r for _, r in kept))


class EvidencePicker:
    """Pools and diversified picks of history evidence; see the module docstring."""

    def __init__(self, config: ExplainConfig, dataset: Dataset,
                 vectors: ExplainVectors) -> None:
        self.config = config
        self.dataset = dataset
        self.vectors = vectors

    def similarities(self, item: str, liked: Liked) -> tuple[np.ndarray, bool]:
        """sim(h, item) for every liked h, and whether they are cosines of text vectors
        (False: category/tag overlap, when a vector is missing)."""
        target = self.vectors.item(item)
        rows = [self.vectors.item(h) for h in liked.items]
        if target is not None and rows and all(r is not None for r in rows):
            return np.stack(rows) @ target, True
        own = self._features(item)
        return np.array([_jaccard(own, self._features(h)) for h in liked.items],
                        dtype=float), False

    def pool(self, item: str, liked: Liked) -> list[tuple[str, float]]:
        """The ``evidence_pool`` liked items most similar to ``item``, above the floor."""
        if not liked.items:
            return []
        sims, by_vector = self.similarities(item, liked)
        floor = self.config.evidence_min_similarity if by_vector else 1e-9
        cats = set(self.dataset.item(item).categories)
        order = sorted(range(len(sims)),
                       key=lambda k: (-sims[k], -(liked.ratings[k] or 0.0), -k))
        top = [k for k in order if liked.items[k] != item and (
            not cats or cats & set(self.dataset.item(liked.items[k]).categories))]
        top = top[: self.config.evidence_pool]
        return [(liked.items[k], float(sims[k])) for k in top if sims[k] >= floor]

    def pick(self, pool: list[tuple[str, float]], cited: Counter[str]) -> list[str]:
        """The pool in citing order. First the most similar item, counted
        ``evidence_margin`` less similar if the list cited it before; then the items the
        list has not cited yet, then the rest (each by similarity)."""
        if not pool:
            return []
        margin = self.config.evidence_margin
        first = max(range(len(pool)),
                    key=lambda k: (pool[k][1] - margin * (cited[pool[k][0]] > 0), -k))
        rest = [p for k, p in enumerate(pool) if k != first]
        rest.sort(key=lambda p: cited[p[0]] > 0)  # stable: similarity order within each
        return [pool[first][0]] + [item for item, _ in rest]

    def spread(self, firsts: list[str | None], pools: list[list[str]]) -> list[list[str]]:
        """Each pick's citations: its first one, then up to ``max_evidence - 1`` more from its
        pool, chosen so the list cites as many distinct items as it can with those firsts —
        a maximum matching of not-yet-cited pool items to the further citation slots (slots
        in rank order, items in similarity order); slots left over take the pick's most
        similar remaining pool items. In the rare list where that stays below
        ``list_min_distinct`` and a matching over all slots reaches more, the first
        citations give way: that matching decides every citation."""
        n = self.config.max_evidence
        sizes = [min(n, len(pool)) for pool in pools]
        covered = {f for f in firsts if f is not None}
        further = [k for k, f in enumerate(firsts) if f is not None for _ in range(sizes[k] - 1)]
        chosen = [[f] if f is not None else [] for f in firsts]
        for item, k in _matching(further, pools, covered):
            chosen[k].append(item)
        every = [k for k in range(len(pools)) for _ in range(sizes[k])]
        best = _matching(every, pools, set())
        keep = 1  # citations in place at the head of each pick's list
        distinct = len({i for c in chosen for i in c})
        if distinct < self.config.list_min_distinct and len(best) > distinct:
            keep = 0
            chosen = [[] for _ in pools]
            for item, k in best:
                chosen[k].append(item)
        for k, pool in enumerate(pools):
            spare = [i for i in pool if i not in chosen[k]]
            while len(chosen[k]) < sizes[k]:
                chosen[k].append(spare.pop(0))
            rank = {item: j for j, item in enumerate(pool)}
            chosen[k][keep:] = sorted(chosen[k][keep:], key=rank.__getitem__)
        return chosen

    def _features(self, item: str) -> set[str]:
        it = self.dataset.items.get(item)
        if it is None:
            return set()
        return {f"c:{c.casefold()}" for c in it.categories} | {f"t:{t.casefold()}"
                                                               for t in it.tags}


def _matching(slots: list[int], pools: list[list[str]], covered: set[str],
              ) -> list[tuple[str, int]]:
    """(item, pick) pairs of a maximum matching of pool items not in ``covered`` to
    ``slots`` (each slot is a pick index): Kuhn's augmenting paths, slots in order, each
    slot trying its pick's pool in order."""
    owner: dict[str, int] = {}

    def augment(slot: int, seen: set[str]) -> bool:
        for item in pools[slots[slot]]:
            if item in covered or item in seen:
                continue
            seen.add(item)
            if item not in owner or augment(owner[item], seen):
                owner[item] = slot
                return True
        return False

    for slot in range(len(slots)):
        augment(slot, set())
    return sorted(((item, slots[slot]) for item, slot in owner.items()), key=lambda x: x[1])


def _jaccard(a: set[str], b: set[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0
