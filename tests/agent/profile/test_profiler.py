"""Profiler with the scripted FakeBackend on tiny_dataset.

User "1" of tiny_dataset, chronologically: h1=13 Action 4.5, h2=32 Comedy 2.0, h3=19 Action,
h4=25 Action, h5=1 Action, h6=11 Animation 2.0, h7=31 Action, h8=7 Action, h9=20 Comedy 2.0,
h10=37 Action (Action items 4.5). All ten fit the default budget, so h<k> is the k-th event.
"""

import json
from datetime import datetime, timezone

import pytest

from tastelens.agent.history import load_entries
from tastelens.agent.profile.profiler import Profiler
from tastelens.config.pipeline import ProfilerConfig
from tastelens.errors import UnknownIdError
from tastelens.llm.base import ChatFailure
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import PromptRenderer, RendererConfig
from tastelens.prompts.tokens import CharEstimateCounter
from tastelens.schemas import Interaction, InterestProfile

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)


def reply(interests, summary="Loves 1980s action like h5.", explore=("Heist thrillers",)):
    def listed(polarity):
        return [{"label": label, "granularity": gran, "evidence": list(ev)}
                for label, gran, pol, ev in interests if pol == polarity]

    return json.dumps({"likes": listed("like"), "dislikes": listed("dislike"),
                       "summary": summary, "explore_next": list(explore)})


GOOD = reply([("Explosive 1980s action", "topic", "like", ["h5", "h8"]),
              ("Adrenaline rush", "sentiment", "like", ["h1", "h3", "h7"]),
              ("Broad comedies", "topic", "dislike", ["h2", "h9"])])


def make_profiler(fake: FakeBackend, **config) -> Profiler:
    renderer = PromptRenderer(token_counter=CharEstimateCounter())
    config.setdefault("prompt", "history")  # these tests script replies to that prompt
    return Profiler(fake, renderer, ProfilerConfig(**config), clock=lambda: NOW)


def test_valid_reply_becomes_grounded_profile(tiny_dataset):
    fake = FakeBackend().enqueue([GOOD])
    profile, diag = make_profiler(fake, adapter="v1").profile(tiny_dataset, "1")
    assert fake.pending == 0 and len(fake.received) == 1
    request = fake.received[0]
    likes = request.json_schema["properties"]["likes"]
    assert likes["maxItems"] == 3
    # grounded by construction: evidence can only name the shown items the user liked
    assert likes["items"]["properties"]["evidence"]["items"]["enum"] == [
        "h1", "h3", "h4", "h5", "h7", "h8", "h10"]
    dislikes = request.json_schema["properties"]["dislikes"]
    assert dislikes["items"]["properties"]["evidence"]["items"]["enum"] == ["h2", "h6", "h9"]
    assert request.adapter == "v1" and request.max_tokens == 320
    assert [i.label for i in profile.interests] == ["Explosive 1980s action", "Adrenaline rush"]
    assert profile.interests[0].evidence == ["1", "7"]  # h5, h8 mapped back to item ids
    assert profile.interests[1].weight == pytest.approx(0.5 * (1 - 1 / 3) + 0.5, abs=1e-4)
    assert all(i.source == "llm" for i in profile.interests)
    llm_dislikes = [d for d in profile.dislikes if d.source == "llm"]
    assert [(d.label, d.evidence) for d in llm_dislikes] == [("Broad comedies", ["32", "20"])]
    assert {d.evidence[0] for d in profile.dislikes if d.source == "data"} == {"32", "11", "20"}
    assert profile.summary == 'Loves 1980s action like "Action Movie 1 (1980)".'
    assert profile.summary_source == "llm" and not diag.summary_replaced
    assert profile.explore_next == ["Heist thrillers"] and profile.explore_source == "llm"
    assert profile.provenance.llm_used and profile.provenance.model == "fake"
    assert profile.provenance.adapter == "v1"
    assert profile.provenance.prompt_version.startswith("profile-")
    assert profile.categories[0].category == "Action" and profile.n_items == 10
    assert not diag.fallback and diag.attempts == 1 and diag.n_shown == 10
    assert diag.dropped_evidence == diag.dropped_interests == 0


def test_evidence_not_in_history_or_contradicting_ratings_is_dropped_and_counted(tiny_dataset):
    fake = FakeBackend().enqueue([reply([
        ("Explosive 1980s action", "topic", "like", ["h5", "h99", "h11"]),  # 2 ids not shown
        ("Invented favourites", "topic", "like", ["h50", "h60"]),  # nothing real left
        ("Action with comedy", "topic", "like", ["h2", "h3"]),  # h2 was rated 2.0
        ("Cartoons", "keyword", "dislike", ["h6", "h10"]),  # h10 was rated 4.5
    ])])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert [(i.label, i.evidence) for i in profile.interests] == [
        ("Explosive 1980s action", ["1"]), ("Action with comedy", ["19"])]
    assert [d.evidence for d in profile.dislikes if d.source == "llm"] == [["11"]]
    assert diag.dropped_evidence == profile.provenance.dropped_evidence == 6
    assert diag.drop_reasons == {"evidence_not_in_history": 4, "evidence_contradicts_rating": 2,
                                 "no_valid_evidence": 1}
    assert diag.dropped_interests == profile.provenance.dropped_interests == 1
    history = {e.item.id for e in load_entries(tiny_dataset, "1")}
    assert all(set(i.evidence) <= history for i in profile.interests + profile.dislikes)


def test_generic_duplicate_and_overlong_labels_are_dropped(tiny_dataset):
    fake = FakeBackend().enqueue([reply([
        ("Action", "keyword", "like", ["h1"]),  # a bare catalog category
        ("movies", "topic", "like", ["h1"]),
        ("1995", "topic", "like", ["h1"]),  # a year is no interest
        ("Practical stunt work", "keyword", "like", ["h1"]),
        ("practical  stunt work.", "keyword", "like", ["h3"]),  # duplicate after normalising
        ("x" * 90, "topic", "like", ["h4"]),  # allowed by the reply schema, too long for us
    ])])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert [i.label for i in profile.interests] == ["Practical stunt work"]
    assert diag.drop_reasons == {"generic_label": 3, "duplicate_label": 1, "label_too_long": 1}
    assert diag.dropped_interests == 5 and diag.dropped_evidence == 0


def test_copied_examples_and_bare_titles_are_not_interests(tiny_dataset):
    fake = FakeBackend().enqueue([reply([
        ("1990s Disney musicals", "topic", "like", ["h1"]),  # the system prompt's example
        ("1980s Disney musicals", "topic", "like", ["h1"]),  # ... with another decade
        ("Action Movie 7 (1986)", "keyword", "like", ["h8"]),  # a title it was shown
        ("action movie 37", "keyword", "like", ["h10"]),  # the same without the year
        ("Practical stunt work", "keyword", "like", ["h1"]),
    ], summary="Action Movie 13 (1992)")])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert [i.label for i in profile.interests] == ["Practical stunt work"]
    assert diag.drop_reasons == {"copied_from_instructions": 2, "label_is_a_title": 2}
    # a title is no summary: the data summary stands in, and says so
    assert diag.summary_replaced and profile.summary_source == "data"
    assert profile.summary.startswith("Watches mostly Action") and profile.provenance.llm_used


def test_invalid_output_after_retry_falls_back_to_data(tiny_dataset):
    fake = FakeBackend().enqueue(["I think they like action!", '{"summary": "x"}'])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert diag.fallback and diag.attempts == 2 and "invalid after retry" in diag.reason
    assert diag.raw_reply == '{"summary": "x"}'
    assert fake.stats.invalid_after_retry == 1 and fake.stats.repaired == 0
    # the retry is the same prompt (its prefix is cached) under a tighter schema, not a
    # conversation that resends the prompt with the bad reply
    first, retry = fake.received
    assert retry.messages == first.messages and retry.max_tokens == 160
    assert retry.json_schema["properties"]["likes"]["maxItems"] == 2
    assert "explore_next" not in retry.json_schema["properties"]
    assert not profile.provenance.llm_used and profile.summary_source == "data"
    assert profile.summary.startswith("Watches mostly Action")  # template text, not LLM text
    assert all(i.source == "data" for i in profile.interests + profile.dislikes)
    assert profile.explore_source == "data" and profile.explore_next
    assert profile.categories and profile.long_term and profile.history_hash


def test_request_failure_or_nothing_surviving_also_falls_back(tiny_dataset):
    fake = FakeBackend().enqueue([ChatFailure(kind="timeout", message="slow"),
                                  reply([("Drama", "keyword", "like", ["h1"])])])
    profiler = make_profiler(fake)
    first, d1 = profiler.profile(tiny_dataset, "1")
    assert d1.fallback and "timeout" in d1.reason and d1.attempts == 1
    second, d2 = profiler.profile(tiny_dataset, "1")
    assert d2.fallback and d2.reason == "no interest survived validation"
    assert d2.dropped_interests == second.provenance.dropped_interests == 1
    assert first.summary == second.summary and not second.provenance.llm_used


def test_profile_round_trips_json(tiny_dataset):
    profile, diag = make_profiler(FakeBackend().enqueue([GOOD])).profile(tiny_dataset, "1")
    again = InterestProfile.model_validate_json(profile.model_dump_json())
    assert again == profile and again.created_at == NOW
    assert type(diag).model_validate_json(diag.model_dump_json()) == diag
    data = json.loads(profile.model_dump_json())
    assert data["schema_version"] == 1
    with pytest.raises(ValueError):
        InterestProfile.model_validate({**data, "schema_version": 2})
    assert "Explosive 1980s action" in profile.query_text()


def test_profile_many_sends_one_batch_per_batch_size_in_user_order(tiny_dataset):
    users = ["3", "1", "2", "5", "4"]
    calls = []
    fake = FakeBackend(responder=lambda request: GOOD)
    original = fake.structured_many

    def spy(requests, schema, *, concurrency=None, **kwargs):
        calls.append((len(requests), concurrency))
        return original(requests, schema, concurrency=concurrency, **kwargs)

    fake.structured_many = spy
    results = make_profiler(fake, batch_size=2, concurrency=7).profile_many(tiny_dataset, users)
    assert [p.user for p, _ in results] == users
    assert calls == [(2, 7), (2, 7), (1, 7)]
    assert all(not d.fallback for _, d in results)
    hashes = {p.history_hash for p, _ in results}
    assert len(hashes) == 5


def test_unknown_user_fails_before_any_llm_call(tiny_dataset):
    fake = FakeBackend()
    with pytest.raises(UnknownIdError, match="'404'"):
        make_profiler(fake).profile_many(tiny_dataset, ["1", "404"])
    assert fake.received == []


def test_explicit_history_changes_the_hash(tiny_dataset):
    fake = FakeBackend(responder=lambda request: GOOD)
    profiler = make_profiler(fake)
    full, _ = profiler.profile(tiny_dataset, "1")
    events = tiny_dataset.history("1")
    same, _ = profiler.profile(tiny_dataset, "1", history=events)
    shorter, _ = profiler.profile(tiny_dataset, "1", history=events[:-1])
    assert same.history_hash == full.history_hash != shorter.history_hash
    assert shorter.n_items == 9
    assert isinstance(events[0], Interaction)


def test_config_round_trips_json():
    cfg = ProfilerConfig(adapter="a", batch_size=8, facts={"dislike_max_rating": 1.5})
    assert ProfilerConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ValueError):
        ProfilerConfig.model_validate({"guided": True})


def test_explore_ideas_are_cleaned_and_fall_back_to_data_when_empty(tiny_dataset):
    ideas = ["Action", "  Heist   thrillers ", "heist thrillers", "movies", "Slow cinema"]
    fake = FakeBackend().enqueue([
        reply([("Explosive 1980s action", "topic", "like", ["h5"])], explore=ideas[:3]),
        reply([("Explosive 1980s action", "topic", "like", ["h5"])], explore=["Action"])])
    profiler = make_profiler(fake)
    first, _ = profiler.profile(tiny_dataset, "1")
    assert first.explore_next == ["Heist thrillers"] and first.explore_source == "llm"
    second, _ = profiler.profile(tiny_dataset, "1")
    assert second.explore_source == "data" and "Action" not in second.explore_next
    assert second.explore_next and second.provenance.llm_used
    # an idea that is one of the reply's own interests is not somewhere new to go
    fake.enqueue([reply([("Explosive 1980s action", "topic", "like", ["h5"])],
                        explore=["explosive 1980s action", "Slow cinema"])])
    third, _ = profiler.profile(tiny_dataset, "1")
    assert third.explore_next == ["Slow cinema"]


def test_renderer_for_settings_estimates_when_no_checkpoint_is_prepared(tmp_path):
    from tastelens.agent.profile.profiler import renderer_for_settings
    from tastelens.config.settings import Settings

    renderer = renderer_for_settings(Settings(cache_dir=tmp_path))
    assert isinstance(renderer.counter, CharEstimateCounter)


def test_looping_summary_is_deduplicated_and_invented_titles_are_dropped(tiny_dataset):
    looping = ("Likes loud action. It is a film. It is a film. It is a film. It is a fil")
    fake = FakeBackend().enqueue([reply(
        [("The Jungle (2012)", "topic", "like", ["h1"]),  # invented title: not shown
         ("Car chases", "keyword", "like", ["h3"])],
        summary=looping, explore=["1990", "Dances with Wolves (1990)", "Gritty westerns"])])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert [i.label for i in profile.interests] == ["Car chases"]
    assert diag.drop_reasons == {"label_is_a_title": 1}
    assert profile.summary == "Likes loud action. It is a film."
    assert profile.summary_source == "llm"
    assert profile.explore_next == ["Gritty westerns"]


def test_a_reply_cut_off_at_max_tokens_is_repaired_not_retried(tiny_dataset):
    whole = reply([("Explosive 1980s action", "topic", "like", ["h5", "h8"]),
                   ("Car chases", "keyword", "like", ["h3"])])
    cut = whole[: whole.index("Car chases") + 5]  # inside the second interest's label
    fake = FakeBackend().enqueue([cut])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert len(fake.received) == 1 and diag.repaired and diag.attempts == 1
    assert fake.stats.invalid_first == 1 and fake.stats.repaired == 1
    assert not diag.fallback and [i.label for i in profile.interests] == [
        "Explosive 1980s action"]
    assert profile.summary_source == "data"  # the summary was never written


def test_a_user_with_nothing_liked_on_show_gets_facts_without_a_call(tiny_dataset):
    # Rated items exist (so unrated ones cannot back a like), but the three shown are unrated.
    fake = FakeBackend()
    renderer = PromptRenderer(RendererConfig(max_items=3), token_counter=CharEstimateCounter())
    profiler = Profiler(fake, renderer, ProfilerConfig(), clock=lambda: NOW)
    events = tiny_dataset.history("1")
    events = events[:1] + [e.model_copy(update={"rating": None}) for e in events[1:4]]
    profile, diag = profiler.profile(tiny_dataset, "1", history=events)
    assert fake.received == [] and diag.fallback
    assert "no shown item can back a liked interest" in diag.reason


def test_catalog_titles_are_not_interests_even_when_not_shown(tiny_dataset):
    shown = {e.item.title for e in load_entries(tiny_dataset, "1")}
    other = next(i.title for i in tiny_dataset.items.values() if i.title not in shown)
    fake = FakeBackend().enqueue([reply([(other.split(" (")[0], "keyword", "like", ["h1"]),
                                         ("Car chases", "keyword", "like", ["h3"])])])
    profile, diag = make_profiler(fake).profile(tiny_dataset, "1")
    assert [i.label for i in profile.interests] == ["Car chases"]
    assert diag.drop_reasons == {"label_is_a_title": 1}
