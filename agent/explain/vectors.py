"""Text vectors for the explainer: items' from the Chroma item index, claims' from its encoder.

The explainer compares a recommended item with the user's history (which liked items is it
most like?) and with claim texts (does its text support "heist"?) by cosine of unit vectors.
Item vectors are the ones ``tastelens index build`` stored, read in one Chroma call per batch;
text vectors come from the same encoder, so both live in one space. Both are cached: the
catalog does not change under a running explainer.

Without an index (or with one that lacks an item) the vector is simply absent, and the
explainer falls back to the word rules: shared categories and tags for history similarity,
tags and description for claims.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import numpy as np

from tastelens.errors import UnknownIdError, VectorIndexError
from tastelens.vectorstore.item_index import ItemIndex

log = logging.getLogger(__name__)
_MAX_CACHED = 200_000  # vectors kept (items + texts); beyond it the cache starts over


class ExplainVectors:
    """Cached unit vectors of items (stored) and texts (encoded); None = unavailable."""

    def __init__(self, index: ItemIndex | None) -> None:
        self.index = index
        self._items: dict[str, np.ndarray | None] = {}
        self._texts: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._broken = index is None  # nothing to fetch from

    @classmethod
    def fixed(cls, items: dict[str, np.ndarray],
              texts: dict[str, np.ndarray] | None = None) -> ExplainVectors:
        """Vectors computed elsewhere (unit length), nothing fetched: for tests and for
        callers that hold a catalog's vectors in memory already."""
        out = cls(None)
        out._items = {i: np.asarray(v, dtype=np.float32) for i, v in items.items()}
        out._texts = {t: np.asarray(v, dtype=np.float32) for t, v in (texts or {}).items()}
        return out

    def load(self, items: Iterable[str] = (), texts: Iterable[str] = ()) -> None:
        """Fetch what is not cached yet: stored vectors of ``items`` (one read), encoded
        vectors of ``texts`` (one encoder call)."""
        if self._broken:
            return
        assert self.index is not None
        with self._lock:
            if len(self._items) + len(self._texts) > _MAX_CACHED:
                self._items.clear()
                self._texts.clear()
            want = [i for i in dict.fromkeys(items) if i not in self._items]
            new_texts = [t for t in dict.fromkeys(texts) if t not in self._texts]
        try:
            found = self._stored(want) if want else {}
            encoded = self.index.encoder.encode(new_texts) if new_texts else None
        except VectorIndexError as exc:  # no index built: the word rules still explain
            log.warning("explanations without text vectors: %s", exc)
            self._broken = True
            return
        with self._lock:
            self._items.update({i: found.get(i) for i in want})
            if encoded is not None:
                self._texts.update(zip(new_texts, np.asarray(encoded, dtype=np.float32)))

    def item(self, item: str) -> np.ndarray | None:
        return self._items.get(item)

    def text(self, text: str | None) -> np.ndarray | None:
        return None if text is None else self._texts.get(text)

    def _stored(self, ids: list[str]) -> dict[str, np.ndarray]:
        assert self.index is not None
        try:
            return dict(zip(ids, self.index.embeddings(ids)))
        except UnknownIdError:  # some items are not indexed (a stale index): use the rest
            present = [i for i in ids if i in self.index.get_metadata(ids)]
            return dict(zip(present, self.index.embeddings(present))) if present else {}
