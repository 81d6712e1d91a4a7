"""Profile-adapter data: targets valid by the profiler's own rules, grounded, no leakage."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

from tastelens.agent.profile.profiler import Profiler
from tastelens.config.pipeline import ProfilerConfig
from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.finetune import profile_labels as words
from tastelens.finetune.data_build import build_data
from tastelens.finetune.data_config import ProfileDataConfig
from tastelens.finetune.jsonl import read_jsonl
from tastelens.llm.base import ParseOutcome
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import PromptRenderer, json_data
from tastelens.schemas import ProfileReply

from .conftest import held_out_pairs, read_files, training_events

PROFILE = {"min_past": 4, "min_future": 2, "future_items": 4, "positions_per_user": 2,
           "prompt": "history"}  # the earlier prompt's builder (test_data_profile_groups.py)


def config(**overrides) -> ProfileDataConfig:
    raw = {"seed": 5, "tokenizer": False, "profile": {**PROFILE, **overrides.pop("profile", {})}}
    return ProfileDataConfig.model_validate({**raw, **overrides})


@pytest.fixture(scope="module")
def built(rich_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    result = build_data(config(), Settings(cache_dir=root), dataset=rich_dataset,
                        out=root / "data")
    examples = read_jsonl(root / "data" / "train.jsonl") + read_jsonl(root / "data" /
                                                                       "eval.jsonl")
    return result, examples


def past_of(dataset, example):
    return training_events(dataset, example.meta["user"])[: example.meta["position"]]


def test_counts_and_card(built):
    result, examples = built
    card = json.loads((result.out_dir / "card.json").read_text())
    assert len(examples) >= 40
    assert card["counts"]["train_examples"] + card["counts"]["eval_examples"] == len(examples)
    assert card["target_source"].startswith("data:")
    kinds = card["extra"]["interest_kinds"]
    assert kinds.get("tag", 0) > 0 and kinds.get("pair", 0) + kinds.get("dpair", 0) > 0
    assert set(card["extra"]["granularities"]) >= {"keyword", "topic", "sentiment"}
    assert 0 < card["extra"]["mean_future_coverage"] <= 1


def test_prompt_is_the_profilers_and_targets_pass_its_validation(built, rich_dataset):
    _, examples = built
    profiler = Profiler(FakeBackend(), PromptRenderer(), ProfilerConfig(prompt="history"))
    for e in examples:
        prepared = profiler.prepare(rich_dataset, e.meta["user"], past_of(rich_dataset, e))
        assert [m.model_dump() for m in e.messages] == prepared.prompt.messages
        reply = ProfileReply.model_validate_json(e.target)
        profile, diag = profiler.finish(prepared, ParseOutcome(value=reply, attempts=1))
        assert not diag.fallback and not diag.drop_reasons and not diag.summary_replaced
        assert len(profile.interests) == len(reply.likes)
        shown = set(re.findall(r"^(h\d+) ", e.messages[-1].content, flags=re.M))
        for _polarity, interest in reply.interests():
            assert set(interest.evidence) <= shown
        # the target is what guided decoding lets the model write for this user
        assert not list(Draft202012Validator(prepared.request.json_schema).iter_errors(
            json.loads(e.target)))


def test_labels_are_specific_and_grounded(built, rich_dataset):
    _, examples = built
    genres = {c.casefold() for it in rich_dataset.items.values() for c in it.categories}
    titles = {it.title.casefold() for it in rich_dataset.items.values()}
    dislikes = 0
    for e in examples:
        reply = ProfileReply.model_validate_json(e.target)
        prepared_ratings = {x.item: x.rating for x in past_of(rich_dataset, e)}
        short = dict(re.findall(r"^(h\d+) (\"[^\"]+\")", e.messages[-1].content, flags=re.M))
        by_title = {json_data(rich_dataset.item(i).title): i for i in prepared_ratings}
        for polarity, interest in reply.interests():
            label = interest.label.casefold()
            assert label not in genres and label not in titles and "netflix" not in label
            ratings = [prepared_ratings[by_title[short[h]]] for h in interest.evidence]
            if polarity == "like":
                assert min(ratings) >= 4.0, (e.id, interest)
            else:
                dislikes += 1
                assert max(ratings) <= 2.0, (e.id, interest)
        covered = [i for i in e.meta["interests"] if i["coverage"] >= 1]
        assert covered, e.id
        assert 20 <= len(reply.summary) <= 140
    assert dislikes > 0


def test_no_validation_or_test_pair_leaks(built, rich_dataset):
    _, examples = built
    held = held_out_pairs(rich_dataset)
    for e in examples:
        user = e.meta["user"]
        assert not held[user] & (set(e.meta["shown"]) | set(e.meta["future"]))
        text = "\n".join(m.content for m in e.messages) + e.target
        for item in held[user]:
            assert json_data(rich_dataset.item(item).title) not in text, (e.id, item)


def test_deterministic_with_a_seed(rich_dataset, tmp_path):
    settings = Settings(cache_dir=tmp_path)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        build_data(config(seed=seed), settings, dataset=rich_dataset, out=tmp_path / name)
    a, b, c = (read_files(tmp_path / n) for n in "abc")
    assert a["train.jsonl"] == b["train.jsonl"] and a["eval.jsonl"] == b["eval.jsonl"]
    assert a["train.jsonl"] != c["train.jsonl"]


def test_no_example_at_all_is_an_error_and_writes_nothing(rich_dataset, tmp_path):
    with pytest.raises(ConfigError, match="no profile training examples"):
        build_data(config(profile={"min_coverage": 50}), Settings(cache_dir=tmp_path),
                   dataset=rich_dataset, out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("pair", "label"), [
    (("Crime", "Thriller"), "crime thrillers"), (("Comedy", "Romance"), "romantic comedies"),
    (("Animation", "Children"), "animated family films"),
    (("Horror", "Thriller"), "horror thrillers")])
def test_pair_labels(pair, label):
    assert words.pair_label(*pair) == label == words.pair_label(*reversed(pair))


def test_tag_words_and_series():
    genres = frozenset({"comedy", "sci-fi"})
    assert not words.usable_tag("In Netflix queue", genres)
    assert not words.usable_tag("Sci-Fi", genres) and words.usable_tag("time travel", genres)
    assert words.tag_label("pixar", [("Animation",), ("Animation", "Comedy")]) == (
        "Pixar animation", "keyword")
    assert words.tag_label("atmospheric", [("Thriller",), ("Horror", "Thriller")]) == (
        "atmospheric thrillers", "sentiment")
    assert words.decade_label(1990, ["Crime", "Thriller"]) == "1990s crime thrillers"
    series = words.franchises({"1": "Toy Story (1995)", "2": "Toy Story 2 (1999)",
                               "3": "Heat (1995)", "4": "Godfather, The (1972)",
                               "5": "Godfather: Part II, The (1974)"})
    assert series == {"1": "Toy Story", "2": "Toy Story", "4": "Godfather", "5": "Godfather"}
