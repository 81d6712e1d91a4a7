"""What the interest miner knows about a whole catalog, computed once per dataset.

- ``matrix``: items × descriptors, 1 where the item carries the descriptor
  (:func:`tastelens.data.descriptors.descriptors`), CSR, catalog order;
- ``background``: each descriptor's share of all interactions — the rate at which a typical
  event lands on an item carrying it. A user's liked items are compared against this, not
  against the raw catalog, so descriptors of popular items ("based on novel") do not look
  special merely because everybody watches those items;
- ``space``: an item embedding computed from the catalog's own text — TF-IDF over each item's
  descriptors (whole phrases), categories, decade and description words, reduced by truncated
  SVD and normalised (latent semantic analysis). Topics are k-means clusters of a user's liked
  items in it. It needs no model and exists for any catalog: with descriptors it separates
  "heist" films from "space opera"; with categories only it degrades to genre × decade groups;
- ``application``: which descriptors name a use or an occasion ("christmas", "for lab use",
  "date night"): a fixed English vocabulary of occasions and the "for …" pattern, matched on
  the descriptors the catalog actually has, so a catalog without them yields none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from tastelens.agent.profile.grounding import is_generic
from tastelens.config.pipeline import MiningConfig
from tastelens.data.dataset import Dataset, item_counts
from tastelens.data.descriptors import DescriptorIndex, words

OCCASION_WORDS = frozenset({
    "christmas", "xmas", "holiday", "holidays", "halloween", "thanksgiving", "valentine",
    "valentine's", "easter", "hanukkah", "birthday", "wedding", "anniversary", "graduation",
    "prom", "party", "sleepover", "picnic", "camping", "vacation", "commute",
    "workout", "gym", "bedtime", "lullaby", "gift", "gifts", "classroom",
    "homework", "lab", "laboratory", "beach", "weekend", "toddler", "toddlers",
})
"""Words that make a descriptor an occasion or use ('christmas party', 'for lab use')."""
AMBIGUOUS_OCCASION_WORDS = frozenset({
    "family", "kids", "travel", "road", "date", "office", "rainy",
})
"""Words that name an occasion or use only as the whole descriptor ("family", "travel") or
in the use patterns ("date night", "road trip"): in a longer descriptor they name a theme
("space travel", "dysfunctional family", "blind date")."""
_FOR_USE = re.compile(r"^(for|suitable for|good for|ideal for) \w|\b(use|night|trip)$")
_TEXT_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_STOP = frozenset("""the and for with that this from have has are was were his her their
they them its into about after before when where what which while who whom will would
there been being than then also over under more most some such only other just like one
two three new all any each film movie story""".split())


def is_application(descriptor: str) -> bool:
    """Whether a descriptor names an occasion or use (see the module docstring)."""
    found = words(descriptor)
    return (bool(_FOR_USE.search(descriptor)) or any(w in OCCASION_WORDS for w in found)
            or (len(found) == 1 and found[0] in AMBIGUOUS_OCCASION_WORDS))


@dataclass(frozen=True)
class CatalogSignals:
    """Catalog-wide inputs of the miner (see the module docstring)."""

    item_index: dict[str, int]
    vocabulary: list[str]
    matrix: sparse.csr_matrix
    background: np.ndarray
    space: np.ndarray
    application: np.ndarray
    idf: np.ndarray
    """ln((1 + N) / (1 + df)) + 1 per descriptor (DescriptorIndex.idf)."""
    unusable: np.ndarray
    """Descriptors that say nothing on their own (:func:`~.grounding.is_generic`)."""
    descriptor_index: DescriptorIndex
    item_rating: np.ndarray | None = None
    """Each item's mean rating, shrunk towards the mean of all ratings (NaN-free; None when
    nothing is rated): the sentiment miner contrasts a person's ratings against it, so a
    kind of item that everybody rates high is not one person's taste."""

    @property
    def has_descriptors(self) -> bool:
        return bool(self.vocabulary)

    def generic(self, share: float) -> np.ndarray:
        """Mask of the descriptors no interest is made of: the ``floor(share × vocabulary)``
        with the highest background rate (too common to tell one person's taste from
        another's), and those that say nothing (:func:`~.grounding.is_generic`: "fun",
        "1940s", a category's name)."""
        n = int(share * len(self.vocabulary))
        mask = self.unusable.copy()
        if n > 0:
            mask[np.argsort(-self.background, kind="stable")[:n]] = True
        return mask

    def rows(self, item_ids: list[str]) -> np.ndarray:
        return np.array([self.item_index[i] for i in item_ids], dtype=np.int64)


def signals_for(dataset: Dataset, config: MiningConfig) -> CatalogSignals:
    """The dataset's signals (background from all its interactions), computed on first use
    and kept in ``dataset.derived``."""
    key = ("profile-signals", config.space_dims)
    found = dataset.derived.get(key)
    if not isinstance(found, CatalogSignals):
        found = build_signals(dataset, config)
        dataset.derived[key] = found
    return found


def build_signals(dataset: Dataset, config: MiningConfig,
                  interactions: pd.DataFrame | None = None) -> CatalogSignals:
    """The signals with the background taken from ``interactions`` (default: the dataset's;
    an evaluation passes its training part so held-out events count nowhere). The parts
    that depend on the catalog alone are computed once per dataset."""
    key = ("profile-catalog", config.space_dims)
    catalog = dataset.derived.get(key)
    if not isinstance(catalog, _CatalogPart):
        catalog = dataset.derived[key] = _catalog_part(dataset, config.space_dims)
    frame = dataset.interactions if interactions is None else interactions
    per_item = item_counts(frame, dataset)
    total = per_item.sum()
    matrix = catalog.matrix
    background = (np.asarray(matrix.T @ per_item).ravel() / total if total > 0
                  else np.zeros(len(catalog.vocabulary)))
    # A descriptor no training event touches still has a (tiny) catalog rate.
    floor = catalog.df / max(dataset.n_items, 1) / 100
    background = np.clip(np.maximum(background, floor), 1e-6, 1 - 1e-6)
    return CatalogSignals(
        item_index=dataset.item_index, vocabulary=catalog.vocabulary, matrix=matrix,
        background=background, space=catalog.space, application=catalog.application,
        idf=np.log((1 + dataset.n_items) / (1 + catalog.df)) + 1,
        unusable=catalog.unusable, descriptor_index=dataset.descriptor_index,
        item_rating=_item_ratings(dataset, frame))


ITEM_RATING_PRIOR = 5.0
"""Ratings' worth of the overall mean that each item's mean rating is shrunk with."""


def _item_ratings(dataset: Dataset, frame: pd.DataFrame) -> np.ndarray | None:
    rated = frame.dropna(subset=["rating"])
    if rated.empty:
        return None
    overall = float(rated["rating"].mean())
    stats = rated.groupby(rated["item"].map(dataset.item_index))["rating"].agg(["sum", "count"])
    out = np.full(dataset.n_items, overall)
    rows = stats.index.to_numpy(dtype=np.int64)
    out[rows] = ((stats["sum"] + ITEM_RATING_PRIOR * overall)
                 / (stats["count"] + ITEM_RATING_PRIOR)).to_numpy()
    return out


@dataclass(frozen=True)
class _CatalogPart:
    vocabulary: list[str]
    matrix: sparse.csr_matrix
    df: np.ndarray
    space: np.ndarray
    application: np.ndarray
    unusable: np.ndarray


def _catalog_part(dataset: Dataset, dims: int) -> _CatalogPart:
    index = dataset.descriptor_index
    vocabulary = index.vocabulary()
    column = {d: j for j, d in enumerate(vocabulary)}
    rows, cols = [], []
    for r, item_id in enumerate(dataset.item_ids):
        for d in index.of(item_id):
            rows.append(r)
            cols.append(column[d])
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(dataset.n_items, len(vocabulary)))
    return _CatalogPart(
        vocabulary=vocabulary, matrix=matrix,
        df=np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel(),
        space=_item_space(dataset, dims),
        application=np.array([is_application(d) for d in vocabulary], dtype=bool),
        unusable=np.array([is_generic(d, dataset.categories) for d in vocabulary],
                          dtype=bool))


def _item_tokens(dataset: Dataset) -> list[list[str]]:
    index = dataset.descriptor_index
    out = []
    for item_id, item in dataset.items.items():
        tokens = [f"d:{d}" for d in index.of(item_id)]
        tokens += [f"c:{c.casefold()}" for c in item.categories]
        if item.year:
            tokens.append(f"y:{item.year // 10 * 10}")
        if item.text:
            tokens += [w for w in _TEXT_WORD.findall(item.text.casefold()) if w not in _STOP]
        out.append(tokens)
    return out


def _item_space(dataset: Dataset, dims: int) -> np.ndarray:
    """TF-IDF of the items' tokens -> truncated SVD -> unit rows (zero rows stay zero)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tokens = _item_tokens(dataset)
    n = len(tokens)
    if not any(tokens):
        return np.zeros((n, 1), dtype=np.float32)
    vectorizer = TfidfVectorizer(analyzer=lambda t: t, min_df=2 if n >= 50 else 1,
                                 sublinear_tf=True)
    try:
        tfidf = vectorizer.fit_transform(tokens)
    except ValueError:  # every token is on a single item: nothing shared to cluster by
        return np.zeros((n, 1), dtype=np.float32)
    k = min(dims, tfidf.shape[1] - 1, n - 1)
    dense = (TruncatedSVD(n_components=k, n_iter=3, random_state=0).fit_transform(tfidf)
             if k >= 2 else tfidf.toarray())
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return (dense / np.where(norms > 0, norms, 1.0)).astype(np.float32)
