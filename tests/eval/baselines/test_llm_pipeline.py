"""LLM systems in the harness, with the scripted FakeBackend and a hashing-encoder Chroma
index on the tiny dataset: ``profile-embed`` on LLM-written profiles and ``llm-pipeline``
(retrieval / score / listwise re-ranking) under both protocols, with their diagnostics."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tastelens.agent.rank.prompt import compact_title
from tastelens.config.settings import Settings
from tastelens.data.splits import leave_last_out
from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import SystemContext, build
from tastelens.eval.config import EvalConfig
from tastelens.eval.harness import EvalError, evaluate, run_eval
from tastelens.eval.protocols import sample_candidates
from tastelens.llm.base import ChatFailure, ChatRequest, ChatResult, TokenLogprob
from tastelens.llm.fake import FakeBackend
from tastelens.prompts.renderer import json_data
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ...conftest import TINY_COLLABORATIVE, grounded_profile_reply, is_profile_request


def profile_reply(request: ChatRequest) -> str:
    """A grounded ProfileReply: one liked interest backed by the shown liked items."""
    return grounded_profile_reply(request, label="Rainy-day adventure marathons",
                                  summary="Enjoys long adventurous evenings with friends.")



@pytest.fixture()
def settings(tmp_path_factory) -> Settings:
    # One Chroma folder per test module run would be faster, but a fresh one per test keeps
    # tests independent; the hashing index of 40 items builds in well under a second.
    return Settings(cache_dir=tmp_path_factory.mktemp("cache"), embedder={"model": "hashing"},
                    llm={"backend": "fake"})


LLM_PROFILES = {"pipeline": {"profile_source": "llm"}}


def _tiny(params: dict) -> dict:
    """llm-pipeline params whose collaborative models train in a second on the tiny data."""
    pipeline = {"collaborative": TINY_COLLABORATIVE, **params.get("pipeline", {})}
    return {**params, "pipeline": pipeline}


def _config(*systems: tuple[str, str, dict], protocol: str = "candidates", **extra
            ) -> EvalConfig:
    systems = tuple((n, t, _tiny(p) if t == "llm-pipeline" else p) for n, t, p in systems)
    raw = {"systems": [{"name": n, "type": t, "params": p,
                        **({"history_limit": 5} if n == "cold" else {})}
                       for n, t, p in systems],
           "protocol": {"kind": protocol}, "metrics": {"k": [10, 5]},
           "bootstrap": {"n_resamples": 50}, **extra}
    return EvalConfig.model_validate(raw)


# -- profile-embed on LLM-written profiles ---------------------------------------------------

def test_profile_embed_llm_profiles_use_the_adapter_and_report_diagnostics(
        tiny_dataset, settings):
    fake = FakeBackend(responder=profile_reply)
    config = _config(("facts", "profile-embed", {}),
                     ("lora", "profile-embed", {"pipeline": {
                         "profile_source": "llm", "profiler": {"adapter": "profile-lora"}}}))
    result = evaluate(config, settings, dataset=tiny_dataset, resources={"llm": fake})
    systems = result.metrics["systems"]
    assert "diagnostics" not in systems["facts"]  # no model calls, nothing to report
    diag = systems["lora"]["diagnostics"]
    cases = result.metrics["protocol"]["cases"]
    assert len(fake.received) == cases == diag["n_users"] == diag["llm_requests"] == 30
    assert all(r.adapter == "profile-lora" and is_profile_request(r) for r in fake.received)
    assert diag["invalid_rate"] == 0.0 and diag["fallback_rate"] == 0.0
    assert diag["prompt_tokens_per_user"] > 50 and diag["completion_tokens_per_user"] > 10
    assert not fake.closed  # the caller's backend stays open


def test_profiles_never_see_the_held_out_target(tiny_dataset, settings):
    fake = FakeBackend(responder=profile_reply)
    config = _config(("llm", "profile-embed", {"pipeline": {
        "profile_source": "llm", "profiler": {"prompt": "history"}}}))
    evaluate(config, settings, dataset=tiny_dataset, resources={"llm": fake})
    for request in fake.received:
        prompt = request.messages[-1].content
        user_events = _events_of_prompt(tiny_dataset, prompt)
        target = user_events.iloc[-1]["item"]
        assert json_data(tiny_dataset.items[target].title) not in prompt
        before = user_events.iloc[-2]["item"]  # the validation event is part of the history
        assert json_data(tiny_dataset.items[before].title) in prompt


def test_grouped_profiles_never_see_the_held_out_target(tiny_dataset):
    from tastelens.eval.baselines.eval_profiles import EvalProfiles

    fake = FakeBackend(responder=profile_reply)
    split = leave_last_out(tiny_dataset)
    maker = EvalProfiles(split.dataset, source="llm", llm=fake, train=split.train)
    for case in split.test[:8]:
        profile = maker.profiles([case.history])[0]
        prompt = fake.received[-1].messages[-1].content
        target = tiny_dataset.item_ids[case.target]
        assert "<groups>" in prompt and json_data(tiny_dataset.items[target].title) not in prompt
        assert all(target not in i.evidence for i in profile.interests)


_SHOWN_TITLE = re.compile(r'^h\d+ ("(?:[^"\\]|\\.)*")', re.M)


def _events_of_prompt(dataset, prompt: str):
    """The user whose history this prompt shows: the only one who has every shown title
    (titles are unique in the tiny dataset)."""
    shown = {json.loads(t) for t in _SHOWN_TITLE.findall(prompt)}
    owners = [u for u in dataset.user_ids
              if shown <= {dataset.items[i].title for i in dataset.user_events(u)["item"]}]
    assert len(shown) >= 3 and len(owners) == 1, (shown, owners)
    return dataset.user_events(owners[0])


def test_invalid_profiles_fall_back_to_the_facts_profile(tiny_dataset, settings):
    fake = FakeBackend(responder=lambda request: "I like films.")
    config = _config(("facts", "profile-embed", {}),
                     ("llm", "profile-embed", LLM_PROFILES),
                     protocol="full")
    result = evaluate(config, settings, dataset=tiny_dataset, resources={"llm": fake})
    diag = result.metrics["systems"]["llm"]["diagnostics"]
    assert diag["invalid_rate"] == diag["fallback_rate"] == 1.0
    assert diag["llm_requests"] == 60  # each reply retried once
    per_user = result.per_user.pivot(index="user", columns="system", values="rank")
    np.testing.assert_allclose(per_user["llm"], per_user["facts"])


def test_profile_embed_profile_settings_live_in_the_pipelines_config(tiny_dataset, settings):
    for params, problem in (
            ({"adapter": "x"}, "adapter: this key moved; set `pipeline.profiler.adapter`"),
            ({"facts": {"max_dislikes": 9}}, "set `pipeline.profiler.facts`"),
            ({"profile_source": "llm"}, "set `pipeline.profile_source`"),
            ({"pipeline": {"profile_source": "web"}}, "pipeline.profile_source"),
            ({"pipeline": {"profile_source": "store"}}, "not 'store'"),
            ({"pipeline": {"profiler": {"adapter": "p"}}}, "no effect"),
            ({"pipeline": {"retriever": {"rrf_k": 5}}}, "uses only the pipeline's")):
        with pytest.raises(ConfigError, match=rf"systems\.0\.params.*{re.escape(problem)}"):
            evaluate(_config(("p", "profile-embed", params)), settings, dataset=tiny_dataset)


def test_report_shows_profile_validity(tiny_dataset, settings, tmp_path):
    fake = FakeBackend(responder=profile_reply)
    config = _config(("llm", "profile-embed", LLM_PROFILES), users={"n": 10})
    run_eval(config, settings, out_dir=tmp_path / "run", dataset=tiny_dataset,
             resources={"llm": fake})
    report = (tmp_path / "run" / "report.md").read_text()
    diagnostics = report.split("## Diagnostics")[1]
    assert "| llm | 10 | 10 | 0.0% | 0.0% |" in diagnostics


# -- llm-pipeline --------------------------------------------------------------------------

# Compact ranking prompts show titles only; the tiny dataset's titles start with the genre
# ("Comedy Movie 7 (1987)"), which is all this fake model reads.
_CANDIDATE_LINE = re.compile(r'^([A-Z]) ("(\w+) [^"]*")$', re.M)
_RATED_LINE = re.compile(r'^"(\w+) [^"]*" ([\d.]+)$', re.M)


def _block(text: str, tag: str) -> str:
    return text.split(f"<{tag}>")[1].split(f"</{tag}>")[0]


def preference(request: ChatRequest) -> list[tuple[str, str, float]]:
    """(label, quoted title, logprob) of each candidate, as a fake 'model' that likes the
    genre the user rated highest most often: that genre's candidates first, then by label."""
    text = request.messages[-1].content
    liked = [g for g, r in _RATED_LINE.findall(_block(text, "history")) if float(r) >= 4]
    favourite = max(sorted(set(liked)), key=liked.count) if liked else ""
    lines = _CANDIDATE_LINE.findall(_block(text, "candidates"))
    return [(label, title, (-0.1 if genre == favourite else -3.0) - 0.01 * i)
            for i, (label, title, genre) in enumerate(lines)]


def rank_reply(request: ChatRequest) -> ChatResult | str:
    """Answers score-mode (logprobs) and listwise (JSON) ranking requests by ``preference``."""
    prefs = preference(request)
    best = sorted(prefs, key=lambda p: -p[2])
    if request.logprobs is not None:
        top = {label: lp for label, _, lp in prefs}
        return ChatResult(text=best[0][0], prompt_tokens=120, completion_tokens=1,
                          logprobs=[TokenLogprob(token=best[0][0], logprob=best[0][2], top=top)])
    return json.dumps({"ranking": [label for label, _, _ in best]})


def any_reply(request: ChatRequest) -> ChatResult | str:
    return profile_reply(request) if is_profile_request(request) else rank_reply(request)


@pytest.fixture(scope="module")
def index_settings(tmp_path_factory) -> Settings:
    return Settings(cache_dir=tmp_path_factory.mktemp("index"), embedder={"model": "hashing"})


@pytest.fixture(scope="module")
def item_index(tiny_dataset, index_settings):
    index = ItemIndex.for_dataset(index_settings, tiny_dataset.name, HashingEncoder())
    index.build(tiny_dataset.items.values(), progress=False)
    return index


def _system(tiny_dataset, item_index, tmp_path, llm=None, **params):
    params = _tiny(params)
    settings = Settings(cache_dir=tmp_path, embedder={"model": "hashing"})
    resources = {"item_index": item_index, "settings": settings,
                 **({"llm": llm} if llm is not None else {})}
    context = SystemContext(dataset=tiny_dataset, work_dir=tmp_path, seed=0,
                            resources=resources)
    system = build("llm-pipeline", params, context)
    system.fit(leave_last_out(tiny_dataset).train)
    return system


def test_rerank_score_ranks_exactly_the_case_candidates_in_the_models_order(
        tiny_dataset, item_index, tmp_path):
    fake = FakeBackend(responder=rank_reply)
    system = _system(tiny_dataset, item_index, tmp_path, fake, variant="rerank-score",
                     pipeline={"rerank": {"adapter": "rank-lora"}})
    cases = leave_last_out(tiny_dataset).test[:8]
    candidates = sample_candidates(cases, tiny_dataset, 19, 0)
    scores = system.score_candidates([c.history for c in cases], candidates)
    assert scores.shape == (8, 20) and len(fake.received) == 8
    target_first = 0
    for case, row, request, got in zip(cases, candidates, fake.received, scores):
        assert request.adapter == "rank-lora" and request.logprobs == 20
        assert request.max_tokens == 1
        prefs = preference(request)
        titles = {shown(tiny_dataset, j) for j in row}
        assert {title for _, title, _ in prefs} == titles  # the 20 candidates, nothing else
        target_title = shown(tiny_dataset, case.target)
        target_first += prefs[0][1] == target_title
        # The scores order the candidates as the model's log-probabilities do.
        by_title = {shown(tiny_dataset, j): s for j, s in zip(row, got)}
        expected = [t for _, t, _ in sorted(prefs, key=lambda p: -p[2])]
        assert sorted(by_title, key=lambda t: -by_title[t]) == expected
    assert target_first < len(cases)  # the protocol's column order never reaches the prompt
    assert system.diagnostics()["llm_requests"] == 8


def test_candidate_protocol_through_the_harness(tiny_dataset, settings, monkeypatch):
    config = _config(("pop", "popularity", {}),
                     ("retrieval", "llm-pipeline", {"variant": "retrieval"}),
                     ("score", "llm-pipeline", {"variant": "rerank-score"}),
                     ("listwise", "llm-pipeline", {"variant": "rerank-listwise"}))
    fake = FakeBackend(responder=rank_reply)
    result = evaluate(config, settings, dataset=tiny_dataset, resources={"llm": fake})
    systems = result.metrics["systems"]
    assert systems["score"]["ndcg@10"] > systems["retrieval"]["ndcg@10"] \
        > systems["pop"]["ndcg@10"] + 0.2
    assert systems["listwise"]["ndcg@10"] > systems["retrieval"]["ndcg@10"]
    assert "diagnostics" not in systems["retrieval"]
    for name in ("score", "listwise"):
        diag = systems[name]["diagnostics"]
        assert diag["n_users"] == diag["llm_requests"] == 30
        assert diag["invalid_rate"] == diag["fallback_rate"] == 0.0
        assert diag["prompt_tokens_per_user"] > 0 and diag["latency_per_user_s"] > 0
    assert sum(r.json_schema is not None for r in fake.received) == 30  # listwise: guided JSON
    # Without re-ranking the pipeline never builds (or starts) an LLM.
    monkeypatch.setattr("tastelens.llm.registry.create_backend",
                        lambda s: pytest.fail("the retrieval variant must not build an LLM"))
    alone = evaluate(_config(("retrieval", "llm-pipeline", {"variant": "retrieval"})),
                     settings, dataset=tiny_dataset)
    assert alone.metrics["systems"]["retrieval"]["mrr"] == systems["retrieval"]["mrr"]


@pytest.mark.parametrize("reply, invalid", [
    (lambda r: ChatResult(text="A", logprobs=None), 1.0),  # a reply without logprobs
    (lambda r: ChatFailure(kind="timeout", message="slow"), 0.0),  # a failed request
])
def test_unusable_rank_replies_keep_retrieval_order_and_are_counted(
        tiny_dataset, settings, reply, invalid):
    config = _config(("retrieval", "llm-pipeline", {"variant": "retrieval"}),
                     ("score", "llm-pipeline", {"variant": "rerank-score"}))
    result = evaluate(config, settings, dataset=tiny_dataset,
                      resources={"llm": FakeBackend(responder=reply)})
    diag = result.metrics["systems"]["score"]["diagnostics"]
    assert diag["fallback_rate"] == 1.0 and diag["invalid_rate"] == invalid
    ranks = result.per_user.pivot(index="user", columns="system", values="rank")
    np.testing.assert_allclose(ranks["score"], ranks["retrieval"])


def test_listwise_duplicates_and_omissions_are_counted(tiny_dataset, settings):
    def sloppy(request):
        labels = [label for label, _, _ in preference(request)]
        return json.dumps({"ranking": [labels[1], labels[1], *labels[2:]]})  # no A, B twice

    config = _config(("listwise", "llm-pipeline", {"variant": "rerank-listwise"}),
                     users={"n": 5})
    result = evaluate(config, settings, dataset=tiny_dataset,
                      resources={"llm": FakeBackend(responder=sloppy)})
    diag = result.metrics["systems"]["listwise"]["diagnostics"]
    assert diag["invalid_ids_per_user"] == 1.0 and diag["appended_per_user"] == 1.0
    assert diag["fallback_rate"] == 0.0


def shown(dataset, index: int) -> str:
    """How the ranking prompt shows catalog item ``index`` (compact line)."""
    return json_data(compact_title(dataset.items[dataset.item_ids[index]]))


def test_full_protocol_scores_the_pipelines_list(tiny_dataset, item_index, tmp_path):
    fake = FakeBackend(responder=rank_reply)
    system = _system(tiny_dataset, item_index, tmp_path, fake, variant="rerank-score",
                     pipeline={"k": 12, "retriever": {"explore": {"slots": 0}}})
    cases = leave_last_out(tiny_dataset).test[:6]
    scores = system.score([c.history for c in cases])
    assert scores.shape == (6, tiny_dataset.n_items) and scores.dtype == np.float32
    for case, row, request in zip(cases, scores, fake.received):
        listed = np.flatnonzero(row)
        assert sorted(row[listed]) == list(range(1, 13))  # k descending scores, rest 0
        assert not set(listed) & set(case.history.items.tolist())  # nothing seen
        # The model's favourite candidate comes first.
        best = max(preference(request), key=lambda p: p[2])[1]
        top = tiny_dataset.item_ids[int(np.argmax(row))]
        assert json_data(compact_title(tiny_dataset.items[top])) == best


def test_full_protocol_through_the_harness(tiny_dataset, settings):
    config = _config(("pop", "popularity", {}),
                     ("retrieval", "llm-pipeline", {"variant": "retrieval"}),
                     ("score", "llm-pipeline", {"variant": "rerank-score"}),
                     ("listwise", "llm-pipeline", {"variant": "rerank-listwise"}),
                     protocol="full", batch_size=7)
    fake = FakeBackend(responder=rank_reply)
    systems = evaluate(config, settings, dataset=tiny_dataset,
                       resources={"llm": fake}).metrics["systems"]
    for name in ("retrieval", "score", "listwise"):
        assert systems[name]["ndcg@10"] > systems["pop"]["ndcg@10"] + 0.2, name
    assert systems["score"]["diagnostics"]["llm_requests"] == 30


def test_llm_profiles_and_both_adapters(tiny_dataset, settings):
    fake = FakeBackend(responder=any_reply)
    config = _config(("both", "llm-pipeline", {
        "variant": "rerank-score", "pipeline": {
            "profile_source": "llm", "profiler": {"adapter": "profile-lora"},
            "rerank": {"adapter": "rank-lora"}}}), users={"n": 6})
    diag = evaluate(config, settings, dataset=tiny_dataset,
                    resources={"llm": fake}).metrics["systems"]["both"]["diagnostics"]
    profiles = [r for r in fake.received if is_profile_request(r)]
    ranks = [r for r in fake.received if r.logprobs is not None]
    assert len(profiles) == len(ranks) == 6 == diag["n_users"] == diag["llm_requests"] / 2
    assert {r.adapter for r in profiles} == {"profile-lora"}
    assert {r.adapter for r in ranks} == {"rank-lora"}
    assert diag["profile_fallback_rate"] == diag["rerank_fallback_rate"] == 0.0


@pytest.mark.parametrize("params, problem", [
    ({"pipeline": {"rerank": {"mode": "listwise"}}}, "with `variant`"),
    ({"variant": "retrieval", "pipeline": {"rerank": {"adapter": "rank-lora"}}}, "no effect"),
    ({"pipeline": {"profiler": {"adapter": "p"}}}, "no effect"),
    ({"pipeline": {"profile_source": "store"}}, "not 'store'"),
    ({"pipeline": {"explain": {"use_llm": True}}}, "explanations stay off"),
    ({"pipeline": {"k": 500}}, "pipeline.k"),
    ({"pipeline": {"rerank": {"ranker": "mine"}}}, "trains its own"),
    ({"variant": "learned", "pipeline": {"rerank": {"llm_feature": False}},
      "llm_feature": True}, "as `llm_feature`"),
    ({"adapter": "rank-lora"}, "set `pipeline.rerank.adapter`"),
    ({"profile_adapter": "p"}, "set `pipeline.profiler.adapter`"),
    ({"explore_slots": 0}, "set `pipeline.retriever.explore.slots`"),
    ({"retriever": {"rrf_k": 5}}, "set `pipeline.retriever`"),
    ({"variant": "pointwise"}, "variant"),
])
def test_pipeline_config_mistakes_are_named(tiny_dataset, settings, params, problem):
    with pytest.raises(ConfigError, match=rf"systems\.0\.params.*{re.escape(problem)}"):
        evaluate(_config(("p", "llm-pipeline", params)), settings, dataset=tiny_dataset)


# -- the learned ranker -----------------------------------------------------------------------
TINY_RANKER = {"seeds": 1, "cuts": 3, "lightgbm": {"num_boost_round": 30, "min_data_in_leaf": 5}}


def test_learned_ranker_through_the_harness(tiny_dataset, settings, tmp_path):
    fake = FakeBackend(responder=rank_reply)
    config = _config(
        ("pop", "popularity", {}),
        ("retrieval", "llm-pipeline", {"variant": "retrieval"}),
        ("learned", "llm-pipeline", {"variant": "learned", "ranker": TINY_RANKER}),
        ("learned-llm", "llm-pipeline", {"variant": "learned", "llm_feature": True,
                                         "ranker": TINY_RANKER}),
        ("cold", "llm-pipeline", {"variant": "learned", "ranker": TINY_RANKER}),
        protocol="full", bootstrap={"n_resamples": 50, "reference": "retrieval",
                                    "pairs": [["learned-llm", "learned"]]})
    examples: dict = {}
    result = run_eval(config, settings, out_dir=tmp_path / "run", dataset=tiny_dataset,
                      resources={"llm": fake, "ranker_examples": examples})
    # The three learned systems share one set of training examples (the LLM part aside).
    assert len(examples) == 1
    systems = result.metrics["systems"]
    for name in ("retrieval", "learned", "learned-llm", "cold"):
        diag = systems[name]["diagnostics"]
        # The tiny catalog is smaller than 100 candidates: every unseen target is one.
        assert diag["candidate_recall@100"] == 1.0 and 0 < diag["candidate_recall@20"] <= 1
        assert systems[name]["ndcg@10"] > systems["pop"]["ndcg@10"], name
    assert "llm_requests" not in systems["learned"]["diagnostics"]  # no model calls
    # The LLM ensemble's training cases and the 30 test users were scored by the model.
    assert systems["learned-llm"]["diagnostics"]["llm_requests"] >= 30
    card = systems["learned-llm"]["card"]
    assert card["features"]["llm"][-1] == "llm_logprob"
    assert card["data"]["later_cases"] == 30  # the validation targets (the run is on test)
    assert card["data"]["llm_cases"] > 0 and card["importances"]["llm"]["llm_logprob"] > 0
    assert "llm" not in systems["learned"]["card"]["features"]
    assert "learned" in systems["learned-llm"]["ci_vs"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## `learned`: learned ranker" in report and "Cand. R@20" in report
    assert "learned-llm − learned" in report


def test_learned_training_cases_never_hold_a_test_target(tiny_dataset, settings):
    config = _config(("learned", "llm-pipeline", {"variant": "learned", "ranker": TINY_RANKER}),
                     protocol="full", evaluate_on="validation")
    result = evaluate(config, settings, dataset=tiny_dataset)
    card = result.metrics["systems"]["learned"]["card"]
    assert card["data"]["later_cases"] == 0  # evaluating on validation: no labelled cases
    # Cross-fitted cases come from the training split only: 3 cuts of each user's 10 events,
    # plus one cold variant of each user's newest cut (the same target, a few liked items).
    assert 0 < card["data"]["cold_cases"] <= 30
    assert card["data"]["cases"] == 30 * 3 + card["data"]["cold_cases"]


def test_a_ranker_without_cuts_trains_on_the_validation_targets_alone(tiny_dataset, settings):
    only_later = {**TINY_RANKER, "cuts": 0}
    config = _config(("pop", "popularity", {}),
                     ("learned", "llm-pipeline", {"variant": "learned", "ranker": only_later}),
                     protocol="full")
    result = evaluate(config, settings, dataset=tiny_dataset)
    systems = result.metrics["systems"]
    data = systems["learned"]["card"]["data"]
    assert data["cross_model"] is None  # no cross-fitted models were fitted
    assert data["later_cases"] == 30 and 0 < data["cold_cases"] <= 30
    assert data["cases"] == 30 + data["cold_cases"]
    assert systems["learned"]["ndcg@10"] > systems["pop"]["ndcg@10"]
    # Evaluating on validation there are no later cases: a clear error, not an empty ranker.
    with pytest.raises(EvalError, match="'learned'.*cuts = 0"):
        evaluate(config.model_copy(update={"evaluate_on": "validation"}), settings,
                 dataset=tiny_dataset)
