"""Descriptors: normalisation, the per-item list, and the catalog's inverted index."""

from __future__ import annotations

import pytest

from tastelens.data.descriptors import DescriptorIndex, descriptors, normalise, variants
from tastelens.schemas import Item


def item(i: str, keywords=(), tags=(), categories=()) -> Item:
    return Item(id=i, title=f"Item {i}", keywords=keywords, tags=tags, categories=categories)


@pytest.mark.parametrize("raw, want", [
    ("  Toy comes to  Life!", "toy comes to life"), ("'heist'", "heist"),
    ("Sci-Fi", "sci-fi"), ("...", ""), ("BASED ON NOVEL", "based on novel"),
])
def test_normalise(raw: str, want: str) -> None:
    assert normalise(raw) == want


def test_descriptors_are_keywords_then_tags_without_categories() -> None:
    it = item("1", keywords=("Heist", "bank robbery", "heist "), tags=("Al Pacino", "crime",
                                                                       "BANK ROBBERY"),
              categories=("Crime",))
    assert descriptors(it) == ("heist", "bank robbery", "al pacino")
    assert descriptors(item("2")) == ()
    assert descriptors(item("3", tags=("x" * 61,))) == ()  # a sentence, not a descriptor


def test_variants() -> None:
    assert {"zombie", "zombies"} <= set(variants("zombies"))
    assert "story" in variants("stories") and "stories" in variants("story")
    assert "boxes" in variants("box")


def test_index_postings_df_and_lookups() -> None:
    index = DescriptorIndex.from_items([
        item("a", keywords=("zombie", "twist ending")),
        item("b", keywords=("zombie apocalypse", "Zombie")),
        item("c", tags=("Nazi zombies", "plot twist")),
        item("d"),
    ])
    assert index.items("Zombie") == ("a", "b") and index.df("zombie") == 2
    assert index.n_items == 4 and index.items_with_descriptors == 3
    assert index.of("c") == ("nazi zombies", "plot twist") and index.of("d") == ()
    assert "Twist Ending" in index and "nothing" not in index
    assert index.idf("twist ending") > index.idf("zombie") > 0
    assert index.vocabulary(min_df=2) == ["zombie"]
    # what the chat will ask: a word as typed onto the catalog's descriptors
    assert index.find("Zombies") == ["zombie"]
    assert index.find("twist-ending") == ["twist ending"]
    assert index.find("!!") == []
    assert index.containing("zombies") == ["zombie", "nazi zombies", "zombie apocalypse"]
    assert index.containing("twist", limit=1) == ["plot twist"]


def test_catalog_without_descriptors() -> None:
    index = DescriptorIndex.from_items([item("a"), item("b", categories=("Drama",))])
    assert len(index) == 0 and index.find("zombie") == [] and index.vocabulary() == []
