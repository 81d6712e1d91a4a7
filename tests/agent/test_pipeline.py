"""RecommendPipeline on the tiny dataset: a real Retriever over a HashingEncoder index in a
temporary Chroma, the real Reranker / Explainer / Profiler on a scripted FakeBackend, and
stand-ins where a test needs a stage to misbehave in a precise way."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from tastelens.agent.explain import Explainer
from tastelens.agent.history import EmptyHistoryError
from tastelens.agent.jobs.profile_job import profile_key
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.profile.profiler import Profiler
from tastelens.agent.rank.reranker import Reranker, RerankResult
from tastelens.agent.recommendation import Candidate, Constraints, Explanation
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import (
    ChromaSettings,
    EmbedderSettings,
    LLMSettings,
    Settings,
    load_settings,
)
from tastelens.errors import UnknownIdError
from tastelens.llm import registry
from tastelens.llm.base import ChatFailure, ChatRequest, ChatResult, LLMBackend, TokenLogprob
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.profile_store import ProfileStore, default_store_path
from tastelens.schemas import Interaction
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

USERS = ["1", "2", "3", "7", "12"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("pipeline")
    return Settings(cache_dir=root, chroma=ChromaSettings(mode="embedded"),
                    embedder=EmbedderSettings(model="hashing"), llm=LLMSettings(backend="fake"))


@pytest.fixture(scope="module")
def index(settings: Settings, tiny_dataset) -> ItemIndex:  # noqa: ANN001
    idx = ItemIndex.for_dataset(settings, tiny_dataset.name, HashingEncoder())
    idx.build(tiny_dataset.items.values(), progress=False)
    return idx


def down(request):  # noqa: ANN001, ANN201 - FakeBackend responder: the server is gone
    raise LLMUnavailableError("no LLM server at 127.0.0.1:1")


def failing(request):  # noqa: ANN001, ANN201 - every request times out
    return ChatFailure(kind="timeout", message="slow")


def build(dataset, index, *, responder=down, store=None, parts=None, **config):  # noqa: ANN001, ANN201
    """A pipeline with the real components, except the stand-ins named in ``parts``."""
    config.setdefault("rerank", {"mode": "score"})
    cfg = PipelineConfig.model_validate({"profile_source": "facts", **config})
    llm = FakeBackend(responder=responder)
    parts = {"retriever": Retriever(cfg.retriever, dataset=dataset, item_index=index),
             "reranker": Reranker(cfg.rerank, llm=llm, dataset=dataset),
             "explainer": Explainer(cfg.explain, llm=llm, dataset=dataset), **(parts or {})}
    return RecommendPipeline(cfg, dataset=dataset, profiler=Profiler(llm, config=cfg.profiler),
                             store=store, llm=llm, **parts)


# -- stand-ins ------------------------------------------------------------------------
@dataclass
class ReversingReranker:
    """Puts the retrieval order upside down; records what it was shown."""

    mode: str = "listwise"
    seen: list[list[Candidate]] = field(default_factory=list)

    @property
    def config(self):  # noqa: ANN201
        from tastelens.config.pipeline import RerankConfig

        return RerankConfig(mode=self.mode)

    def rerank_many(self, profiles, histories, candidates, constraints):  # noqa: ANN001, ANN201
        self.seen.extend(candidates)
        out = []
        for cands in candidates:
            order = [c.item for c in reversed(cands)]
            out.append(RerankResult(order=order,
                                    scores={i: 100.0 - r for r, i in enumerate(order)}))
        return out


class TemplateExplainer:
    def explain_many(self, profiles, histories, recs):  # noqa: ANN001, ANN201
        return [([Explanation(text=f"because {c.item}") for c in r], 0) for r in recs]


# -- the tests ------------------------------------------------------------------------
def test_items_follow_the_reranker_and_explored_take_the_last_slots(tiny_dataset, index):  # noqa: ANN001
    reranker = ReversingReranker()
    pipe = build(tiny_dataset, index, parts={"reranker": reranker,
                                             "explainer": TemplateExplainer()},
                 k=8, retriever={"n_candidates": 10, "explore": {"slots": 2}})
    # Tiny items have one genre each, so the data facts find no exploration ideas: give some.
    profile = pipe.profile_for("1").model_copy(update={"explore_next": ["Horror", "Romance"]})
    result = pipe.recommend("1", profile=profile)
    shown = reranker.seen[0]
    assert all(c.source == "retrieved" for c in shown)  # exploration is not re-ranked
    sources = [r.source for r in result.items]
    n_explored = sources.count("explored")
    assert n_explored == 2 and sources[-2:] == ["explored", "explored"]
    head = [r.item for r in result.items[: 8 - n_explored]]
    assert head == [c.item for c in reversed(shown)][: len(head)]
    assert [r.rank for r in result.items] == list(range(1, 9))
    assert result.items[0].score == 100.0
    assert result.items[0].explanation.text == f"because {result.items[0].item}"
    assert result.report.explored == 2
    short = pipe.recommend("1", profile=profile, k=3)  # exploration never takes half the list
    assert [r.source for r in short.items] == ["retrieved", "retrieved", "explored"]


def test_no_explore_slots_means_no_explored_items(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index, retriever={"explore": {"slots": 0}}, k=6,
                 rerank={"mode": "none"})
    result = pipe.recommend("2")
    assert len(result.items) == 6 and {r.source for r in result.items} == {"retrieved"}


@pytest.mark.parametrize("user", USERS)
def test_seen_and_excluded_items_are_never_returned(tiny_dataset, index, user):  # noqa: ANN001
    seen = {e.item for e in tiny_dataset.history(user)}
    excluded = sorted(set(tiny_dataset.item_ids) - seen)[:3]
    pipe = build(tiny_dataset, index, rerank={"mode": "none"}, explain={"enabled": False})
    result = pipe.recommend(user, k=15, constraints=Constraints(exclude_items=excluded))
    ids = [r.item for r in result.items]
    assert ids and not (set(ids) & seen) and not (set(ids) & set(excluded))
    assert len(ids) == len(set(ids))


def test_the_guard_drops_what_a_bad_retriever_returns(tiny_dataset, index):  # noqa: ANN001
    seen = [e.item for e in tiny_dataset.history("1")]

    class Sloppy:
        config = PipelineConfig().retriever

        def retrieve_many(self, profiles, histories, constraints, n, moments=None):  # noqa: ANN001, ANN201
            ids = [seen[0], "40", "40", "39", seen[1], "38"]
            return [[Candidate(item=i, score=1.0) for i in ids]]

    pipe = build(tiny_dataset, index, parts={"retriever": Sloppy()}, rerank={"mode": "none"},
                 explain={"enabled": False})
    result = pipe.recommend("1", constraints=Constraints(exclude_items=["39"]))
    assert [r.item for r in result.items] == ["40", "38"]


def test_constraints_are_honoured(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index, rerank={"mode": "none"}, explain={"enabled": False})
    horror = pipe.recommend("1", k=5, constraints=Constraints(include_categories=["Horror"]))
    assert horror.items and all("Horror" in tiny_dataset.items[r.item].categories
                                for r in horror.items)
    years = pipe.recommend("1", k=5, constraints=Constraints(year_min=1990, year_max=2000,
                                                             exclude_categories=["Drama"]))
    for r in years.items:
        item = tiny_dataset.items[r.item]
        assert 1990 <= item.year <= 2000 and "Drama" not in item.categories
    assert years.constraints.year_min == 1990


def test_report_has_stage_timings_and_token_counts(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index, rerank={"mode": "none"})
    report = pipe.recommend("3").report
    assert set(report.timings) == {"profile", "retrieve", "rerank", "explain", "total"}
    assert all(v >= 0 for v in report.timings.values())
    assert report.timings["total"] >= max(v for s, v in report.timings.items() if s != "total")
    assert report.profile_source == "facts" and report.candidates > 0


def test_llm_down_keeps_retrieval_order_and_template_explanations(tiny_dataset, index):  # noqa: ANN001
    # Three liked horror films: unseen horror items then have history evidence to cite, so
    # the explainer asks the model about them (tiny users have seen all of their genre).
    history = [Interaction(user="1", item=i, rating=4.5, timestamp=t)
               for t, i in enumerate(("4", "10", "16"))]
    plain = build(tiny_dataset, index, rerank={"mode": "none"}, explain={"enabled": False})
    expected = [r.item for r in plain.recommend("1", history=history).items]
    for responder in (down, failing):
        pipe = build(tiny_dataset, index, responder=responder, rerank={"mode": "listwise"},
                     explain={"use_llm": True})
        result = pipe.recommend("1", history=history)
        assert [r.item for r in result.items] == expected
        assert result.report.rerank_fallback and result.report.rerank_fallback_reason
        assert all(r.explanation is not None and r.explanation.source == "data"
                   for r in result.items)
        # Items with history evidence were sent to the model; all of those fell back.
        asked = sum(bool(r.explanation.evidence) for r in result.items)
        assert asked and result.report.explain_fallbacks == asked
        cited = {i for r in result.items for i in r.explanation.evidence}
        assert cited <= {"4", "10", "16"}


def test_unknown_user_and_empty_history(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index, rerank={"mode": "none"}, explain={"enabled": False})
    with pytest.raises(UnknownIdError, match="'nobody'"):
        pipe.recommend("nobody")
    with pytest.raises(UnknownIdError, match="'nobody'"):
        pipe.profile_for("nobody")
    with pytest.raises(EmptyHistoryError, match="no history and no profile"):
        pipe.recommend(None)
    with pytest.raises(EmptyHistoryError):
        pipe.recommend("1", history=[])
    wish = pipe.recommend(None, k=4, constraints=Constraints(queries=["horror"]))
    assert len(wish.items) == 4 and wish.report.profile_source == "empty"
    assert wish.user is None


def test_given_history_replaces_the_dataset_events(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index, rerank={"mode": "none"}, explain={"enabled": False})
    history = [e.item for e in tiny_dataset.history("1")][:3]
    result = pipe.recommend("1", history=history, k=20)
    later = {e.item for e in tiny_dataset.history("1")[3:]}
    assert set(r.item for r in result.items) & later  # the rest of the history is unseen now
    assert not set(r.item for r in result.items) & set(history)


def test_profile_from_the_store_only_when_it_matches_the_history(tiny_dataset, index, tmp_path):  # noqa: ANN001
    profiler = Profiler(FakeBackend())
    fresh = build(tiny_dataset, index).profile_for("2")
    stored = fresh.model_copy(update={"summary": "FROM THE STORE"})
    with ProfileStore(default_store_path(tmp_path, tiny_dataset.name)) as store:
        store.put(profile_key(profiler, tiny_dataset, "2"), stored.model_dump_json())
        pipe = build(tiny_dataset, index, store=store, profile_source="store",
                     rerank={"mode": "none"}, explain={"enabled": False})
        assert pipe.profile_for("2").summary == "FROM THE STORE"
        assert pipe.recommend("2").report.profile_source == "store"
        part = [e.item for e in tiny_dataset.history("2")][:5]
        other = pipe.recommend("2", history=part).report  # stale for this history
        assert other.profile_source == "facts"
        assert pipe.profile_for("3").summary != "FROM THE STORE"


def test_llm_profile_and_its_fallback(tiny_dataset, index):  # noqa: ANN001
    # User "1": the prompt's h1 is item 13, an Action film rated 4.5 (see test_profiler.py).
    reply = {"likes": [{"label": "Practical stunt work", "granularity": "keyword",
                        "evidence": ["h1"]}],
             "summary": "Enjoys physical action with real stunts and chases.",
             "explore_next": ["Heist thrillers"]}
    ok = build(tiny_dataset, index, responder=lambda r: json.dumps(reply),
               profile_source="llm", rerank={"mode": "none"}, explain={"enabled": False},
               profiler={"prompt": "history"})
    result = ok.recommend("1")
    assert result.report.profile_source == "llm" and not result.report.profile_fallback
    assert ok.profile_for("1").interests[0].evidence == ["13"]
    assert result.report.llm_requests == 1 and result.report.completion_tokens > 0
    assert ok.recommend("1").report.llm_requests == 0  # the LLM profile is cached
    broken = build(tiny_dataset, index, profile_source="llm", rerank={"mode": "none"},
                   explain={"enabled": False})
    report = broken.recommend("1").report
    assert report.profile_fallback and report.profile_source == "llm"
    assert broken.recommend("1").report.profile_fallback  # a fallback is not cached


def test_recommend_many_matches_recommend(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index, rerank={"mode": "none"})
    batch = pipe.recommend_many(USERS, k=5)
    for user, got in zip(USERS, batch):
        single = pipe.recommend(user, k=5)
        assert got.user == user
        assert [r.item for r in got.items] == [r.item for r in single.items]
        assert [r.explanation for r in got.items] == [r.explanation for r in single.items]


def test_from_settings_builds_and_closes_what_it_owns(settings, index, tiny_dataset):  # noqa: ANN001
    settings = settings.model_copy(update={"recommend": PipelineConfig(
        profile_source="facts", rerank={"mode": "none"}, collaborative={"enabled": False})})
    with RecommendPipeline.from_settings(settings, tiny_dataset) as pipe:
        assert isinstance(pipe.llm, FakeBackend) and pipe.store is None
        pipe.llm.responder = down
        result = pipe.recommend("5", k=3)
        assert len(result.items) == 3
    assert pipe.llm.closed


def test_settings_reach_every_stage(settings, index, tiny_dataset):  # noqa: ANN001
    settings = settings.model_copy(update={"recommend": PipelineConfig.model_validate({
        "profile_source": "facts", "profiler": {"max_tokens": 77, "facts": {"max_dislikes": 2}},
        "retriever": {"n_candidates": 12}, "rerank": {"mode": "score", "max_history": 4},
        "explain": {"max_evidence": 1}, "collaborative": {"enabled": False}})})
    with RecommendPipeline.from_settings(settings, tiny_dataset) as pipe:
        assert pipe.profiler.config.max_tokens == 77
        assert pipe.retriever.planner._facts_config.max_dislikes == 2
        assert pipe.retriever.config.n_candidates == 12
        assert pipe.reranker.config.max_history == 4
        assert pipe.explainer.config.max_evidence == 1


class InFlightRecorder(LLMBackend):
    """Answers every score-mode request with the letter 'A', holding each request a moment
    in a thread pool of the size it is given, and records the most requests in flight."""

    def __init__(self, **defaults: object) -> None:
        super().__init__(**defaults)  # type: ignore[arg-type]
        self.peak = 0
        self.requests = 0
        self._now = 0
        self._count_lock = threading.Lock()

    def _one(self, request: ChatRequest) -> ChatResult:
        with self._count_lock:
            self._now += 1
            self.requests += 1
            self.peak = max(self.peak, self._now)
        time.sleep(0.05)
        with self._count_lock:
            self._now -= 1
        return ChatResult(text="A", logprobs=[TokenLogprob(token="A", logprob=-0.1,
                                                           top={"A": -0.1, "B": -2.0})])

    def _generate(self, requests, concurrency):  # noqa: ANN001, ANN201
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(self._one, requests))


def test_llm_concurrency_caps_the_rerank_batch_in_flight(settings, index, tiny_dataset,  # noqa: ANN001
                                                         monkeypatch):  # noqa: ANN001
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_backend("in-flight-recorder")(InFlightRecorder)
    monkeypatch.chdir(settings.cache_dir)  # no ./tastelens.toml
    monkeypatch.setenv("TASTELENS_LLM__BACKEND", "in-flight-recorder")
    monkeypatch.setenv("TASTELENS_LLM__CONCURRENCY", "3")
    resolved = load_settings(cache_dir=settings.cache_dir, chroma=settings.chroma,
                             embedder=settings.embedder,
                             recommend={"profile_source": "facts", "rerank": {"mode": "score"},
                                        "explain": {"enabled": False},
                                        "collaborative": {"enabled": False}})
    assert resolved.recommend.rerank.concurrency is None  # the stage defers to llm.concurrency
    users = [str(u) for u in range(1, 13)]
    with RecommendPipeline.from_settings(resolved, tiny_dataset) as pipe:
        llm = pipe.llm
        assert isinstance(llm, InFlightRecorder)
        pipe.recommend_many(users, k=3)
    assert llm.requests == len(users)  # one score prompt per user, sent as one batch
    assert llm.peak == 3


def test_warm_up_loads_the_encoder_and_starts_a_managed_llm(tiny_dataset, index):  # noqa: ANN001
    pipe = build(tiny_dataset, index)
    started: list[bool] = []
    pipe.llm.start = lambda: started.append(True)  # what VLLMBackend offers
    before = index.encoder.calls
    pipe.warm_up()
    assert index.encoder.calls == before + 1 and started == [True]


def test_before_the_ranker_is_trained_interactive_use_gets_the_labelled_retrieval_order(
        settings, tiny_dataset, index):  # noqa: ANN001
    from tastelens.agent.serving import NO_RANKER, UntrainedRanker, build_reranker
    from tastelens.errors import ConfigError

    cfg = PipelineConfig.model_validate({"profile_source": "facts",
                                         "rerank": {"mode": "learned", "ranker": "never"}})
    with pytest.raises(ConfigError, match="rank train"):  # batch use: an error naming the fix
        build_reranker(settings, tiny_dataset, cfg, llm=None, item_index=index, models=None)
    stage = build_reranker(settings, tiny_dataset, cfg, llm=None, item_index=index,
                           models=None, missing_ranker=True)
    assert isinstance(stage, UntrainedRanker)
    pipe = build(tiny_dataset, index, parts={"reranker": stage}, rerank={"mode": "none"})
    result = pipe.recommend("1", k=5)
    retrieved = [c.item for c in pipe.retriever.retrieve(
        pipe.profile_for("1"), [e.item for e in tiny_dataset.history("1")], n=100)
        if c.source != "explored"]
    assert result.report.rerank_fallback and result.report.rerank_fallback_reason == NO_RANKER
    head = [r.item for r in result.items if r.source != "explored"]
    assert head == retrieved[: len(head)]


def test_a_visitors_request_keeps_the_retrieval_order_unless_told(tiny_dataset, index):  # noqa: ANN001
    history = [e.item for e in tiny_dataset.history("1")][:3]
    kept = build(tiny_dataset, index, parts={"reranker": ReversingReranker()},
                 retriever={"explore": {"slots": 0}})
    visitor = kept.recommend(None, k=5, history=history)
    assert visitor.report.rerank == "none" and not kept.reranker.seen
    assert [r.item for r in visitor.items] == [c.item for c in kept.retriever.retrieve(
        kept.history_profile(history), history, n=100)][:5]
    user = kept.recommend("1", k=5)  # a dataset user's request goes to the stage
    assert user.report.rerank == "score" and len(kept.reranker.seen) == 1
    learned = build(tiny_dataset, index, parts={"reranker": ReversingReranker()},
                    retriever={"explore": {"slots": 0}},
                    rerank={"mode": "score", "visitors": "learned"})
    assert learned.recommend(None, k=5, history=history).report.rerank == "score"
    assert len(learned.reranker.seen) == 1
