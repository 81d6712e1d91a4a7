"""The item text index: one Chroma collection of catalog item embeddings.

Building is idempotent and resumable without any separate state: each stored item keeps
a content hash (sha256 of the encoder id, the document text and the filter metadata), so
a rebuild embeds only new or changed items, deletes items that left the catalog, and a
build that was interrupted completes on the next run.

Filter metadata per item: ``title``; ``year`` (int, omitted when unknown); ``categories``
(a list, Chroma 1.x array metadata: ``{"categories": {"$contains": "Horror"}}``); and one
boolean ``cat_<slug>: True`` per category (``{"cat_horror": True}``). :func:`item_filter`
builds these filters.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tastelens.errors import VectorIndexError
from tastelens.progress import LoggedProgress
from tastelens.schemas import Item
from tastelens.vectorstore.chroma_client import (
    COLLECTION_CONFIGURATION,
    collection_name,
    model_slug,
    open_client,
)
from tastelens.vectorstore.collection import Hits, VectorCollection
from tastelens.vectorstore.encoders import TextEncoder

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from langchain_chroma import Chroma

    from tastelens.config.settings import Settings

HASH_KEY = "tl_hash"


class BuildReport(BaseModel):
    """What one :meth:`ItemIndex.build` did."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(description="Chroma collection name.")
    model: str = Field(description="Encoder model id.")
    added: int = Field(default=0, description="Items embedded for the first time.")
    updated: int = Field(default=0, description="Items whose text or metadata changed.")
    unchanged: int = Field(default=0, description="Items skipped: stored hash matched.")
    removed: int = Field(default=0, description="Stored items no longer in the catalog.")
    seconds: float = Field(default=0.0, description="Wall time of the whole build.")
    embed_seconds: float = Field(default=0.0, description="Time spent in the encoder.")
    write_seconds: float = Field(default=0.0, description="Time spent writing to Chroma.")


def category_key(category: str) -> str:
    """``Sci-Fi`` -> ``cat_sci_fi``: the boolean metadata key for one category."""
    slug = re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")
    return f"cat_{slug or 'none'}"


def item_metadata(item: Item) -> dict[str, Any]:
    meta: dict[str, Any] = {"title": item.title}
    if item.year is not None:
        meta["year"] = int(item.year)
    if item.categories:
        meta["categories"] = list(item.categories)
        meta.update({category_key(c): True for c in item.categories})
    return meta


def item_filter(genres: Sequence[str] = (), year_min: int | None = None,
                year_max: int | None = None) -> dict[str, Any] | None:
    """A Chroma ``where`` filter: any of ``genres`` and year within [year_min, year_max]."""
    clauses: list[dict[str, Any]] = []
    if genres:
        options = [{category_key(g): True} for g in dict.fromkeys(genres)]
        clauses.append(options[0] if len(options) == 1 else {"$or": options})
    if year_min is not None:
        clauses.append({"year": {"$gte": int(year_min)}})
    if year_max is not None:
        clauses.append({"year": {"$lte": int(year_max)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _replacing(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus ``key: None`` for every key only ``old`` has.

    Chroma's upsert merges metadata into what is stored; a None value deletes the key, so
    an item that lost a category (or its year) stops matching that filter.
    """
    return {**{k: None for k in (old or {}) if k not in new}, **new}


def content_hash(model_id: str, document: str, metadata: dict[str, Any]) -> str:
    payload = json.dumps([model_id, document, metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ItemIndex(VectorCollection):
    """Item text embeddings for one dataset and one encoder."""

    kind = "text"
    hint = "run `tastelens index build`"

    def __init__(self, client: ClientAPI, name: str, encoder: TextEncoder) -> None:
        super().__init__(client, name, model=encoder.model_id)
        self.encoder = encoder

    @classmethod
    def for_dataset(cls, settings: Settings, dataset_name: str, encoder: TextEncoder) -> ItemIndex:
        """``<prefix>-<dataset>-text-<model-slug>`` in the store ``settings.chroma`` names."""
        name = collection_name(settings.chroma.collection_prefix, dataset_name, cls.kind,
                               model_slug(encoder.model_id))
        return cls(open_client(settings), name, encoder)

    def build(self, items: Iterable[Item], *, batch_size: int = 256,
              progress: bool = True) -> BuildReport:
        """Make the collection hold exactly ``items``, embedding only what changed."""
        start = time.perf_counter()
        report = BuildReport(collection=self.name, model=self.encoder.model_id)
        catalog: dict[str, tuple[Item, str, dict[str, Any]]] = {}
        for item in items:
            if item.id in catalog:
                raise VectorIndexError(f"item id {item.id!r} appears twice in the catalog "
                                  f"given to index {self.name!r}")
            document, meta = item.document(), item_metadata(item)
            meta[HASH_KEY] = content_hash(self.encoder.model_id, document, meta)
            catalog[item.id] = (item, document, meta)

        stored = dict(self.iter_metadata()) if self.exists() else {}
        removed = [i for i in stored if i not in catalog]
        todo = [i for i, (_, _, meta) in catalog.items()
                if stored.get(i, {}).get(HASH_KEY) != meta[HASH_KEY]]
        report.updated = sum(1 for i in todo if i in stored)
        report.added = len(todo) - report.updated
        report.unchanged = len(catalog) - len(todo)
        report.removed = len(removed)

        t = time.perf_counter()
        self.delete(removed)
        report.write_seconds += time.perf_counter() - t
        with _progress(progress, len(todo), "embedding") as advance:
            for lo in range(0, len(todo), batch_size):
                ids = todo[lo:lo + batch_size]
                docs = [catalog[i][1] for i in ids]
                t = time.perf_counter()
                vectors = self.encoder.encode(docs)
                report.embed_seconds += time.perf_counter() - t
                t = time.perf_counter()
                # Upserting each batch right away is what makes an interrupted build resumable.
                self.upsert(ids, vectors, [_replacing(stored.get(i), catalog[i][2]) for i in ids],
                            docs)
                report.write_seconds += time.perf_counter() - t
                advance(len(ids))
        if not todo and not stored:
            self._open(create=True)  # an empty catalog still leaves an (empty) index behind
        report.seconds = time.perf_counter() - start
        return report

    def query_text(self, texts: Sequence[str], k: int, where: dict[str, Any] | None = None,
                   exclude: set[str] | None = None) -> Hits:
        """Embed ``texts`` with this index's encoder and :meth:`query` with them."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        self._open(create=False)  # a missing index should fail before a model loads
        return self.query(self.encoder.encode(texts), k, where=where, exclude=exclude)

    def as_langchain(self) -> Chroma:
        """A LangChain ``Chroma`` vector store over this same collection and encoder."""
        from langchain_chroma import Chroma

        from tastelens.vectorstore.langchain_adapter import EncoderEmbeddings

        self._open(create=False)  # a missing index raises here, with the hint to build it
        # create_collection_if_not_exists=True makes LangChain open the collection with
        # embedding_function=None; its other path would attach Chroma's default embedder.
        return Chroma(client=self.client, collection_name=self.name,
                      embedding_function=EncoderEmbeddings(self.encoder),
                      collection_configuration=COLLECTION_CONFIGURATION,
                      create_collection_if_not_exists=True)


class _RateColumn(ProgressColumn):
    """Throughput in items per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} items/s" if speed else "? items/s", style="cyan")


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: drives a rich progress bar (plain lines when the output is not
    a terminal), or does nothing when disabled."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    with LoggedProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), _RateColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
