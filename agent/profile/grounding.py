"""Is an interest's label supported by its descriptors? Is it finer than a category?

A label is *supported* when every content word in it — words left after dropping filler
("films", "stories", "with", "and" …) — is a word of the interest's descriptors, of the
categories of its evidence items, or a decade of their years ("1990s", "90s"), up to a simple
plural ("heists" for "heist"). Labels the miner writes are built from those words, so they
always pass; a model's label passes when it names what the group is about ("bank heists" for
descriptors "heist", "bank robbery") and fails when it invents ("spy thrillers" for a group
of heist films). A label with no content word at all is not supported.

A label is *coarse* when its content words are only catalog category names and decades
("1990s Drama", "Action / Adventure"): the specificity measure counts the other ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tastelens.data.descriptors import variants, words

# Labels that say nothing about a person; catalog category names are added per dataset.
GENERIC_LABELS = frozenset({
    "movie", "movies", "film", "films", "cinema", "tv", "shows", "entertainment", "fun",
    "good movies", "great movies", "popular movies", "classics", "various", "all genres",
    "everything", "genre", "genres", "interest", "interests", "label", "topic", "keyword",
    # the prompt's own headings, which small models copy
    "favourite genres", "favorite genres", "recent trend", "rated items", "liked items",
})


def is_generic(label: str, catalog_categories: Iterable[str] = ()) -> bool:
    """A label (or descriptor) that says nothing about a person: a generic word ("fun",
    "movies"), a catalog category, a bare decade or year, or fewer than 3 letters."""
    folded = label.casefold().strip(" .,:;!-\"'")
    return (folded in GENERIC_LABELS or folded in {c.casefold() for c in catalog_categories}
            or sum(ch.isalpha() for ch in folded) < 3 or bool(_BARE_DECADE.match(folded)))


FILLER = frozenset("""a an the and or of with in on at to for from by about into like as
its their his her set based film films movie movies cinema story stories tale tales show
shows series classic classics genre genres theme themes type types style styles kind
fan fans lover lovers favourite favorite loving love loves interest interests era
modern old new good great best sort""".split())
"""Words a label may use freely: they say nothing about which items it means."""
_DECADE = re.compile(r"^(?:1[89]|20)?\d0s$")
_BARE_DECADE = re.compile(r"^'?(?:1[89]|20)?\d0'?s$|^\d{4}$")


def content_words(label: str) -> list[str]:
    """The label's words that must be supported (filler removed, order kept)."""
    return [w for w in words(label) if w not in FILLER]


def decade_words(years: Iterable[int]) -> set[str]:
    """'1990s' and '90s' for 1994."""
    out: set[str] = set()
    for year in years:
        decade = year // 10 * 10
        out |= {f"{decade}s", f"{decade % 100:02d}s"}
    return out


def support_vocabulary(descriptors: Iterable[str], categories: Iterable[str] = (),
                       years: Iterable[int] = ()) -> set[str]:
    vocabulary = {w for d in descriptors for w in words(d)}
    vocabulary |= {w for c in categories for w in words(c)}
    return vocabulary | decade_words(years)


def is_supported(label: str, descriptors: Sequence[str], categories: Iterable[str] = (),
                 years: Iterable[int] = ()) -> bool:
    """Whether every content word of ``label`` is backed (see the module docstring)."""
    needed = content_words(label)
    if not needed:
        return False
    vocabulary = support_vocabulary(descriptors, categories, years)
    return all(any(v in vocabulary for v in variants(w)) for w in needed)


def is_coarse(label: str, catalog_categories: Iterable[str]) -> bool:
    """Whether ``label`` says no more than categories and decades ("1990s Drama")."""
    category_words = {w for c in catalog_categories for w in words(c)}
    needed = content_words(label)
    return all(_DECADE.match(w) or any(v in category_words for v in variants(w))
               for w in needed)
