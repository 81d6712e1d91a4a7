"""A new visitor's taste read like a user's: films named with their feeling become the
session's history (liked) or its dislikes, nothing named comes back, greetings get widely
watched picks instead of a title search. Session tests run on the stand-in pipeline and on
the real RecommendPipeline (test_chat_support.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tastelens.agent.chat.catalog import CatalogVocabulary
from tastelens.agent.chat.intent import RuleParser
from tastelens.agent.chat.mentions import clause_sentiment, find_mentions
from tastelens.agent.chat.session import ChatSession
from tastelens.config.chat import ChatConfig

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)


@pytest.fixture(scope="module")
def dataset():
    return S.make_movie_dataset()


@pytest.fixture(scope="module")
def vocab(dataset) -> CatalogVocabulary:
    return CatalogVocabulary(dataset)


def ids(dataset, *prefixes: str) -> list[str]:
    return [next(i for i, it in dataset.items.items() if it.title.startswith(p))
            for p in prefixes]


# -- mentions --------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("I loved Heat (1995)", [("Heat", "liked")]),
    ("Like Heat (1996)", [("Heat", "liked")]),  # the year off by one, as people write it
    ("Heat (1995) was boring, but I adored Ronin (1998)", [("Heat", "disliked"),
                                                          ("Ronin", "liked")]),
    ("I haven't seen The Other Guys (2010)", [("Other Guys", "unseen")]),  # article moved
    ("Have you seen Airplane! (1980)?", [("Airplane", "neutral")]),
    ("not a fan of Scream (1996)", [("Scream", "disliked")]),
    ("Heat (1971)", []),  # no Heat near that year: not a title
    ("I liked the year (1995)", []),
])
def test_titles_with_a_year_and_their_feeling(dataset, vocab, text, expected) -> None:
    found = find_mentions(text, vocab)
    assert [(dataset.items[m.item].title, m.sentiment) for m in found] == [
        (next(it.title for it in dataset.items.values() if it.title.startswith(p)), s)
        for p, s in expected]


def test_clause_sentiment_reads_only_the_mentions_clause() -> None:
    text = "I hated Scream, but Heat was great"
    start = text.index("Heat")
    assert clause_sentiment(text, start, start + 4) == "liked"
    assert clause_sentiment(text, 8, 14) == "disliked"


def test_a_long_message_reads_a_bounded_number_of_mentions(vocab) -> None:
    text = " and ".join(["Heat (1995)"] * 100)
    assert len(find_mentions(text, vocab, max_mentions=5)) == 5


# -- the rules -------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["So what's up", "ya there", "what's up", "no", "hello!",
                                  "how are you today", "ok cool thanks"])
def test_smalltalk_never_becomes_a_query(vocab, text) -> None:
    intent = RuleParser(vocab).parse(text)
    assert intent.action == "smalltalk" and not intent.wishes and not intent.seed_items


def test_title_words_are_not_read_as_genres_or_wishes(dataset, vocab) -> None:
    intent = RuleParser(vocab).parse("I liked Shaun of the Dead (2004) and Scream (1996)")
    assert intent.liked_items == ids(dataset, "Shaun", "Scream")
    assert not intent.include_categories and not intent.wishes and intent.sure


def test_aversion_cues_name_disliked_titles_not_seeds(dataset, vocab) -> None:
    intent = RuleParser(vocab).parse("I hated Titanic")
    assert intent.disliked_items == ids(dataset, "Titanic") and not intent.seed_items
    assert intent.named_items == ids(dataset, "Titanic") and not intent.liked_items
    genre = RuleParser(vocab).parse("I don't like horror")
    assert genre.exclude_categories == ["Horror"] and not genre.disliked_items


def test_why_is_a_question_only_about_a_list(dataset, vocab) -> None:
    parser = RuleParser(vocab)
    assert parser.parse("not sure why, but I love comedies").action == "recommend"
    assert parser.parse("why the second one?", ids(dataset, "Heat", "Ronin")).action == \
        "explain"
    assert parser.parse("and why Ronin?", ids(dataset, "Heat", "Ronin")).action == "explain"


# -- the session -----------------------------------------------------------------------
@pytest.fixture(params=["stand-in", "real"])
def visitor(request, dataset, tmp_path) -> ChatSession:
    pipeline = (S.StandInPipeline(dataset) if request.param == "stand-in"
                else S.RecordedPipeline(dataset, tmp_path))
    return ChatSession(pipeline, dataset=dataset, user=None, config=ChatConfig(use_llm=False))


def test_named_films_become_the_visitors_history(dataset, visitor) -> None:
    visitor.respond("Hi! I loved Heat (1995)")
    turn = visitor.respond("and Ronin (1998) too, but Titanic (1997) was boring")
    call = visitor.pipeline.calls[-1]
    heat, ronin, titanic = ids(dataset, "Heat", "Ronin", "Titanic")
    assert call["user"] is None and call["history"] == [heat, ronin]
    assert [d.evidence for d in call["profile"].dislikes] == [[titanic]]
    assert titanic in call["constraints"].exclude_items
    shown = {r.item for r in turn.recommendations.items}
    assert turn.recommendations.items and not shown & {heat, ronin, titanic}
    assert "Heat (1995)" in turn.text  # it says what it read


def test_a_film_named_with_any_feeling_is_never_recommended_back(dataset, visitor) -> None:
    visitor.respond("I haven't seen Hot Fuzz (2007), any comedies?")
    for _ in range(3):
        turn = visitor.respond("more")
        assert ids(dataset, "Hot Fuzz")[0] not in {r.item for r in turn.recommendations.items}


def test_a_greeting_gets_labelled_popular_picks_once(visitor) -> None:
    first = visitor.respond("hello there")
    assert first.recommendations.items and "widely watched" in first.text
    assert first.report.kind == "smalltalk"
    again = visitor.respond("thanks")
    assert again.recommendations is None  # the list on screen stays the last one


def test_stated_genres_go_into_the_visitors_profile(visitor) -> None:
    visitor.respond("I'm looking for a comedy")
    profile = visitor.pipeline.calls[-1]["profile"]
    assert [c.category for c in profile.categories] == ["Comedy"]
    assert profile.long_term == {"Comedy": 1.0}


def test_liking_a_film_after_disliking_it_moves_it(dataset, visitor) -> None:
    visitor.respond("Heat (1995) was boring")
    visitor.respond("actually I loved Heat (1995)")
    assert visitor.liked == ids(dataset, "Heat") and not visitor.disliked


def test_observed_titles_count_as_shown(dataset, visitor) -> None:
    observed = visitor.observe("Have you seen Ronin (1998)? Or Heat (1995)?")
    assert observed.report.kind == "observed" and observed.recommendations is None
    assert visitor.offered == ids(dataset, "Ronin", "Heat") and not visitor.pipeline.calls
    turn = visitor.respond("I want an action movie")
    assert not {r.item for r in turn.recommendations.items} & set(visitor.offered)


def test_what_a_visitor_wants_to_avoid_pushes_away(visitor) -> None:
    visitor.respond("a comedy please, but nothing with zombies")
    profile = visitor.pipeline.calls[-1]["profile"]
    assert [(d.label, d.polarity) for d in profile.dislikes] == [("zombies", "dislike")]


@pytest.mark.parametrize("text, expected", [
    ("The Other Guys was great", [("Other Guys", "liked")]),  # no year: written as a title
    ("my kids love Beauty and the Beast", [("Beauty and the Beast", "liked")]),
    ("Point Break and Baby Driver", [("Point Break", "neutral"), ("Baby Driver", "neutral")]),
    ("the other guys was great", []),  # not written as a title: only after a cue
    ("Heat was great", []),  # one word: only after a cue ('like Heat')
])
def test_titles_without_a_year_written_as_titles(dataset, vocab, text, expected) -> None:
    from tastelens.agent.chat.intent import CONTENTLESS

    found = find_mentions(text, vocab, contentless=CONTENTLESS)
    assert [(m.title.split(" (")[0], m.sentiment) for m in found] == [
        (next(it.title for it in dataset.items.values() if it.title.startswith(p)).split(
            " (")[0], s) for p, s in expected]
