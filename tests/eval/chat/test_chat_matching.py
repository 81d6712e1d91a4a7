"""Titles as dialogues write them -> catalog items (the chat's own title keys)."""

from __future__ import annotations

import pytest

from tastelens.eval.chat.matching import MentionMatcher


@pytest.mark.parametrize(("text", "item", "how"), [
    ("The Matrix (1999)", "1", "exact"),            # MovieLens: "Matrix, The (1999)"
    ("Matrix, The (1999)", "1", "exact"),
    ("the matrix  (1999)", "1", "exact"),           # case and double spaces
    ("Heat  (1995)", "2", "exact"),
    ("The Heat (2013)", "3", "exact"),
    ("Heat (2013)", "3", "exact"),                  # the article left out
    ("Se7en (1995)", "4", "exact"),                 # "Seven (a.k.a. Se7en) (1995)"
    ("Seven (1995)", "4", "exact"),
    ("Heat (1996)", "2", "year-off-by-one"),        # the seeker's year is one off
    ("Toy Story (1994)", "5", "year-off-by-one"),
    ("Twin Film (2001)", None, "ambiguous"),        # 2000 and 2002: two films one year off
    ("Twin Film (2000)", "10", "exact"),
    ("Heat (1993)", None, "unmatched"),             # two years off
    ("Some Unknown Film (2017)", None, "unmatched"),
    ("Ronin", "7", "no-year"),                      # one catalog title has that key
    ("Heat", None, "ambiguous"),                    # two do
    ("Nothing Like It", None, "unmatched"),
    ("", None, "unmatched"),
])
def test_titles(catalog, text: str, item: str | None, how: str) -> None:  # noqa: ANN001
    match = MentionMatcher(catalog).match(text)
    assert (match.item, match.how) == (item, how)


def test_catalog_ids_count_only_where_the_format_allows_them(catalog) -> None:  # noqa: ANN001
    matcher = MentionMatcher(catalog)
    assert (matcher.match("7", ids=True).item, matcher.match("7", ids=True).how) == ("7", "id")
    assert matcher.match("7").item is None  # a ReDial id is no catalog id


def test_stats_count_titles_once_and_mentions_each_time(catalog) -> None:  # noqa: ANN001
    matcher = MentionMatcher(catalog)
    for text in ["Heat (1996)", "Heat (1996)", "The Matrix (1999)", "Nope (2001)"]:
        matcher.count_mention(matcher.match(text))
    stats = matcher.stats.as_dict()
    assert stats["titles"]["n"] == 3 and stats["titles"]["exact"] == 1
    assert stats["titles"]["year-off-by-one"] == 1 and stats["titles"]["unmatched"] == 1
    assert stats["titles"]["rate"] == round(2 / 3, 4)
    assert stats["mentions"]["n"] == 4 and stats["mentions"]["rate"] == 0.75
    assert stats["unmatched_examples"] == ["Nope (2001)"]
