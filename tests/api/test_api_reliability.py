"""A hung or dead LLM never stalls the API (real uvicorn over loopback, the real pipeline on the
tiny dataset, the 'openai' backend pointed at a loopback socket that accepts connections and
never answers, or at a port nobody listens on).

48 recommendations arrive at once, more than the API's pipeline workers and more than
starlette's default thread pool (40): the first wave waits out the short interactive deadline
and the breaker opens; the requests that queued meanwhile have spent their deadline (it counts
from arrival) and are answered at once without the LLM, as is everything after (retrieval
order, flagged with a reason code). /health, polled all along, answers from memory in
milliseconds and then reports the open breaker; a chat turn falls back to the rules at once.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

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
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from .conftest import serving

pytestmark = pytest.mark.integration

N_REQUESTS = 48
DEADLINE_S = 3.0


def settings_for(base_url: str, cache) -> Settings:  # noqa: ANN001
    return Settings(cache_dir=cache, chroma=ChromaSettings(mode="embedded"),
                    embedder=EmbedderSettings(model="hashing"),
                    llm=LLMSettings(backend="openai", base_url=base_url,
                                    interactive_deadline_s=DEADLINE_S, breaker_failures=3,
                                    breaker_cooldown_s=600),
                    api=APISettings(open_user_data=True),  # no key, no tokens: loopback
                    # the LLM re-ranker alone: the stage that waits on the LLM
                    recommend={"profile_source": "facts", "k": 5, "rerank": {"mode": "score"},
                               "collaborative": {"enabled": False}})


@pytest.fixture(scope="module")
def index_cache(tiny_dataset, tmp_path_factory):  # noqa: ANN001, ANN201
    cache = tmp_path_factory.mktemp("api-reliability")
    settings = Settings(cache_dir=cache, embedder=EmbedderSettings(model="hashing"))
    ItemIndex.for_dataset(settings, tiny_dataset.name, HashingEncoder()).build(
        tiny_dataset.items.values(), progress=False)
    return cache


@pytest.fixture
def api_for(tiny_dataset, index_cache):  # noqa: ANN001, ANN201
    """``api_for(llm_url)``: the API served over loopback, its LLM at ``llm_url``."""
    opened: list = []

    def start(llm_url: str) -> str:
        settings = settings_for(llm_url, index_cache)
        pipeline = RecommendPipeline.from_settings(settings, tiny_dataset)
        context = serving(create_app(settings, pipeline=pipeline))
        opened.append((context, pipeline))
        return context.__enter__()

    yield start
    for context, pipeline in opened:
        context.__exit__(None, None, None)
        pipeline.close()


async def storm(base_url: str) -> tuple[list[httpx.Response], list[float], float]:
    """N_REQUESTS recommendations at once while /health is polled; (replies, health
    latencies in seconds, wall time)."""
    limits = httpx.Limits(max_connections=N_REQUESTS + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
        latencies: list[float] = []
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                started = time.perf_counter()
                reply = await http.get("/health")
                latencies.append(time.perf_counter() - started)
                assert reply.status_code == 200
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        replies = await asyncio.gather(*(
            http.post("/v1/recommend", json={"user": str(1 + i % 30), "k": 5})
            for i in range(N_REQUESTS)))
        wall = time.perf_counter() - started
        done.set()
        await poller
    return replies, latencies, wall


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.timeout(300)
def test_a_hung_llm_costs_one_deadline_and_never_stalls_health(api_for, hung_llm_url) -> None:  # noqa: ANN001
    base_url = api_for(hung_llm_url)
    replies, health, wall = asyncio.run(storm(base_url))
    assert [r.status_code for r in replies] == [200] * N_REQUESTS, replies[0].text
    reasons = set()
    for reply in replies:
        result = RecommendationList.model_validate(reply.json())
        assert len(result.items) == 5 and result.report.rerank_fallback
        reasons.add(result.report.rerank_fallback_reason)
        assert "127.0.0.1" not in reply.text  # the LLM's address stays in the server log
    assert reasons <= {"llm_timeout", "llm_circuit_open"}
    # the first wave waits one deadline; everything after the breaker opened is immediate
    assert wall < 20 * DEADLINE_S, f"{N_REQUESTS} requests took {wall:.1f} s"
    assert len(health) >= 5
    p99, worst = percentile(health, 0.99), max(health)
    print(f"/health under load: n={len(health)} p50={percentile(health, 0.5) * 1000:.1f} ms "
          f"p99={p99 * 1000:.1f} ms max={worst * 1000:.1f} ms; storm {wall:.2f} s")
    # Never waits on the LLM: its worst case stays well inside one LLM deadline. (The client,
    # the server's event loop and its 16 workers share one process and 2 busy cores here, so
    # the p99 target of 100 ms is measured by bench/api_load.py, with the client apart.)
    assert worst < DEADLINE_S / 2, f"/health waited {worst:.2f} s: it waited on the LLM"
    assert percentile(health, 0.5) < 0.05

    with httpx.Client(base_url=base_url, timeout=30) as http:
        state = http.get("/health").json()
        assert state["status"] == "degraded"
        assert state["llm"]["breaker"]["state"] == "open"
        started = time.perf_counter()
        late = http.post("/v1/recommend", json={"user": "7", "k": 5})
        assert late.json()["report"]["rerank_fallback_reason"] == "llm_circuit_open"
        assert time.perf_counter() - started < DEADLINE_S  # no waiting once it is open
        assert http.get("/health").json()["llm"]["breaker"]["short_circuited"] > 0
        started = time.perf_counter()
        turn = http.post("/v1/chat", json={"message": "honestly, something funny please",
                                               "user": "3"})  # words the rules cannot read
        assert turn.status_code == 200, turn.text
        assert time.perf_counter() - started < DEADLINE_S  # the breaker answers at once
        assert turn.json()["turn"]["intent"]["llm"] == "unavailable"
        assert turn.json()["recommendations"]["items"]
        assert http.head("/health").status_code == 200


@pytest.mark.timeout(300)
def test_a_refused_llm_is_answered_without_it_and_without_its_address(
        api_for, refused_llm_url) -> None:  # noqa: ANN001
    base_url = api_for(refused_llm_url)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        codes = []
        for user in ("1", "2", "3", "4", "5"):
            reply = http.post("/v1/recommend", json={"user": user})
            assert reply.status_code == 200, reply.text
            assert refused_llm_url.split("/v1")[0].split("//")[1] not in reply.text
            codes.append(reply.json()["report"]["rerank_fallback_reason"])
        assert codes == ["llm_unavailable"] * 3 + ["llm_circuit_open"] * 2
        assert http.get("/health").json()["llm"]["breaker"]["state"] == "open"
