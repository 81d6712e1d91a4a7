"""A message's work and a session's memory are bounded (ChatConfig.max_*): fuzzy title
look-ups, words read and seeds per message; stated likes and shown items per session.
(bench/chat_amplification.py measures the CPU a worst-case message costs on ml-latest-small;
tests/api/test_api_security.py checks it over a real `tastelens api` process.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tastelens.agent.chat.catalog import CatalogVocabulary
from tastelens.agent.chat.intent import RuleParser
from tastelens.agent.chat.session import ChatSession
from tastelens.config.chat import ChatConfig

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)


@pytest.fixture(scope="module")
def dataset():  # noqa: ANN201
    return S.make_movie_dataset()


class CountingVocabulary(CatalogVocabulary):
    """The real vocabulary, counting its fuzzy (difflib) look-ups."""

    fuzzy = 0

    def match_title(self, text: str, *, cutoff: float) -> str | None:
        self.fuzzy += 1
        return super().match_title(text, cutoff=cutoff)


def test_fuzzy_title_lookups_per_message_are_capped(dataset) -> None:  # noqa: ANN001
    vocab = CountingVocabulary(dataset)
    parser = RuleParser(vocab)
    assert parser.parse("something like toy stroy").seed_titles == ["Toy Story (1995)"]
    assert vocab.fuzzy == 1
    vocab.fuzzy = 0
    attack = " ".join(f"like qz{i:03d} and" for i in range(266))  # the probe's message
    parser.parse(attack)
    assert vocab.fuzzy == ChatConfig().max_fuzzy_titles == 2
    vocab.fuzzy = 0
    # past the cap a phrase must name a title exactly: the exact ones still count
    intent = parser.parse("like qzaa and like qzbb and like qzcc and like Heat")
    assert vocab.fuzzy == 2 and intent.seed_titles == ["Heat (1995)"]
    none = RuleParser(vocab, config=ChatConfig(max_fuzzy_titles=0))
    vocab.fuzzy = 0
    assert none.parse("like toy stroy").seed_items == [] and vocab.fuzzy == 0


def test_words_and_seeds_per_message_are_capped(dataset) -> None:  # noqa: ANN001
    parser = RuleParser(CatalogVocabulary(dataset), config=ChatConfig(max_message_tokens=12,
                                                                      max_seeds=2))
    many = parser.parse("like Heat and Ronin and Titanic and Frozen and Superbad")
    assert many.seed_titles == ["Heat (1995)", "Ronin (1998)"]
    late = parser.parse("something " * 20 + "no horror")  # past the words read
    assert late.exclude_categories == []
    assert parser.parse("no horror").exclude_categories == ["Horror"]


def test_a_sessions_likes_and_shown_items_are_capped(dataset) -> None:  # noqa: ANN001
    config = ChatConfig(max_likes=3, max_like_chars=20, max_shown=6, k=4)
    chat = ChatSession(S.StandInPipeline(dataset), dataset=dataset, user=None, config=config)
    for words in ("heists", "car chases", "zombies", "disney princesses", "heist " * 10):
        chat.respond(f"I love {words}")
    assert chat.likes == ["zombies", "disney princesses", ("heist " * 10)[:20]]
    assert len(chat.profile().interests) == 3
    chat.respond("something like Heat")
    for _ in range(4):
        chat.respond("more")
    excluded = [len(c["constraints"].exclude_items) for c in chat.pipeline.calls[-4:]]
    # "more" leaves out the newest shown, and Heat, named, is never recommended back
    assert len(chat.shown) == 6 and excluded == [5, 7, 7, 7]
