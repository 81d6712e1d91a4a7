"""Profile-adapter examples for the grouped prompt: the serving prompt, one label per mined
group worded from its own descriptors, every target read back by the profiler unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastelens.agent.profile.grounding import is_supported
from tastelens.agent.profile.groups import GroupsReply
from tastelens.agent.profile.profiler import Profiler
from tastelens.config.pipeline import ProfilerConfig
from tastelens.config.settings import Settings
from tastelens.finetune.data_build import build_data
from tastelens.finetune.data_config import ProfileDataConfig
from tastelens.finetune.data_profile_groups import plural, worded
from tastelens.finetune.jsonl import read_jsonl
from tastelens.llm.base import ParseOutcome
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import PromptRenderer
from tastelens.schemas import Interaction, Interest

from .conftest import held_out_pairs


@pytest.fixture(scope="module")
def built(rich_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    config = ProfileDataConfig.model_validate({
        "seed": 5, "tokenizer": False, "profile": {
            "min_past": 4, "min_future": 2, "future_items": 4, "positions_per_user": 2}})
    result = build_data(config, Settings(cache_dir=root), dataset=rich_dataset,
                        out=root / "data")
    examples = read_jsonl(root / "data" / "train.jsonl") + read_jsonl(root / "data" /
                                                                       "eval.jsonl")
    return result, examples


def test_wording_uses_the_groups_own_words() -> None:
    rng = np.random.default_rng(0)
    topic = Interest(label="Crime: heist, vault", granularity="topic", weight=1.0,
                     descriptors=["heist", "vault"])
    labels = {worded(topic, rng) for _ in range(20)}
    assert labels == {"heist and vault crime films", "heist and vault"}
    contrast = Interest(label="Thriller: twist ending", granularity="sentiment", weight=1.0,
                        descriptors=["twist ending"])
    assert worded(contrast, rng) == "twist ending thrillers"
    assert plural("comedy") == "comedies" and plural("drama") == "dramas"
    for label in labels:
        assert is_supported(label, topic.descriptors, ["Crime"])


def test_targets_label_every_shown_group_and_pass_the_profilers_checks(built, rich_dataset):
    _, examples = built
    assert examples
    profiler = Profiler(FakeBackend(), PromptRenderer(), ProfilerConfig())
    granularities = set()
    for e in examples:
        assert e.meta["prompt"] == "groups" and "<groups>" in e.messages[-1].content
        reply = GroupsReply.model_validate_json(e.target)
        assert list(reply.labels) == [g["id"] for g in e.meta["groups"]]
        past = [Interaction(user=e.meta["user"], item=i, rating=r, timestamp=t)
                for i, r, t in _past(rich_dataset, e)]
        prepared = profiler.prepare(rich_dataset, e.meta["user"], past)
        assert [m.model_dump() for m in e.messages] == prepared.prompt.messages
        profile, diag = profiler.finish(prepared, ParseOutcome(value=reply, attempts=1))
        assert not diag.fallback and not diag.drop_reasons
        assert diag.labels_from_model == diag.labels_checked == len(reply.labels)
        granularities |= {g["granularity"] for g in e.meta["groups"]}
    assert {"keyword", "topic"} <= granularities


def test_no_validation_or_test_item_reaches_an_example(built, rich_dataset):
    _, examples = built
    held = held_out_pairs(rich_dataset)
    for e in examples:
        named = set(e.meta["shown"]) | set(e.meta["future"])
        assert not named & held.get(e.meta["user"], set())
        assert json.loads(e.target)["labels"]


def _past(dataset, example):
    """The user's first ``n_past`` training events, as the builder split them."""
    events = dataset.user_events(example.meta["user"])
    rows = events.iloc[: example.meta["n_past"]]
    return [(r.item, float(r.rating), int(r.timestamp)) for r in rows.itertuples()]
