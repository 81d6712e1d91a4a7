"""The user's edits applied to a profile, and honoured by the real pipeline (retriever,
explainer, profile store) on a small themed catalog: after removing an interest the next
list no longer follows it, a disliked genre leaves the list, a pinned interest is asked
even past the query cut, and the edits survive a rebuilt profile."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tastelens.agent.jobs.profile_job import profile_key
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.profile.overrides import apply_overrides, override_constraints
from tastelens.agent.recommendation import Constraints
from tastelens.config.settings import ChromaSettings, EmbedderSettings, LLMSettings, Settings
from tastelens.errors import InvalidRequestError, UnknownIdError
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.profile_store import OverridesConflictError, ProfileStore
from tastelens.schemas import CategoryPreference, Interest, InterestProfile
from tastelens.taste import TasteEdit, TasteOverrides
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ...webdata import make_web_dataset


def profile() -> InterestProfile:
    return InterestProfile(
        user="1", created_at=datetime.now(timezone.utc), history_hash="h", n_items=3,
        interests=[Interest(label="heist", granularity="keyword", weight=1.0),
                   Interest(label="space", granularity="keyword", weight=0.8),
                   Interest(label="1990s Comedy", granularity="topic", weight=0.3)],
        dislikes=[Interest(label="Bad (1999)", granularity="keyword", weight=0.9,
                           polarity="dislike")],
        categories=[CategoryPreference(category="Horror", weight=0.6, count=3),
                    CategoryPreference(category="Comedy", weight=0.4, count=2)],
        explore_next=["heist", "Horror", "Romance"])


def test_apply_overrides() -> None:
    gone = Interest(label="courtroom", granularity="keyword", weight=0.4, evidence=["9"])
    edits = TasteOverrides(user="1", removed=["HEIST"],
                           pinned=[Interest(label="1990s comedy", granularity="topic",
                                            weight=0.3), gone],
                           dislikes=["Horror", "slow dramas"])
    edited = apply_overrides(profile(), edits, ["Comedy", "Horror", "Romance"])
    assert [(i.label, i.weight, i.pinned) for i in edited.interests] == [
        ("1990s Comedy", 1.0, True), ("courtroom", 1.0, True), ("space", 0.8, False)]
    assert edited.interests[1].evidence == ["9"]  # gone from the profile: its snapshot
    assert [(d.label, d.source) for d in edited.dislikes] == [
        ("Bad (1999)", "llm"), ("Horror", "user"), ("slow dramas", "user")]
    assert [c.category for c in edited.categories] == ["Comedy"]
    assert edited.explore_next == ["Romance"]
    assert profile().interests[0].label == "heist"  # the computed profile is untouched
    same = profile()
    assert apply_overrides(same, TasteOverrides(user="1")) is same


def test_disliked_categories_are_excluded_unless_asked_for() -> None:
    edits = TasteOverrides(user="1", dislikes=["Horror", "Comedy", "slow dramas"])
    cats = ["Comedy", "Horror"]
    assert override_constraints(Constraints(), edits, cats).exclude_categories == [
        "Horror", "Comedy"]
    asked = override_constraints(Constraints(include_categories=["Horror"]), edits, cats)
    assert asked.exclude_categories == ["Comedy"]
    none = TasteOverrides(user="1", dislikes=["slow dramas"])
    assert override_constraints(Constraints(), none, cats) == Constraints()


def down(request):  # noqa: ANN001, ANN201 - FakeBackend responder: no LLM server
    raise LLMUnavailableError("no LLM server")


@pytest.fixture
def pipeline(tmp_path) -> RecommendPipeline:  # noqa: ANN001
    dataset = make_web_dataset()
    settings = Settings(cache_dir=tmp_path, chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        llm=LLMSettings(backend="fake"),
                        recommend={"profile_source": "store", "on_missing_profile": "facts",
                                   "k": 8, "rerank": {"mode": "none"},
                                   "retriever": {"n_candidates": 12},
                                   "collaborative": {"enabled": False}})
    ItemIndex.for_dataset(settings, dataset.name, HashingEncoder()).build(
        dataset.items.values(), progress=False)
    with RecommendPipeline.from_settings(settings, dataset, llm=FakeBackend(responder=down),
                                         config=settings.recommend) as built:
        yield built


def named(result, label: str) -> list[str]:  # noqa: ANN001
    return [r.item for r in result.items if label in r.explanation.interests]


def test_removing_an_interest_changes_the_next_list(pipeline: RecommendPipeline) -> None:
    before = pipeline.recommend("1")
    assert named(before, "heist")  # the list follows the interest ...
    assert pipeline.store is None  # no profile build ran: the first edit creates the store
    pipeline.edit_taste("1", TasteEdit(action="remove", label="heist"))
    after = pipeline.recommend("1")
    assert not named(after, "heist")  # ... and no longer does
    assert [r.item for r in after.items] != [r.item for r in before.items]
    assert "heist" not in [i.label for i in pipeline.profile_for("1").interests]
    assert "heist" in [i.label for i in pipeline.profile_for("1", edited=False).interests]
    # an evaluation's explicit history is not the live user's: no edits apply
    history = pipeline.dataset.history("1")
    assert named(pipeline.recommend("1", history=history), "heist")


def test_a_disliked_genre_leaves_the_list(pipeline: RecommendPipeline) -> None:
    assert any("Thriller" in r.categories for r in pipeline.recommend("1").items)
    pipeline.edit_taste("1", TasteEdit(action="dislike", label="thriller"))
    result = pipeline.recommend("1")
    assert result.items and not any("Thriller" in r.categories for r in result.items)
    assert "Thriller" in result.constraints.exclude_categories  # said in the report
    asked = pipeline.recommend("1", constraints=Constraints(include_categories=["Thriller"]))
    assert asked.items and all("Thriller" in r.categories for r in asked.items)


def test_a_pinned_interest_is_asked_past_the_cut(pipeline: RecommendPipeline) -> None:
    def asked() -> list[str]:
        plan = pipeline.retriever.planner.plan(pipeline.profile_for("1"),
                                               pipeline.dataset.history("1"), Constraints(), 10)
        return [q.label for q in plan.queries]

    weakest = min(pipeline.profile_for("1").interests, key=lambda i: i.weight).label
    pipeline.retriever.config.max_interest_queries = 1
    assert weakest not in asked()
    pipeline.edit_taste("1", TasteEdit(action="pin", label=weakest))
    edited = pipeline.profile_for("1")
    assert edited.interests[0].label == weakest and edited.interests[0].pinned
    assert edited.interests[0].weight == 1.0
    assert asked()[0] == weakest


def test_edits_survive_a_rebuilt_profile(pipeline: RecommendPipeline) -> None:
    built = pipeline.profile_for("1", edited=False)
    pinned = next(i.label for i in built.interests if i.label != "heist")
    pipeline.edit_taste("1", TasteEdit(action="remove", label="heist"))
    pipeline.edit_taste("1", TasteEdit(action="pin", label=pinned))
    rebuilt = built.model_copy(update={"interests": [
        i for i in built.interests if i.label != pinned]})  # the new build lacks it
    with ProfileStore(pipeline.store_path) as store:
        store.put(profile_key(pipeline.profiler, pipeline.dataset, "1"),
                  rebuilt.model_dump_json())
    edited = pipeline.profile_for("1")
    labels = [i.label for i in edited.interests]
    assert "heist" not in labels and labels[0] == pinned  # back from its snapshot
    assert pipeline.overrides_for("1").version == 2


def test_edit_errors(pipeline: RecommendPipeline) -> None:
    with pytest.raises(UnknownIdError, match="'nobody'"):
        pipeline.edit_taste("nobody", TasteEdit(action="dislike", label="x"))
    with pytest.raises(InvalidRequestError, match="'zzz' is not one of the user's interests"):
        pipeline.edit_taste("1", TasteEdit(action="remove", label="zzz"))
    pipeline.edit_taste("1", TasteEdit(action="dislike", label="x"))
    with pytest.raises(OverridesConflictError):
        pipeline.edit_taste("1", TasteEdit(action="dislike", label="y", expected_version=0))
    assert pipeline.overrides_for("1").dislikes == ["x"]
