"""Profile-text embedding baseline: embed a user's interest profile, rank items by cosine.

For each history the system computes the profile's deterministic parts (the same code the
profiler uses: category preferences, recent-vs-long-term drift, data-derived interests and
the template summary), writes them as one text, embeds it with the item index's own
encoder and scores every item by cosine similarity to it. Profiles are computed from the
evaluation history only (never from the full user log), so the held-out item cannot leak.

LLM-written profiles would need one model call per evaluated history; this system is the
data-only profile text, the reference point an LLM profile has to beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from tastelens.agent.profile_facts import (
    CategoryCooccurrence,
    ProfileFacts,
    ProfileFactsConfig,
    compute_facts,
)
from tastelens.data.dataset import History
from tastelens.eval.baselines.base import register
from tastelens.eval.baselines.embedding import (
    EmbedMeanConfig,
    EmbedMeanRecommender,
    _normalise,
)
from tastelens.prompts.selection import HistoryEntry


class ProfileEmbedConfig(EmbedMeanConfig):
    """Config of the ``profile-embed`` system."""

    max_interests: int = Field(default=8, ge=0, description="Interest labels put in the text.")
    max_categories: int = Field(default=5, ge=0, description="Top categories put in the text.")
    include_recent: bool = Field(
        default=True, description="Name the categories whose share is rising recently.")
    facts: ProfileFactsConfig = Field(
        default_factory=ProfileFactsConfig,
        description="How the profile facts are computed (the profiler's own settings).")


def profile_text(facts: ProfileFacts, config: ProfileEmbedConfig) -> str:
    """The text that stands for a profile: interests, main and rising categories, summary."""
    parts = []
    labels = [i.label for i in facts.data_interests[:config.max_interests]]
    if labels:
        parts.append("Interests: " + ", ".join(labels))
    cats = [c.category for c in facts.categories[:config.max_categories]]
    if cats:
        parts.append("Genres: " + ", ".join(cats))
    rising = [d.category for d in facts.drift if d.direction == "rising"][:3]
    if config.include_recent and rising:
        parts.append("Lately: " + ", ".join(rising))
    parts.append(facts.summary)
    return ". ".join(p for p in parts if p)


@register
class ProfileEmbedRecommender(EmbedMeanRecommender):
    """Cosine similarity between each item and the embedded data-derived profile text.

    Item vectors and scoring (matrix product, or Chroma's query) are ``embed-mean``'s; only
    the user vector differs: the profile text embedded by the index's own encoder.
    """

    name = "profile-embed"
    Config = ProfileEmbedConfig
    config: ProfileEmbedConfig

    def fit(self, train: pd.DataFrame) -> None:
        """The item vectors (see ``embed-mean``) and the catalog's category co-occurrence."""
        super().fit(train)
        self.cooc_ = CategoryCooccurrence.from_dataset(self.context.dataset, self.config.facts)

    def texts(self, histories: Sequence[History]) -> list[str | None]:
        """One profile text per history (None for an empty history)."""
        items = self.context.dataset.items
        ids = self.context.dataset.item_ids
        out: list[str | None] = []
        for history in histories:
            if not len(history):
                out.append(None)
                continue
            entries = [HistoryEntry(
                item=items[ids[i]], rating=None if math.isnan(r) else float(r),
                timestamp=None if t < 0 else int(t))
                for i, r, t in zip(history.items, history.ratings, history.timestamps)]
            facts = compute_facts(self.context.dataset, entries, self.config.facts, self.cooc_)
            out.append(profile_text(facts, self.config))
        return out

    def user_vectors(self, histories: Sequence[History]) -> np.ndarray:
        """Unit-length embedded profile texts (zero for an empty history)."""
        texts = self.texts(histories)
        out = np.zeros((len(histories), self.item_vectors_.shape[1]), dtype=np.float32)
        rows = [r for r, t in enumerate(texts) if t is not None]
        if rows:
            out[rows] = self.index_.encoder.encode([texts[r] for r in rows])
        return _normalise(out)
