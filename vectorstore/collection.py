"""One Chroma collection of precomputed vectors: the query/get logic every index shares.

:class:`VectorCollection` never embeds: callers pass vectors in and get ids, cosine
similarities and stored vectors out. :class:`~tastelens.vectorstore.item_index.ItemIndex`
(item text) and :class:`BehaviourIndex` (collaborative item vectors of a trained
sequential model) are thin subclasses.

Reads never create a collection: a missing one raises :class:`VectorIndexError` telling the
user what to build. A cached collection handle that went stale (another process replaced
the collection) is re-resolved by name once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from tastelens.errors import UnknownIdError, VectorIndexError
from tastelens.vectorstore.chroma_client import (
    COLLECTION_CONFIGURATION,
    collection_name,
    open_client,
    sanitise_name,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from tastelens.config.settings import Settings

T = TypeVar("T")
Hits = list[list[tuple[str, float]]]

#: Collection-level metadata key that records which model produced the vectors.
MODEL_KEY = "tastelens_model"
KIND_KEY = "tastelens_kind"
NORM_KEY = "tastelens_max_norm"
_GET_PAGE = 1000


class _MissingCollectionError(VectorIndexError):
    """The collection does not exist (as opposed to existing but being unusable)."""


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class VectorCollection:
    """A named Chroma collection holding vectors computed outside Chroma.

    ``space`` is the HNSW distance: cosine for text embeddings; subclasses whose vectors
    are compared by dot product (a sequential model's output layer) use "ip". Either way
    :meth:`query` reports ``1 - distance``: cosine similarity, or the inner product.

    ``model`` is recorded in the collection's metadata at creation; opening an existing
    collection recorded with a different model raises, since mixing vector spaces would
    silently give nonsense neighbours.
    """

    kind: ClassVar[str] = "vectors"
    hint: ClassVar[str] = "write vectors to it first"
    space: ClassVar[str] = "cosine"

    def __init__(self, client: ClientAPI, name: str, *, model: str | None = None) -> None:
        self.client = client
        self.name = sanitise_name(name)
        self.model = model
        self._col: Collection | None = None

    # -- resolving the collection -------------------------------------------------------

    def _check(self, col: Collection) -> Collection:
        recorded = (col.metadata or {}).get(MODEL_KEY)
        if self.model and recorded and recorded != self.model:
            raise VectorIndexError(
                f"Chroma collection {self.name!r} holds vectors from {recorded!r}, not "
                f"{self.model!r}: drop it and {self.hint} (e.g. with --rebuild)")
        return col

    def _open(self, *, create: bool) -> Collection:
        from chromadb.errors import NotFoundError

        if self._col is not None:
            return self._col
        if create:
            meta = {KIND_KEY: self.kind, **({MODEL_KEY: self.model} if self.model else {})}
            col = self.client.get_or_create_collection(
                self.name, embedding_function=None, metadata=meta,
                configuration={**COLLECTION_CONFIGURATION, "hnsw": {"space": self.space}})
        else:
            try:
                col = self.client.get_collection(self.name, embedding_function=None)
            except NotFoundError:
                raise _MissingCollectionError(
                    f"Chroma collection {self.name!r} does not exist: {self.hint}") from None
        self._col = self._check(col)
        return self._col

    def _run(self, op: Callable[[Collection], T], *, create: bool = False) -> T:
        from chromadb.errors import NotFoundError

        try:
            return op(self._open(create=create))
        except NotFoundError:
            self._col = None  # replaced or deleted behind our back: resolve by name again
            return op(self._open(create=create))

    def exists(self) -> bool:
        try:
            self._run(lambda col: col.count())
        except _MissingCollectionError:
            return False
        return True

    def count(self) -> int:
        """Number of stored vectors (0 when the collection does not exist yet)."""
        try:
            return self._run(lambda col: col.count())
        except _MissingCollectionError:
            return 0

    def drop(self) -> None:
        """Delete the collection if it exists."""
        from chromadb.errors import NotFoundError

        try:
            self.client.delete_collection(self.name)
        except NotFoundError:
            pass
        self._col = None

    def reset(self) -> None:
        """Delete everything and start with an empty collection."""
        self.drop()
        self._open(create=True)

    # -- writing ------------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               metadatas: Sequence[dict[str, Any]] | None = None,
               documents: Sequence[str] | None = None, *, batch_size: int = 512) -> None:
        """Insert or overwrite ``ids`` with ``vectors`` (rows), in batches.

        As in Chroma, metadata is merged into what is stored under an id: keys not given
        are kept; a key given as None is deleted.
        """
        ids = [str(i) for i in ids]
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(
                f"expected {len(ids)} vectors as a 2-D array, got shape {vectors.shape}")
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise VectorIndexError(f"id {dup!r} appears twice in one upsert to {self.name!r}")
        if not np.isfinite(vectors).all():
            raise VectorIndexError(f"non-finite values in vectors written to {self.name!r}")
        if not ids:
            return
        size = min(batch_size, self.client.get_max_batch_size())
        for part in _chunks(len(ids), size):
            kwargs: dict[str, Any] = {"ids": ids[part], "embeddings": vectors[part]}
            if metadatas is not None:
                kwargs["metadatas"] = [m or None for m in metadatas[part]]
            if documents is not None:
                kwargs["documents"] = list(documents[part])
            self._run(lambda col, kw=kwargs: self._upsert_one(col, kw), create=True)

    def _upsert_one(self, col: Collection, kwargs: dict[str, Any]) -> None:
        from chromadb.errors import InvalidArgumentError

        try:
            col.upsert(**kwargs)
        except InvalidArgumentError as exc:
            raise VectorIndexError(f"Chroma rejected an upsert to {self.name!r}: {exc} "
                              "(a different vector dimension needs a rebuild)") from exc

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for part in _chunks(len(ids), _GET_PAGE):
            self._run(lambda col, chunk=ids[part]: col.delete(ids=chunk), create=True)

    def replace_all(self, ids: Sequence[str], vectors: np.ndarray,
                    metadatas: Sequence[dict[str, Any]] | None = None) -> None:
        """Replace the whole contents (e.g. with a retrained model's vectors).

        The new vectors go into a staging collection first, which is then renamed over the
        old one, so a failure half-way leaves the previous contents untouched.
        """
        staging = VectorCollection(self.client, self.name + "-staging", model=self.model)
        # Recorded in the collection at creation: the staging one must be what it becomes.
        staging.kind, staging.space = self.kind, self.space
        staging.drop()
        staging.upsert(ids, vectors, metadatas)
        staged = staging._open(create=True)
        self.drop()
        staged.modify(name=self.name)
        self._col = None

    # -- reading ------------------------------------------------------------------------

    def query(self, vectors: np.ndarray, k: int, where: dict[str, Any] | None = None,
              exclude: set[str] | None = None) -> Hits:
        """The ``k`` nearest stored ids per query row: ``(id, similarity)``, best first.

        ``where`` is a Chroma metadata filter; ``exclude`` drops ids (e.g. items the user
        has seen) — we over-fetch by ``len(exclude)`` so ``k`` results survive when possible.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if k <= 0 or vectors.shape[0] == 0:
            return [[] for _ in range(vectors.shape[0])]
        exclude = exclude or set()
        n_results = k + len(exclude)
        result = self._run(lambda col: col.query(
            query_embeddings=vectors, n_results=n_results, where=where or None,
            include=["distances"]))
        hits: Hits = []
        for row_ids, row_dist in zip(result["ids"], result["distances"] or []):
            row = [(i, float(1.0 - d)) for i, d in zip(row_ids, row_dist) if i not in exclude]
            hits.append(row[:k])
        return hits

    def get_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored metadata by id (ids not in the collection are simply absent)."""
        out: dict[str, dict[str, Any]] = {}
        ids = list(ids)
        for part in _chunks(len(ids), _GET_PAGE):
            got = self._run(lambda col, c=ids[part]: col.get(ids=c, include=["metadatas"]))
            out.update(zip(got["ids"], [m or {} for m in got["metadatas"]]))
        return out

    def embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors for ``ids``, in the given order (float32, one row per id)."""
        ids = [str(i) for i in ids]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(ids))
        for part in _chunks(len(unique), _GET_PAGE):
            got = self._run(lambda col, c=unique[part]: col.get(ids=c, include=["embeddings"]))
            found.update(zip(got["ids"], got["embeddings"]))
        missing = [i for i in unique if i not in found]
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise UnknownIdError(f"ids not in collection {self.name!r}: {shown}{more}")
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([np.asarray(found[i], dtype=np.float32) for i in ids])

    def iter_metadata(self, page: int = _GET_PAGE) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every stored ``(id, metadata)``, paged so large collections stay cheap."""
        offset = 0
        while True:
            got = self._run(lambda col, o=offset: col.get(
                include=["metadatas"], limit=page, offset=o))
            yield from zip(got["ids"], [m or {} for m in got["metadatas"]])
            if len(got["ids"]) < page:
                return
            offset += page


class BehaviourIndex(VectorCollection):
    """Collaborative item vectors of a trained sequential model, one collection per model.

    Named ``<prefix>-<dataset>-behaviour-<model-tag>``; a retrained model calls
    :meth:`replace_all`. Scores are inner products (SASRec scores are user · item), and
    :meth:`query` reports them as such.

    Inner products are searched as cosines: every item vector ``v`` is stored lifted to a
    common norm ``M`` (the largest item norm) as ``[v, sqrt(M² − |v|²)]`` and a query ``q`` as
    ``[q, 0]``, so ``cos = q·v / (|q| M)`` orders items exactly as ``q·v`` does (the standard
    reduction of maximum inner-product search to nearest neighbours). HNSW searched over raw
    inner products, which are no metric, misses part of the true top items; over the lifted
    cosines it finds them (``tests/vectorstore/test_collaborative.py`` checks the overlap on
    MovieLens). ``M`` is recorded in the collection's metadata.
    """

    kind = "behaviour"
    hint = "train the sequential model and write its item vectors first"

    def __init__(self, client: ClientAPI, name: str, *, model: str | None = None) -> None:
        super().__init__(client, name, model=model)
        self._norm: float | None = None

    @classmethod
    def for_dataset(cls, settings: Settings, dataset_name: str, model_tag: str) -> BehaviourIndex:
        name = collection_name(settings.chroma.collection_prefix, dataset_name, cls.kind,
                               model_tag)
        return cls(open_client(settings), name, model=model_tag)

    @property
    def max_norm(self) -> float | None:
        """The common norm items are lifted to; None for a collection written otherwise."""
        if self._norm is None:
            value = self._run(lambda col: (col.metadata or {}).get(NORM_KEY))
            self._norm = float(value) if value is not None else None
        return self._norm

    def replace_all(self, ids: Sequence[str], vectors: np.ndarray,
                    metadatas: Sequence[dict[str, Any]] | None = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        norm = float(np.linalg.norm(vectors, axis=1).max()) if len(vectors) else 1.0
        norm = norm or 1.0
        super().replace_all(ids, _lift(vectors, norm), metadatas)
        self._run(lambda col: col.modify(metadata={**(col.metadata or {}), NORM_KEY: norm}))
        self._norm = norm

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               metadatas: Sequence[dict[str, Any]] | None = None,
               documents: Sequence[str] | None = None, *, batch_size: int = 512) -> None:
        """Add or overwrite item vectors; they must not be longer than the collection's
        common norm (a retrained model: :meth:`replace_all`)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        norm = self.max_norm if self.exists() else None
        longest = float(np.linalg.norm(vectors, axis=1).max()) if len(vectors) else 0.0
        if norm is None:
            if self.exists() and self.count():
                raise VectorIndexError(f"collection {self.name!r} holds vectors without a "
                                       "recorded norm: rewrite it with replace_all")
            self.replace_all(ids, vectors, metadatas)
            return
        if longest > norm * (1 + 1e-6):
            raise VectorIndexError(f"vectors longer than collection {self.name!r}'s norm "
                                   f"{norm:.4g}: rewrite it with replace_all")
        super().upsert(ids, _lift(vectors, norm), metadatas, documents, batch_size=batch_size)

    def query(self, vectors: np.ndarray, k: int, where: dict[str, Any] | None = None,
              exclude: set[str] | None = None) -> Hits:
        """The ``k`` items with the largest inner product per query row: ``(id, q·v)``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        norm = self.max_norm
        if norm is None:
            raise VectorIndexError(f"collection {self.name!r} was written without lifted "
                                   f"vectors: {self.hint}")
        lifted = np.hstack([vectors, np.zeros((len(vectors), 1), dtype=np.float32)])
        hits = super().query(lifted, k, where=where, exclude=exclude)
        scale = np.linalg.norm(vectors, axis=1) * norm
        return [[(i, sim * float(s)) for i, sim in row] for row, s in zip(hits, scale)]

    def embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """The stored item vectors (without the lifting coordinate)."""
        stored = super().embeddings(ids)
        return stored[:, :-1] if stored.size else stored


def _lift(vectors: np.ndarray, norm: float) -> np.ndarray:
    """``[v, sqrt(norm² − |v|²)]`` per row: every row gets length ``norm``."""
    lengths = np.linalg.norm(vectors, axis=1)
    extra = np.sqrt(np.maximum(norm * norm - lengths * lengths, 0.0))
    return np.hstack([vectors, extra[:, None]]).astype(np.float32)
