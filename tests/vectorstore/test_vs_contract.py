"""One contract for ItemIndex / BehaviourIndex, run against every Chroma backend.

Subclasses supply only the ``client`` fixture: an embedded PersistentClient in tmp_path
(unit) and a real `chroma run` server (integration). Expected rankings are computed by
brute force from the same fake encoder, so the index has to agree with plain numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastelens.config.settings import ChromaSettings, Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import UnknownIdError, VectorIndexError
from tastelens.schemas import Item
from tastelens.vectorstore.chroma_client import open_client
from tastelens.vectorstore.collection import BehaviourIndex
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex, item_filter


def brute_force(encoder: HashingEncoder, items: list[Item], query: str, k: int,
                keep=lambda item: True, exclude=frozenset()) -> list[tuple[str, float]]:
    """Exact top-k by numpy: ``(id, cosine)`` best first."""
    pool = [it for it in items if keep(it) and it.id not in exclude]
    scores = encoder.encode([it.document() for it in pool]) @ encoder.encode([query])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(pool[i].id, float(scores[i])) for i in order]


def assert_same_ranking(hits: list[tuple[str, float]], expected: list[tuple[str, float]],
                        true_score: dict[str, float]) -> None:
    """Same length, same score profile, and every hit's score is its true cosine.

    Ids are not compared position by position: hashed bags of words tie, and tied ids may
    come back in any order.
    """
    assert len(hits) == len(expected)
    np.testing.assert_allclose([s for _, s in hits], [s for _, s in expected], atol=1e-4)
    for item_id, score in hits:
        assert score == pytest.approx(true_score[item_id], abs=1e-4)


class ItemIndexContract:
    """Behaviour every ItemIndex backend must show. Subclasses provide ``client``."""

    @pytest.fixture
    def encoder(self) -> HashingEncoder:
        return HashingEncoder(dim=512)

    @pytest.fixture
    def items(self, tiny_dataset: Dataset) -> list[Item]:
        return list(tiny_dataset.items.values())

    @pytest.fixture
    def index(self, client, unique_name: str, encoder: HashingEncoder) -> ItemIndex:
        return ItemIndex(client, unique_name, encoder)

    @pytest.fixture
    def built(self, index: ItemIndex, items: list[Item]) -> ItemIndex:
        report = index.build(items, batch_size=16, progress=False)
        assert (report.added, report.updated, report.unchanged, report.removed) == \
            (len(items), 0, 0, 0)
        return index

    def test_build_stores_every_item(self, built: ItemIndex, items: list[Item]) -> None:
        assert built.count() == len(items)
        meta = built.get_metadata([items[0].id])[items[0].id]
        assert meta["title"] == items[0].title and meta["year"] == items[0].year

    def test_rebuild_embeds_nothing(self, built: ItemIndex, items, encoder) -> None:
        before = encoder.texts_encoded
        report = built.build(items, progress=False)
        assert encoder.texts_encoded == before
        assert (report.added, report.updated, report.unchanged, report.removed) == \
            (0, 0, len(items), 0)

    def test_changed_item_is_reembedded(self, built: ItemIndex, items, encoder) -> None:
        changed = items[3].model_copy(update={"tags": ("zeppelin", "submarine")})
        before = encoder.texts_encoded
        report = built.build([changed if it.id == changed.id else it for it in items],
                             progress=False)
        assert (report.added, report.updated, report.unchanged) == (0, 1, len(items) - 1)
        assert encoder.texts_encoded == before + 1
        assert built.query_text(["zeppelin submarine"], k=1)[0][0][0] == changed.id

    def test_new_keywords_reembed_the_item(self, built: ItemIndex, items, encoder) -> None:
        # Side information arriving later (keywords) changes the embedded text: the stored
        # hash no longer matches, so that item (and only it) is embedded again.
        changed = items[5].model_copy(update={"keywords": ("zeppelin", "airship")})
        before = encoder.texts_encoded
        report = built.build([changed if it.id == changed.id else it for it in items],
                             progress=False)
        assert (report.added, report.updated, report.unchanged) == (0, 1, len(items) - 1)
        assert encoder.texts_encoded == before + 1
        assert built.query_text(["zeppelin airship"], k=1)[0][0][0] == changed.id

    def test_changed_metadata_drops_stale_filter_keys(self, built: ItemIndex, items) -> None:
        horror = next(it for it in items if "Horror" in it.categories)
        moved = horror.model_copy(update={"categories": ("Comedy",), "year": None})
        built.build([moved if it.id == moved.id else it for it in items], progress=False)
        meta = built.get_metadata([moved.id])[moved.id]
        assert "year" not in meta and "cat_horror" not in meta and meta["cat_comedy"] is True
        assert meta["categories"] == ["Comedy"]
        in_horror = {i for i, _ in built.query_text(["x"], k=40, where=item_filter(["Horror"]))[0]}
        assert moved.id not in in_horror and in_horror

    def test_removed_item_is_deleted(self, built: ItemIndex, items) -> None:
        gone = items[-1].id
        report = built.build(items[:-1], progress=False)
        assert report.removed == 1 and built.count() == len(items) - 1
        with pytest.raises(UnknownIdError, match=repr(gone)):
            built.embeddings([gone])

    def test_interrupted_build_completes_on_rerun(self, index: ItemIndex, items, encoder,
                                                  monkeypatch) -> None:
        real_encode = encoder.encode

        def flaky(texts, **kw):
            if encoder.calls >= 2:
                raise KeyboardInterrupt
            return real_encode(texts, **kw)

        monkeypatch.setattr(encoder, "encode", flaky)
        with pytest.raises(KeyboardInterrupt):
            index.build(items, batch_size=10, progress=False)
        assert index.count() == 20  # two batches landed before the interruption
        monkeypatch.setattr(encoder, "encode", real_encode)
        report = index.build(items, batch_size=10, progress=False)
        assert (report.added, report.unchanged) == (len(items) - 20, 20)
        assert index.count() == len(items)

    def test_query_order_matches_brute_force(self, built: ItemIndex, items, encoder) -> None:
        query = "horror movie 4 1983"
        hits = built.query_text([query], k=8)[0]
        everything = dict(brute_force(encoder, items, query, len(items)))
        assert hits[0][0] == "4"  # the only item with both '4' and '1983'
        assert_same_ranking(hits, brute_force(encoder, items, query, 8), everything)
        sims = [s for _, s in hits]
        assert sims == sorted(sims, reverse=True) and sims[0] > sims[-1]

    def test_exclude_skips_ids_and_still_returns_k(self, built: ItemIndex, items, encoder) -> None:
        query = "comedy movie 2 1981 animation"
        top = {i for i, _ in brute_force(encoder, items, query, 3)}
        hits = built.query_text([query], k=5, exclude=top)[0]
        assert len(hits) == 5 and not top & {i for i, _ in hits}
        assert_same_ranking(hits, brute_force(encoder, items, query, 5, exclude=top),
                            dict(brute_force(encoder, items, query, len(items))))

    def test_where_filters_by_category_and_year(self, built: ItemIndex, items) -> None:
        where = item_filter(genres=["Horror"], year_min=1990)
        hits = built.query_text(["movie"], k=40, where=where)[0]
        expected = {it.id for it in items if "Horror" in it.categories and it.year >= 1990}
        assert {i for i, _ in hits} == expected and expected
        by_array = built.query_text(["movie"], k=40,
                                    where={"categories": {"$contains": "Horror"}})[0]
        assert {i for i, _ in by_array} == {it.id for it in items if "Horror" in it.categories}
        either = built.query_text(["movie"], k=40, where=item_filter(["Horror", "Comedy"]))[0]
        assert len(either) == sum(1 for it in items if {"Horror", "Comedy"} & set(it.categories))

    def test_embeddings_follow_requested_order(self, built: ItemIndex, items, encoder) -> None:
        ids = [items[7].id, items[0].id, items[19].id, items[0].id]
        got = built.embeddings(ids)
        want = encoder.encode([items[7].document(), items[0].document(),
                               items[19].document(), items[0].document()])
        np.testing.assert_allclose(got, want, atol=1e-6)
        with pytest.raises(UnknownIdError, match="'nope'"):
            built.embeddings([items[0].id, "nope"])

    def test_langchain_similarity_search_agrees(self, built: ItemIndex, items) -> None:
        store = built.as_langchain()
        query = "drama movie 3"
        docs = store.similarity_search(query, k=5)
        assert [d.id for d in docs] == [i for i, _ in built.query_text([query], k=5)[0]]
        first = next(it for it in items if it.id == docs[0].id)
        assert docs[0].page_content == first.document()
        filtered = store.similarity_search(query, k=40, filter=item_filter(["Drama"]))
        assert {d.id for d in filtered} == {it.id for it in items if "Drama" in it.categories}

    def test_missing_index_says_how_to_build(self, index: ItemIndex) -> None:
        with pytest.raises(VectorIndexError, match="tastelens index build"):
            index.query_text(["anything"], k=3)
        assert index.count() == 0

    def test_duplicate_ids_are_rejected(self, index: ItemIndex, items) -> None:
        with pytest.raises(VectorIndexError, match=repr(items[0].id)):
            index.build([items[0], items[1], items[0]], progress=False)

    def test_other_model_cannot_reuse_collection(self, built: ItemIndex, client) -> None:
        other = ItemIndex(client, built.name, HashingEncoder(dim=64))
        with pytest.raises(VectorIndexError, match="hashing-512"):
            other.query_text(["x"], k=1)

    # -- the behaviour collection shares the base ----------------------------------------

    def test_behaviour_upsert_query_replace(self, client, unique_name: str) -> None:
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(30, 16)).astype(np.float32)
        ids = [f"m{i}" for i in range(30)]
        coll = BehaviourIndex(client, unique_name, model="sasrec-v1")
        coll.upsert(ids, vectors)
        reader = BehaviourIndex(client, unique_name, model="sasrec-v1")
        assert reader.count() == 30  # caches its collection handle before the swap
        # Inner-product space: neighbours and scores are dot products, as SASRec scores are
        # (cosine would rank a short vector pointing the same way above a long one).
        query = rng.normal(size=16).astype(np.float32)
        hits = coll.query(query, k=3)[0]
        dots = vectors @ query
        assert [h[0] for h in hits] == [ids[i] for i in np.argsort(-dots)[:3]]
        assert hits[0][1] == pytest.approx(float(dots.max()), rel=1e-3)
        np.testing.assert_allclose(coll.embeddings(["m9", "m2"]), vectors[[9, 2]], atol=1e-6)

        fresh = rng.normal(size=(10, 16)).astype(np.float32)
        coll.replace_all([f"n{i}" for i in range(10)], fresh)
        assert coll.count() == 10
        with pytest.raises(UnknownIdError):
            coll.embeddings(["m1"])
        names = {c.name for c in client.list_collections()}
        assert unique_name in names and f"{unique_name}-staging" not in names
        # The handle cached before the swap re-resolves the collection by name.
        assert reader.query(fresh[4], k=1)[0][0][0] == f"n{int(np.argmax(fresh @ fresh[4]))}"
        # ...and the replaced collection is still in inner-product space (it is staged first).
        top = coll.query(query, k=1)[0][0]
        assert top == (f"n{int(np.argmax(fresh @ query))}",
                       pytest.approx(float((fresh @ query).max()), rel=1e-3))


class TestEmbeddedItemIndex(ItemIndexContract):
    @pytest.fixture
    def client(self, tmp_path: Path):
        return open_client(Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded")))


@pytest.mark.integration
class TestServerItemIndex(ItemIndexContract):
    @pytest.fixture
    def client(self, chroma_server, tmp_path: Path):
        return open_client(chroma_server.settings(tmp_path))
