"""The API in front of the real RecommendPipeline (tiny dataset, HashingEncoder index in a
temporary Chroma, FakeBackend) and the real chat agent, through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.recommendation import RecommendationList
from tastelens.api.app import create_app
from tastelens.config.settings import (
    APISettings,
    ChromaSettings,
    EmbedderSettings,
    LLMSettings,
    Settings,
)
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.schemas import InterestProfile
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ..conftest import TINY_COLLABORATIVE, letter_scores, train_tiny_serving


def down(request):  # noqa: ANN001, ANN201
    raise LLMUnavailableError("no LLM server")


@pytest.fixture(scope="module")
def client(tiny_dataset, tmp_path_factory):  # noqa: ANN001, ANN201
    settings = Settings(cache_dir=tmp_path_factory.mktemp("api-pipeline"),
                        chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        llm=LLMSettings(backend="fake"),
                        api=APISettings(open_user_data=True),  # no key, no tokens: loopback
                        recommend={"profile_source": "facts", "k": 5,
                                   "collaborative": TINY_COLLABORATIVE})
    ItemIndex.for_dataset(settings, tiny_dataset.name, HashingEncoder()).build(
        tiny_dataset.items.values(), progress=False)
    train_tiny_serving(settings, tiny_dataset, llm=FakeBackend(responder=letter_scores))
    llm = FakeBackend(responder=down)
    pipeline = RecommendPipeline.from_settings(settings, tiny_dataset, llm=llm,
                                               config=settings.recommend)
    with TestClient(create_app(settings, pipeline=pipeline),
                    base_url="http://127.0.0.1") as test_client:
        yield test_client
    pipeline.close()
    assert not llm.closed  # the caller's backend: the pipeline leaves it open


def test_recommend_with_the_real_pipeline(client: TestClient, tiny_dataset) -> None:  # noqa: ANN001
    reply = client.post("/v1/recommend", json={
        "user": "4", "k": 4, "constraints": {"exclude_categories": ["Drama"]}})
    assert reply.status_code == 200, reply.text
    result = RecommendationList.model_validate(reply.json())
    seen = {e.item for e in tiny_dataset.history("4")}
    assert [r.rank for r in result.items] == [1, 2, 3, 4]
    for rec in result.items:
        assert rec.item not in seen
        assert "Drama" not in tiny_dataset.items[rec.item].categories
        assert rec.explanation is not None and rec.explanation.source == "data"
    assert result.report.rerank_fallback  # the LLM is down: retrieval order, flagged


def test_anonymous_needs_constraints(client: TestClient) -> None:
    empty = client.post("/v1/recommend", json={})
    assert empty.status_code == 422
    assert "no history and no profile" in empty.json()["error"]["message"]
    wish = client.post("/v1/recommend", json={"k": 2, "constraints": {"queries": ["comedy"]}})
    assert wish.status_code == 200 and len(wish.json()["items"]) == 2
    seed = client.post("/v1/recommend", json={"constraints": {"seed_items": ["999"]}})
    assert seed.status_code == 404 and "'999'" in seed.json()["error"]["message"]


def test_profile_route_returns_the_pipeline_profile(client: TestClient) -> None:
    reply = client.get("/v1/users/6/profile")
    assert reply.status_code == 200
    profile = InterestProfile.model_validate(reply.json())
    assert profile.user == "6" and profile.n_items > 0 and profile.categories
    assert client.get("/v1/users/nobody/profile").status_code == 404


def test_chat_with_the_real_agent(client: TestClient, tiny_dataset) -> None:  # noqa: ANN001
    first = client.post("/v1/chat", json={"message": "something funny please", "user": "3"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["text"] and body["session_id"]
    assert body["recommendations"] is not None and body["recommendations"]["items"]
    seen = {e.item for e in tiny_dataset.history("3")}
    items = body["recommendations"]["items"]
    assert not {r["item"] for r in items} & seen
    assert all("Comedy" in tiny_dataset.items[r["item"]].categories for r in items)
    again = client.post("/v1/chat", json={"message": "show me more",
                                          "session_id": body["session_id"]})
    assert again.status_code == 200 and again.json()["session_id"] == body["session_id"]
