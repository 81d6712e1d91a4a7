"""The learned ranker end to end on real parts: a real `chroma run` server holds the item and
behaviour collections, the real vLLM server scores the training cases and the served
candidates (the LLM feature), and the pipeline the CLI and API build ranks with the result.
Then the same pipeline with the LLM down serves the ranker's ensemble without the LLM."""

from __future__ import annotations

import pytest

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.rank.learned import LearnedRanker
from tastelens.config.settings import ChromaSettings, EmbedderSettings, Settings
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ...conftest import TINY_COLLABORATIVE, train_tiny_serving
from ...vectorstore.conftest import chroma_server  # noqa: F401 - the real Chroma server fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # minutes: `make test-all`


def _down(request):  # noqa: ANN001, ANN202
    raise LLMUnavailableError("no LLM server")


def test_learned_ranker_with_the_llm_feature_on_vllm_and_chroma(
        vllm_managed, chroma_server, tiny_dataset, tmp_path) -> None:  # noqa: ANN001, F811
    settings = Settings(cache_dir=tmp_path, embedder=EmbedderSettings(model="hashing"),
                        chroma=ChromaSettings(mode="http", host=chroma_server.host,
                                              port=chroma_server.port),
                        recommend={"profile_source": "facts", "k": 5,
                                   "collaborative": TINY_COLLABORATIVE})
    ItemIndex.for_dataset(settings, tiny_dataset.name, HashingEncoder()).build(
        tiny_dataset.items.values(), progress=False)

    folder = train_tiny_serving(settings, tiny_dataset, llm=vllm_managed)
    ranker = LearnedRanker.load(folder)
    assert ranker.uses_llm
    assert ranker.card["data"]["llm_cases"] > 0
    assert ranker.card["data"]["recall"] > 0  # targets among the real retriever's candidates

    pipeline = RecommendPipeline.from_settings(settings, tiny_dataset, llm=vllm_managed,
                                               config=settings.recommend)
    try:
        result = pipeline.recommend("4")
    finally:
        pipeline.close()
    seen = {e.item for e in tiny_dataset.history("4")}
    assert len(result.items) == 5
    assert not seen & {r.item for r in result.items}
    assert result.report.rerank == "learned"
    assert not result.report.rerank_fallback, result.report.rerank_fallback_reason
    assert result.report.llm_requests == 1  # one score request for the LLM feature

    down = RecommendPipeline.from_settings(settings, tiny_dataset,
                                           llm=FakeBackend(responder=_down),
                                           config=settings.recommend)
    try:
        fallback = down.recommend("4")
    finally:
        down.close()
    assert len(fallback.items) == 5
    assert fallback.report.rerank_fallback and fallback.report.rerank_fallback_reason
