"""One title normaliser for the whole house: MovieLens' year suffixes and trailing articles."""

from __future__ import annotations

import pytest

from tastelens.data.titles import (
    article_first,
    has_year,
    is_title,
    strip_year,
    title_key,
    title_key_set,
)


@pytest.mark.parametrize("text", ["Mummy, The (1999)", "The Mummy", "the  mummy.", "MUMMY",
                                  '"The Mummy"', "Mummy, The"])
def test_one_key_for_every_way_of_writing_a_title(text: str) -> None:
    assert title_key(text) == "mummy"


@pytest.mark.parametrize(("title", "key"), [
    ("Avventura, L' (1960)", "l' avventura"),  # only English articles are dropped up front
    ("Misérables, Les (1995)", "les misérables"),
    ("Death Note: Desu nôto (2006–2007)", "death note: desu nôto"),
    ("American President, The (1995)", "american president"),
    ("Seven (a.k.a. Se7en) (1995)", "seven (a.k.a. se7en)"),
    ("A Beautiful Mind (2001)", "beautiful mind"),
])
def test_title_keys_of_catalog_titles(title: str, key: str) -> None:
    assert title_key(title) == key


def test_years_and_articles() -> None:
    assert strip_year("Heat (1995)") == "Heat" and strip_year("Heat") == "Heat"
    assert strip_year("Babylon 5 (1994-1998)") == "Babylon 5"
    assert has_year("heat (1995)") and not has_year("1990s heat")
    assert article_first("Matrix, The") == "The Matrix" and article_first("Heat") == "Heat"


def test_is_title_accepts_a_subtitle() -> None:
    keys = title_key_set(["Mummy, The (1999)", "Heat (1995)", ""])
    assert keys == {"mummy", "heat"}
    assert is_title("The Mummy: Tomb of the Dragon Emperor", keys)
    assert is_title("heat (1995)", keys) and not is_title("heist thrillers", keys)


def test_title_forms_with_articles_and_subtitles_count_as_titles() -> None:
    keys = title_key_set(["Mummy, The (1999)", "Heat (1995)", "Jungle (2012)"])
    for label in ("The Mummy", "mummy, the", "Mummy, The (1999)", "The Mummy: Tomb of Ghosts",
                  "HEAT", "The Jungle: The King of the Jungle"):
        assert is_title(label, keys), label
    for label in ("Mummy movies with humour", "Heat-of-the-moment romance", "Jungle adventures"):
        assert not is_title(label, keys), label
