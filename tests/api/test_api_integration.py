"""The real API over a socket: uvicorn in a thread on a free loopback port, httpx as the
client, the real pipeline on the tiny dataset (HashingEncoder index in a temp Chroma) and the
session's real vLLM server (fixture ``vllm_managed``) behind it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.recommendation import RecommendationList
from tastelens.api.app import create_app
from tastelens.config.settings import APISettings, ChromaSettings, EmbedderSettings, Settings
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from .conftest import serving

pytestmark = pytest.mark.integration
KEY = "integration-key-0123456789"


@pytest.fixture(scope="module")
def base_url(vllm_managed, tiny_dataset, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    root = tmp_path_factory.mktemp("api-integration")
    settings = Settings(cache_dir=root, chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        api=APISettings(api_key=SecretStr(KEY), max_body_bytes=4096),
                        recommend={"profile_source": "facts", "k": 3,
                                   "rerank": {"mode": "listwise"},
                                   "collaborative": {"enabled": False}})
    ItemIndex.for_dataset(settings, tiny_dataset.name, HashingEncoder()).build(
        tiny_dataset.items.values(), progress=False)
    built: list[RecommendPipeline] = []

    def factory() -> RecommendPipeline:
        built.append(RecommendPipeline.from_settings(
            settings, tiny_dataset, llm=vllm_managed, config=settings.recommend))
        return built[-1]

    with serving(create_app(settings, pipeline_factory=factory)) as url:
        yield url
    assert len(built) == 1 and vllm_managed.server is not None  # not closed by the app


def test_health_and_auth(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["dataset"] == "tiny"
        assert http.post("/v1/recommend", json={"user": "1"}).status_code == 401
        wrong = http.post("/v1/recommend", json={"user": "1"}, headers={"X-API-Key": "x"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "unauthorized"


def test_limits(base_url: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url, timeout=30, headers=auth) as http:
        big = http.post("/v1/recommend", json={"user": "1", "constraints": {
            "queries": ["q" * 5000]}})
        assert big.status_code == 413 and big.json()["error"]["type"] == "payload_too_large"
        streamed = http.post("/v1/recommend", content=iter([b'{"user": "1", "x": "'] +
                                                           [b"z" * 1000] * 6 + [b'"}']),
                             headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        too_many = http.post("/v1/recommend", json={"user": "1", "k": 101})
        assert too_many.status_code == 422 and "body.k" in too_many.json()["error"]["message"]
        zero = http.post("/v1/recommend", json={"user": "1", "k": 0})
        assert zero.status_code == 422
        unknown = http.post("/v1/recommend", json={"user": "nobody"})
        assert unknown.status_code == 404 and "'nobody'" in unknown.json()["error"]["message"]


def test_recommend_returns_explained_items(base_url: str, tiny_dataset) -> None:  # noqa: ANN001
    with httpx.Client(base_url=base_url, timeout=600,
                      headers={"Authorization": f"Bearer {KEY}"}) as http:
        reply = http.post("/v1/recommend", json={"user": "1", "k": 3})
        assert reply.status_code == 200, reply.text
        result = RecommendationList.model_validate(reply.json())
        profile = http.get("/v1/users/1/profile")
    seen = {e.item for e in tiny_dataset.history("1")}
    assert len(result.items) == 3 and not {r.item for r in result.items} & seen
    assert all(r.explanation is not None and r.explanation.text for r in result.items)
    assert result.report.rerank == "listwise"
    assert result.report.llm_requests >= 1  # the real server was asked (re-rank, explain)
    assert result.report.timings["total"] > 0
    assert profile.status_code == 200 and profile.json()["user"] == "1"
