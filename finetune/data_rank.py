"""Ranking-adapter examples: a history, shuffled candidates, and the label of the next item.

For each user, ``positions_per_user`` positions t are sampled (seeded) from their TRAINING
history (:mod:`tastelens.finetune.data_source`) with at least ``min_history`` items before
t. The item at t is the positive; the items before it are the history. Negatives:

- **hard** (``hard_fraction``): items nearest to the recent history in the Chroma item index
  (:meth:`ItemIndex.query` with the normalised mean embedding of the newest
  ``hard_query_items`` history items), sampled from the ``hard_pool`` nearest;
- **popular** (``popular_fraction``): sampled from the most-interacted training items;
- **random**: uniform over the catalog (also fills any shortfall of the other two).

Nothing the user ever interacted with (in any part of the split) is a negative. The
candidates (positive + negatives) are shuffled with the user's seeded generator, and the
prompt and target come from exactly the serving code: :func:`rank_request` in ``"score"``
mode and :func:`rank_target`, so a trained adapter sees the prompt it is served with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from tastelens.agent.rank.prompt import rank_request, rank_target
from tastelens.finetune.data_config import RankSection
from tastelens.finetune.data_source import TrainingData, user_rng
from tastelens.finetune.jsonl import Example, PromptMessage
from tastelens.vectorstore.item_index import ItemIndex


def negative_counts(config: RankSection) -> tuple[int, int, int]:
    """(hard, popular, random) negatives per example."""
    n_hard = round(config.n_negatives * config.hard_fraction)
    n_pop = min(round(config.n_negatives * config.popular_fraction), config.n_negatives - n_hard)
    return n_hard, n_pop, config.n_negatives - n_hard - n_pop


class RankExampleBuilder:
    """Builds a user's ranking examples from their training history."""

    def __init__(self, config: RankSection, data: TrainingData, item_index: ItemIndex | None,
                 *, seed: int) -> None:
        self.config = config
        self.data = data
        self.index = item_index
        self.seed = seed
        self.counts = negative_counts(config)
        self.dropped: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self._catalog = data.dataset.item_ids

    def examples_for(self, user: str) -> list[Example]:
        cfg = self.config
        events = self.data.histories.get(user, [])
        valid = list(range(cfg.min_history, len(events)))
        if not valid:
            self.dropped["users: training history shorter than min_history + 1"] += 1
            return []
        rng = user_rng(self.seed, user, "rank")
        chosen = sorted(rng.choice(valid, size=min(cfg.positions_per_user, len(valid)),
                                   replace=False).tolist())
        seen = self.data.seen[user]
        hard_pools = self._hard_pools(events, chosen, seen)
        out = []
        for t, pool in zip(chosen, hard_pools):
            positive = events[t].item
            negatives, sources = self._negatives(rng, pool, seen)
            if len(negatives) < cfg.n_negatives:
                self.dropped["examples: catalog too small for n_negatives"] += 1
                continue
            order = rng.permutation(len(negatives) + 1)
            pooled = [positive, *negatives]
            tags = ["positive", *sources]
            candidates = [pooled[i] for i in order]
            history = [(e.item, e.rating) for e in events[:t]]
            prompt = rank_request(self.data.dataset, history, candidates, mode="score",
                                  max_history=cfg.max_history)
            target = rank_target(prompt, positive)
            self.sources.update(sources)
            out.append(Example(
                id=f"rank-{user}-t{t}", task="rank",
                messages=[PromptMessage(role=m.role, content=m.content)
                          for m in prompt.request.messages],
                target=target,
                meta={"user": user, "position": t, "history_len": t,
                      "history_shown": prompt.history_shown, "positive": positive,
                      "label": target, "candidates": candidates,
                      "sources": [tags[i] for i in order], "labels": prompt.labels,
                      "prompt_version": prompt.prompt_version}))
        return out

    # -- negatives ---------------------------------------------------------------------
    def _hard_pools(self, events: Sequence, chosen: list[int],
                    seen: frozenset[str]) -> list[list[str]]:
        """The ``hard_pool`` nearest unseen items to each position's recent history: one
        index query per user, one row per position."""
        cfg = self.config
        if self.index is None or self.counts[0] == 0:
            return [[] for _ in chosen]
        recent = [[e.item for e in events[max(0, t - cfg.hard_query_items):t]] for t in chosen]
        ids = list(dict.fromkeys(i for row in recent for i in row))
        vectors = self.index.embeddings(ids)
        where = {item: k for k, item in enumerate(ids)}
        queries = np.stack([vectors[[where[i] for i in row]].mean(axis=0) for row in recent])
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        # Chroma cannot return more than it holds; query() over-fetches by len(seen).
        k = min(cfg.hard_pool, max(self.index.count() - len(seen), 0))
        if k == 0:
            return [[] for _ in chosen]
        hits = self.index.query(queries, k, exclude=set(seen))
        return [[item for item, _ in row if item not in seen] for row in hits]

    def _negatives(self, rng: np.random.Generator, hard_pool: list[str],
                   seen: frozenset[str]) -> tuple[list[str], list[str]]:
        n_hard, n_pop, _ = self.counts
        picked: list[str] = []
        sources: list[str] = []

        def take(pool: list[str], n: int, source: str) -> None:
            pool = [i for i in pool if i not in seen and i not in picked]
            if n <= 0 or not pool:
                return
            for k in rng.choice(len(pool), size=min(n, len(pool)), replace=False):
                picked.append(pool[int(k)])
                sources.append(source)

        take(hard_pool, n_hard, "hard")
        take(self.data.popular[: self.config.popular_pool], n_pop, "popular")
        # Uniform over the catalog by rejection: far cheaper than building the unseen list.
        attempts = 0
        while len(picked) < self.config.n_negatives and attempts < 50 * self.config.n_negatives:
            attempts += 1
            item = self._catalog[int(rng.integers(len(self._catalog)))]
            if item not in seen and item not in picked:
                picked.append(item)
                sources.append("random")
        if len(picked) < self.config.n_negatives:  # tiny catalogs: enumerate what is left
            take([i for i in self._catalog if i not in seen], self.config.n_negatives
                 - len(picked), "random")
        return picked, sources
