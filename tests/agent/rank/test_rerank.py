"""The LLM re-ranker: score and listwise modes, permutations, counting, fallbacks."""

import json
import math
import re

import pytest

from tastelens.agent.rank.prompt import rank_request
from tastelens.agent.rank.reranker import Reranker, label_scores, listwise_scores
from tastelens.agent.recommendation import Candidate, Constraints
from tastelens.config.pipeline import RerankConfig
from tastelens.llm.base import ChatFailure, ChatResult, TokenLogprob
from tastelens.llm.errors import LLMRequestError, LLMUnavailableError
from tastelens.llm.fake import FakeBackend

HISTORY = [("1", 4.5), ("6", 2.0), ("11", None)]
POOL = ["2", "3", "4", "5"]  # retrieval order
_LINE = re.compile(r'^([A-Z]) "[A-Za-z-]+ Movie (\d+)\b', re.M)


def cands(ids=POOL):
    return [Candidate(item=i, score=1.0 / (k + 1)) for k, i in enumerate(ids)]


def labels_of(request) -> dict[str, str]:
    """Label -> item id, read from a rendered ranking prompt (the fake model's 'eyes')."""
    return {label: item for label, item in _LINE.findall(request.messages[-1].content)}


def scored(top: dict[str, float], token: str = "A") -> ChatResult:
    return ChatResult(text=token, completion_tokens=1, logprobs=[
        TokenLogprob(token=token, logprob=top.get(token, -9.0), top=top)])


def reranker(tiny_dataset, llm, **cfg):
    cfg.setdefault("mode", "score")
    return Reranker(RerankConfig(**cfg), llm=llm, dataset=tiny_dataset)


def test_config_round_trips_json():
    cfg = RerankConfig(mode="listwise", permutations=3, adapter="rank-lora", aggregate="mrr")
    assert RerankConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ValueError):
        RerankConfig(max_candidates=27)
    with pytest.raises(ValueError):
        RerankConfig(top_logprobs=21)
    with pytest.raises(ValueError):
        RerankConfig(surprise=1)


def test_mode_none_keeps_retrieval_order_without_llm(tiny_dataset):
    llm = FakeBackend()
    result = reranker(tiny_dataset, llm, mode="none").rerank(None, HISTORY, cands())
    assert result.order == POOL and not result.fallback and result.reason is None
    assert result.scores["2"] == 1.0 and llm.received == []


def test_score_mode_reads_label_logprobs(tiny_dataset):
    # "C" and " C" are one answer (their probability adds up); "The" and "Q" are no label.
    top = {"B": -0.5, "C": -2.0, " C": -1.0, "The": -3.0, "Q": -0.1}
    llm = FakeBackend([scored(top, "Q")])
    rr = reranker(tiny_dataset, llm, mode="score", adapter="rank-lora", top_logprobs=5)
    result = rr.rerank(None, HISTORY, cands(), Constraints(queries=["funnier"]))
    assert result.order == ["3", "4", "2", "5"]  # B, C, then absent A, D in retrieval order
    assert not result.fallback and result.invalid_ids == 0 and result.appended == 0
    assert result.scores["3"] == pytest.approx(-0.5)
    assert result.scores["4"] == pytest.approx(math.log(math.exp(-2.0) + math.exp(-1.0)))
    assert result.scores["2"] > result.scores["5"]
    assert max(result.scores["2"], result.scores["5"]) < -3.0  # below everything seen
    assert all(math.isfinite(v) for v in result.scores.values())
    (request,) = llm.received
    assert request.max_tokens == 1 and request.logprobs == 5 and request.adapter == "rank-lora"
    assert request.temperature == 0.0 and request.json_schema is None
    assert labels_of(request) == {"A": "2", "B": "3", "C": "4", "D": "5"}
    assert '"funnier"' in request.messages[-1].content
    assert llm.pending == 0


def test_score_mode_with_no_label_in_top_k_is_retrieval_order_not_invalid(tiny_dataset):
    llm = FakeBackend([scored({"The": -0.2, "I": -1.5}, "The")])
    result = reranker(tiny_dataset, llm).rerank(None, HISTORY, cands())
    assert result.order == POOL and not result.fallback
    assert result.scores["2"] < -1.5


def test_score_mode_without_logprobs_falls_back(tiny_dataset):
    llm = FakeBackend([ChatResult(text="B")])
    result = reranker(tiny_dataset, llm).rerank(None, HISTORY, cands())
    assert result.fallback and result.order == POOL and "no logprobs" in result.reason


def test_listwise_dedupes_drops_unknown_and_appends(tiny_dataset):
    llm = FakeBackend(['{"ranking": ["C", "C", "Z", "A", "c"]}'])
    result = reranker(tiny_dataset, llm, mode="listwise").rerank(None, HISTORY, cands())
    assert result.order == ["4", "2", "3", "5"]  # C, A, then B, D appended in retrieval order
    assert result.invalid_ids == 3 and result.appended == 2 and not result.fallback
    assert result.scores["4"] > result.scores["2"] > result.scores["3"] > result.scores["5"]
    (request,) = llm.received
    ranking = request.json_schema["properties"]["ranking"]
    assert ranking["items"]["enum"] == ["A", "B", "C", "D"]
    assert ranking["minItems"] == ranking["maxItems"] == 4
    assert request.max_tokens == 32 + 9 * 4 and request.logprobs is None


def test_listwise_unusable_reply_falls_back_after_one_retry(tiny_dataset):
    llm = FakeBackend(["B then A", "still not json"])
    result = reranker(tiny_dataset, llm, mode="listwise").rerank(None, HISTORY, cands())
    assert result.fallback and result.order == POOL and "reply unusable" in result.reason
    assert len(llm.received) == 2 and llm.stats.invalid_after_retry == 1


def first_item_responder(best: str):
    """A model that always ranks ``best`` first and the rest in prompt (label) order — a
    position-biased model, which is what permutations average out."""
    def respond(request):
        label_to_item = labels_of(request)
        best_label = next(lb for lb, i in label_to_item.items() if i == best)
        rest = [lb for lb in label_to_item if lb != best_label]
        return json.dumps({"ranking": [best_label, *rest]})
    return respond


@pytest.mark.parametrize("aggregate", ["borda", "mrr"])
def test_listwise_permutations_are_seeded_shuffles_and_aggregate(tiny_dataset, aggregate):
    llm = FakeBackend(responder=first_item_responder("5"))
    rr = reranker(tiny_dataset, llm, mode="listwise", permutations=4, seed=7,
                  aggregate=aggregate)
    result = rr.rerank(None, HISTORY, cands())
    orders = [[labels_of(r)[lb] for lb in "ABCD"] for r in llm.received]
    assert len(orders) == 4 and orders[0] == POOL  # the first is the retrieval order
    assert len({tuple(o) for o in orders}) > 1 and all(sorted(o) == sorted(POOL) for o in orders)
    # Expected aggregate, computed from what each prompt showed.
    expected = dict.fromkeys(POOL, 0.0)
    for order in orders:
        ranked = ["5", *(i for i in order if i != "5")]
        for p, item in enumerate(ranked):
            expected[item] += ((4 - p) / 4 if aggregate == "borda" else 1 / (p + 1)) / 4
    assert result.scores == pytest.approx(expected)
    assert result.order[0] == "5"
    assert result.order == sorted(POOL, key=lambda i: (-expected[i], POOL.index(i)))
    # Same seed, same shuffles.
    again = FakeBackend(responder=first_item_responder("5"))
    reranker(tiny_dataset, again, mode="listwise", permutations=4, seed=7,
             aggregate=aggregate).rerank(None, HISTORY, cands())
    assert [r.messages for r in again.received] == [r.messages for r in llm.received]


def test_score_permutations_average_logprobs(tiny_dataset):
    # Position-biased model: "A" always most likely, "B" next. Averaged over shuffles the
    # first retrieved item no longer wins by position alone.
    llm = FakeBackend(responder=lambda r: scored({"A": -0.1, "B": -1.0}))
    result = reranker(tiny_dataset, llm, permutations=3).rerank(None, HISTORY, cands())
    assert len(llm.received) == 3
    expected = dict.fromkeys(POOL, 0.0)
    for request in llm.received:
        shown = labels_of(request)
        for lb, item in shown.items():
            expected[item] += {"A": -0.1, "B": -1.0}.get(lb, -2.0 - 1e-3 * POOL.index(item)) / 3
    assert result.scores == pytest.approx(expected)
    assert sorted(result.order) == sorted(POOL)


def test_failure_and_unavailable_fall_back_to_retrieval_order(tiny_dataset):
    llm = FakeBackend([ChatFailure(kind="timeout", message="slow")])
    result = reranker(tiny_dataset, llm).rerank(None, HISTORY, cands())
    assert result.fallback and result.order == POOL and "timeout" in result.reason
    assert result.scores == {i: pytest.approx(1.0 / (k + 1)) for k, i in enumerate(POOL)}
    down = FakeBackend()
    for mode in ("score", "listwise"):
        down.enqueue([LLMUnavailableError("connection refused")])
        out = reranker(tiny_dataset, down, mode=mode).rerank_many(
            [None, None], [HISTORY, []], [cands(), cands(["7", "8"])])
        assert [r.order for r in out] == [POOL, ["7", "8"]]
        assert all(r.fallback and "unavailable" in r.reason for r in out)


def test_configuration_mistakes_still_raise(tiny_dataset):
    llm = FakeBackend(adapters=["other"])
    with pytest.raises(LLMRequestError, match="unknown LoRA adapter"):
        reranker(tiny_dataset, llm, adapter="missing").rerank(None, HISTORY, cands())


def test_rerank_many_batches_users_and_isolates_failures(tiny_dataset):
    llm = FakeBackend([ChatFailure(kind="server_error", message="boom"),
                       scored({"B": -0.1, "A": -0.2})])
    rr = reranker(tiny_dataset, llm, concurrency=4)
    out = rr.rerank_many([None, None], [HISTORY, [("2", 5.0)]],
                         [cands(), cands(["7", "8", "9"])], Constraints())
    assert len(llm.received) == 2 and llm.stats.requests == 2
    assert out[0].fallback and out[0].order == POOL
    assert not out[1].fallback and out[1].order == ["8", "7", "9"]
    with pytest.raises(ValueError):
        rr.rerank_many([None], [HISTORY, HISTORY], [cands()])


def test_candidates_beyond_max_follow_in_retrieval_order(tiny_dataset):
    llm = FakeBackend([scored({"C": -0.1})])
    pool = ["2", "3", "4", "5", "7"]
    result = reranker(tiny_dataset, llm, max_candidates=3).rerank(None, HISTORY, cands(pool))
    assert result.order == ["4", "2", "3", "5", "7"]
    assert list(labels_of(llm.received[0])) == ["A", "B", "C"]
    assert result.scores["5"] < result.scores["3"] and result.scores["7"] < result.scores["5"]


def test_empty_candidates_need_no_llm(tiny_dataset):
    llm = FakeBackend()
    assert reranker(tiny_dataset, llm).rerank(None, HISTORY, []).order == []
    assert llm.received == []


def test_pure_readers(tiny_dataset):
    prompt = rank_request(tiny_dataset, HISTORY, ["9", "8"], mode="score")
    assert label_scores(ChatResult(text="A"), prompt, ["9", "8"]) is None
    scores, invalid, appended = listwise_scores(["B", "B"], prompt, ["9", "8"], "borda")
    assert scores == {"8": 1.0, "9": 0.5} and invalid == 1 and appended == 1


@pytest.mark.integration
def test_real_vllm_rerank_gives_valid_permutations(vllm_managed, tiny_dataset):
    pool = ["2", "3", "4", "5", "7"]
    history = [(e.item, e.rating) for e in tiny_dataset.history("1")]
    score = reranker(tiny_dataset, vllm_managed, mode="score").rerank(None, history, cands(pool))
    assert not score.fallback, score.reason
    assert sorted(score.order) == sorted(pool)
    assert set(score.scores) == set(pool)
    assert all(math.isfinite(v) for v in score.scores.values())
    assert any(v > -30 for v in score.scores.values())  # at least one label was in the top-k
    listwise = reranker(tiny_dataset, vllm_managed, mode="listwise").rerank(
        None, history, cands(pool))
    assert not listwise.fallback, listwise.reason
    assert sorted(listwise.order) == sorted(pool)
    assert listwise.invalid_ids >= 0 and listwise.appended <= len(pool)
    adapted = reranker(tiny_dataset, vllm_managed, adapter="test-lora").rerank(
        None, history, cands(pool))
    assert not adapted.fallback and sorted(adapted.order) == sorted(pool)
