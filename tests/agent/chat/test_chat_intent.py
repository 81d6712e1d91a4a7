"""The chat's rule parser and the conservative merge of the LLM's reading."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tastelens.agent.chat.catalog import CatalogVocabulary, title_keys, vocabulary_for
from tastelens.agent.chat.intent import ChatIntent, RuleParser
from tastelens.agent.chat.reader import IntentReader, IntentReply, merge_intents
from tastelens.llm.base import ChatFailure
from tastelens.llm.fake import FakeBackend

# Test files are not importable by name (--import-mode=importlib): load the support by path.
_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)


@pytest.fixture(scope="module")
def vocab() -> CatalogVocabulary:
    return vocabulary_for(S.make_movie_dataset())


@pytest.fixture(scope="module")
def parser(vocab) -> RuleParser:
    return RuleParser(vocab)


def ids(vocab, *prefixes: str) -> list[str]:
    items = vocab.dataset.items.values()
    return [next(it.id for it in items if it.title.startswith(p)) for p in prefixes]


def test_title_keys_move_articles_and_strip_years() -> None:
    assert title_keys("Matrix, The (1999)") == (["the matrix"], ["matrix"])
    primary, _ = title_keys("Seven (a.k.a. Se7en) (1995)")
    assert primary == ["seven", "se7en"]


def test_like_heat_but_funnier(parser, vocab) -> None:
    intent = parser.parse("something like Heat but funnier")
    assert intent.action == "recommend"
    assert intent.seed_items == ids(vocab, "Heat")
    assert intent.include_categories == ["Comedy"] and intent.exclude_categories == []
    assert intent.wishes == []  # "funnier" says Comedy; no item is described by the word


def test_only_words_the_catalog_describes_items_by_become_wishes(parser) -> None:
    assert parser.parse("something with a car chase").wishes == ["car chase"]
    assert parser.parse("Heat but with zombies").wishes == ["zombies"]
    # chatter holds no described word: nothing to search for, whatever titles contain
    assert parser.parse("I heard the northeast got slammed").action == "smalltalk"
    assert parser.parse("movies about a pub").wishes == []  # one item only: too specific
    # free text keeps only its described words, never the chatter around them
    assert parser.parse("omg I heard it has a car chase lol").wishes == ["car chase"]


def test_described_words_in_a_negative_clause_are_avoided(parser) -> None:
    intent = parser.parse("a comedy, but nothing with zombies")
    assert intent.avoid == ["zombies"] and intent.wishes == []
    assert intent.include_categories == ["Comedy"]
    bored = parser.parse("I like thrillers, but rom coms are pretty disgusting")
    assert bored.include_categories == ["Thriller"] and bored.exclude_categories == ["Romance"]


@pytest.mark.parametrize("message, excluded, included", [
    ("no horror", ["Horror"], []),
    ("nothing scary please", ["Horror"], []),
    ("without horror or thrillers", ["Horror", "Thriller"], []),
    ("not too scary, but romantic", ["Horror"], ["Romance"]),
    ("I hate horror, give me a comedy", ["Horror"], ["Comedy"]),
])
def test_negation_scope(parser, message, excluded, included) -> None:
    intent = parser.parse(message)
    assert intent.exclude_categories == excluded
    assert intent.include_categories == included


def test_years_and_recency(parser) -> None:
    assert parser.parse("more recent ones").recency == "newer"
    assert parser.parse("older ones please").recency == "older"
    nineties = parser.parse("I love 90s Disney musicals")
    assert (nineties.year_min, nineties.year_max) == (1990, 1999)
    assert nineties.include_categories == ["Musical"]
    assert nineties.likes == ["90s Disney musicals"]  # as written: it becomes a label
    before = parser.parse("something scary from before 1990")
    assert (before.year_min, before.year_max) == (None, 1989)
    assert parser.parse("comedies since 2005").year_min == 2005


@pytest.mark.parametrize("message, rank", [
    ("why this one?", 1), ("why the second one?", 2), ("why did you pick the 3rd?", 3),
    ("explain number 4", 4), ("why the last one?", -1),
])
def test_explain_ordinals(parser, message, rank) -> None:
    intent = parser.parse(message, ["1", "2", "3", "4"])
    assert intent.action == "explain" and intent.about_rank == rank


def test_explain_by_title_prefers_the_last_list(parser, vocab) -> None:
    toy = ids(vocab, "Toy Story")[0]
    assert parser.parse("why Toy Story?", ["5", toy]).about_item == toy
    assert parser.parse("why Toy Story?", ["5"]).about_item == toy  # named, not in the list


def test_titles_fuzzy_multiple_and_stopwords(parser, vocab) -> None:
    assert parser.parse("movies similar to Toy Stroy").seed_items == ids(vocab, "Toy Story")
    assert parser.parse("like Ronin and Heat, no horror").seed_items == ids(
        vocab, "Ronin", "Heat")
    assert parser.parse("like the other guys").seed_items == ids(vocab, "Other Guys")
    assert parser.parse("something like it").seed_items == []
    assert parser.parse("I'd like something scary").seed_items == []  # a verb, not "similar"
    assert parser.parse("Heat").seed_items == ids(vocab, "Heat")


@pytest.mark.parametrize("message, action", [
    ("reset", "reset"), ("start over", "reset"), ("show me more", "more"), ("more", "more"),
    ("hi there", "smalltalk"), ("thanks!", "smalltalk"), ("", "smalltalk"),
    ("heist movies with a twist", "recommend"),
])
def test_actions(parser, message, action) -> None:
    assert parser.parse(message).action == action


def test_free_text_becomes_a_wish(parser) -> None:
    intent = parser.parse("heist movies with a twist")
    assert intent.include_categories == ["Crime"] and "heist" in intent.wishes
    assert "twist" in intent.wishes


# -- the LLM reading ---------------------------------------------------------------------
def reply(**fields) -> str:
    return json.dumps({"action": "recommend", **fields})


def test_reader_sends_guided_json_with_catalog_genres(vocab) -> None:
    llm = FakeBackend([reply(seed_titles=["Heat"])])
    got = IntentReader(llm, vocab).read("like Heat", ["Ronin (1998)"])
    assert got.model_dump() == IntentReply(action="recommend", seed_titles=["Heat"]).model_dump()
    request = llm.received[0]
    genres = request.json_schema["properties"]["include_genres"]["items"]
    assert genres["enum"] == vocab.categories  # guided decoding: only catalog genres
    assert "Comedy" in request.messages[0].content
    assert '"Ronin (1998)"' in request.messages[1].content


def test_reader_gives_none_after_an_invalid_retry(vocab) -> None:
    llm = FakeBackend(["no json", ChatFailure(kind="timeout", message="slow")])
    assert IntentReader(llm, vocab).read("hello", []) is None
    assert llm.stats.invalid_after_retry == 1


def test_merge_rules_win_on_hard_constraints(parser, vocab) -> None:
    message = "something like Heat but funnier"
    rules = parser.parse(message)
    llm = IntentReply(action="smalltalk", seed_titles=["The Godfather"],
                      include_genres=["Horror", "Comedy"],
                      wishes=["with explosions", "Heat but funnier"])
    merged = merge_intents(rules, llm, vocab, message)
    assert merged.action == "recommend"  # rules saw a request
    assert merged.seed_items == ids(vocab, "Heat")  # Godfather is not in the message
    assert merged.include_categories == ["Comedy"] and merged.exclude_categories == []
    assert merged.recency is None
    assert merged.wishes == []  # the message named a genre: the LLM's are dropped;
    # "with explosions" was never said; "Heat but funnier" repeats the seed's title
    assert merged.source == "rules+llm" and merged.llm == "ok" and merged.llm_dropped == 6
    # what the rules alone decide (reset, why, exclusions, years) the reply cannot even say
    assert set(IntentReply.model_fields) == {"action", "seed_titles", "include_genres",
                                             "wishes"}


def test_merge_llm_genre_is_a_soft_wish_when_rules_saw_none(parser, vocab) -> None:
    message = "something to cry over on a rainy night"
    rules = parser.parse(message)  # no genre word, no described word: a bare request
    assert rules.include_categories == [] and rules.wishes == []
    assert rules.action == "recommend" and not rules.sure  # a list from what is known
    merged = merge_intents(rules, IntentReply(action="recommend", include_genres=["Drama"],
                                              wishes=["rainy night", "sad robots"]),
                           vocab, message)
    assert merged.action == "recommend"  # the model read a request where the rules did not
    assert merged.include_categories == []  # never a filter
    assert "Drama" in merged.wishes and "rainy night" in merged.wishes
    assert "sad robots" not in merged.wishes and merged.llm_dropped == 1
    listed = merge_intents(rules, IntentReply(action="recommend",
                                              include_genres=vocab.categories[:2]),
                           vocab, message)
    assert listed.wishes == rules.wishes and listed.llm_dropped == 2


def test_merge_llm_decides_only_when_rules_found_nothing(parser, vocab) -> None:
    message = "what else have you got"
    rules = parser.parse(message)
    assert rules.action == "smalltalk"  # no cue, no constraint, no content word
    merged = merge_intents(rules, IntentReply(action="more"), vocab, message)
    assert merged.action == "more" and merged.wishes == []
    unknown = merge_intents(ChatIntent(action="smalltalk"),
                            IntentReply(action="recommend", include_genres=["Cooking"]),
                            vocab, "cooking shows")
    assert unknown.action == "recommend" and unknown.wishes == [] and unknown.llm_dropped == 1


def test_merge_adds_nothing_to_an_explain_turn(parser, vocab) -> None:
    message = "why the second one?"
    rules = parser.parse(message, ["1", "2"])
    merged = merge_intents(rules, IntentReply(action="recommend", include_genres=["Comedy"],
                                              wishes=["second one"]), vocab, message)
    assert merged.action == "explain" and merged.about_rank == 2
    assert merged.wishes == [] and merged.include_categories == [] and merged.llm_dropped == 3
