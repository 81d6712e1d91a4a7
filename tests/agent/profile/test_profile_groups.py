"""The grouped profile prompt: the mined groups are shown, the model names them, every label
is checked against its group's descriptors and replaced by the data label when it fails."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from tastelens.agent.profile.groups import select_groups
from tastelens.agent.profile.profiler import Profiler
from tastelens.config.pipeline import ProfilerConfig
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import PromptRenderer
from tastelens.prompts.tokens import CharEstimateCounter
from tastelens.schemas import Interest

from .test_mining import dataset

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)


def make_profiler(fake: FakeBackend, **config) -> Profiler:
    renderer = PromptRenderer(token_counter=CharEstimateCounter())
    return Profiler(fake, renderer, ProfilerConfig(**config), clock=lambda: NOW)


def labels_for(request, wanted: dict[str, str]) -> str:
    """A reply naming each shown group: ``wanted`` maps a descriptor to a label."""
    text = request.messages[1].content
    out = {}
    for line in text.split("<groups>")[1].split("</groups>")[0].splitlines():
        if not line.startswith("g"):
            continue
        short = line.split()[0]
        out[short] = next((v for k, v in wanted.items() if k in line), "pleasant evenings")
    return json.dumps({"labels": out, "summary": "Loves bank heists and space adventures.",
                       "explore_next": ["film noir"]})


def test_the_model_names_the_mined_groups_and_unsupported_labels_are_replaced() -> None:
    ds = dataset()
    fake = FakeBackend(responder=lambda r: labels_for(r, {
        "heist": "bank robberies", "space": "spaceship films", "christmas": "christmas films",
        "slapstick": "slapstick comedy"}))
    profile, diag = make_profiler(fake).profile(ds, "u")
    request = fake.received[0]
    shown = request.json_schema["properties"]["labels"]["required"]
    assert shown == [f"g{k}" for k in range(1, len(shown) + 1)] and len(shown) <= 10
    assert "<groups>" in request.messages[1].content and "Disliked:" in (
        request.messages[1].content)
    by_label = {i.label: i for i in profile.interests}
    assert "bank robberies" in by_label and by_label["bank robberies"].source == "llm"
    assert {"heist", "bank robbery"} & set(by_label["bank robberies"].descriptors)
    # "pleasant evenings" names nothing its group's descriptors say: the data label stays;
    # so does a second group given the same label
    assert "pleasant evenings" not in by_label
    assert diag.drop_reasons["label_unsupported"] >= 1
    assert diag.drop_reasons["duplicate_label"] >= 1
    assert diag.labels_checked == len(shown) and 0 < diag.labels_from_model < len(shown)
    assert diag.dropped_interests == 0 and not diag.fallback
    assert {i.granularity for i in profile.interests} >= {"keyword", "topic", "application"}
    assert all(i.evidence and i.descriptors for i in profile.interests)
    assert profile.summary == "Loves bank heists and space adventures."
    # the instructions' own example is never a label
    copied = json.loads(labels_for(request, {"heist": "bank heists"}))["labels"]
    fake2 = FakeBackend(responder=lambda r: json.dumps(
        {"labels": copied, "summary": "Loves heists, mostly.", "explore_next": []}))
    _, diag2 = make_profiler(fake2).profile(ds, "u")
    assert diag2.drop_reasons["copied_from_instructions"] >= 1
    assert profile.provenance.llm_used


def test_a_reply_that_cannot_be_read_leaves_every_data_label() -> None:
    ds = dataset()
    fake = FakeBackend().enqueue(["not json", "still not json"])
    profile, diag = make_profiler(fake).profile(ds, "u")
    assert diag.fallback and not profile.provenance.llm_used
    assert all(i.source == "data" for i in profile.interests)


def test_every_granularity_the_data_found_is_shown() -> None:
    likes = [Interest(label=f"k{n}", granularity="keyword", weight=1 - n / 20)
             for n in range(10)]
    likes += [Interest(label="t", granularity="topic", weight=0.1),
              Interest(label="a", granularity="application", weight=0.05)]
    dislikes = [Interest(label="d", granularity="keyword", weight=0.5, polarity="dislike",
                         descriptors=["d"]),
                Interest(label="Bad (1999)", granularity="keyword", weight=0.9,
                         polarity="dislike")]  # a low-rated title: not a group
    groups = select_groups(likes, dislikes, max_groups=4, max_dislike_groups=2)
    assert [g.interest.label for g in groups] == ["k0", "k1", "t", "a", "d"]
    assert [g.short for g in groups] == ["g1", "g2", "g3", "g4", "g5"]
