"""The HTTP API with a stand-in pipeline: routing, auth, limits, errors, sessions, lifespan.

The pipeline here is a small honest stand-in (it records calls and answers from the tiny
dataset), so these tests pin the API's own behaviour; tests/api/test_api_pipeline.py runs the
real pipeline behind it.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, SecretStr

from tastelens.agent.recommendation import (
    Constraints,
    Explanation,
    Recommendation,
    RecommendationList,
)
from tastelens.api.app import create_app
from tastelens.api.sessions import SessionStore, UnknownSessionError
from tastelens.config.settings import APISettings, Settings
from tastelens.errors import UnknownIdError
from tastelens.llm.fake import FakeBackend
from tastelens.schemas import InterestProfile

KEY = "s3cret-key-0123456789"


class StandInPipeline:
    """Answers like RecommendPipeline: first k unseen items of the tiny catalog."""

    def __init__(self, dataset) -> None:  # noqa: ANN001
        self.dataset = dataset
        self.llm = FakeBackend()
        self.calls: list[tuple] = []
        self.closed = False
        self.gate: threading.Event | None = None

    def check_user(self, user: str) -> None:
        if user not in self.dataset.user_ids:
            raise UnknownIdError(f"unknown user id {user!r} in dataset 'tiny'")

    def recommend(self, user, *, k=None, constraints=None, profile=None, history=None):  # noqa: ANN001, ANN201
        self.calls.append((user, k, constraints))
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if user == "boom":
            raise RuntimeError("secret internal detail /etc/passwd")
        self.check_user(user)
        seen = {e.item for e in self.dataset.history(user)}
        ids = [i for i in self.dataset.item_ids if i not in seen][: k or 10]
        return RecommendationList(user=user, constraints=constraints or Constraints(), items=[
            Recommendation(item=i, title=self.dataset.items[i].title, rank=r, score=1.0 / r,
                           explanation=Explanation(text="Because you liked similar films."))
            for r, i in enumerate(ids, 1)])

    def profile_for(self, user: str) -> InterestProfile:
        self.check_user(user)
        return InterestProfile(user=user, dataset="tiny", created_at=datetime(2024, 1, 1),
                               history_hash="h", n_items=len(self.dataset.history(user)),
                               summary="Likes tiny films.")

    def close(self) -> None:
        self.closed = True


class StandInTurn(BaseModel):
    text: str
    recommendations: RecommendationList | None = None
    intent: str = "recommend"


class StandInChat:
    def __init__(self, pipeline, user) -> None:  # noqa: ANN001
        self.pipeline, self.user, self.messages = pipeline, user, []

    def respond(self, message: str) -> StandInTurn:
        self.messages.append(message)
        recs = self.pipeline.recommend(self.user or "1", k=2)
        return StandInTurn(text=f"turn {len(self.messages)}: {message}", recommendations=recs)


def settings_with(**api: object) -> Settings:
    return Settings(api=APISettings(**api))


@pytest.fixture
def pipeline(tiny_dataset) -> StandInPipeline:  # noqa: ANN001
    return StandInPipeline(tiny_dataset)


@pytest.fixture
def client(pipeline: StandInPipeline) -> TestClient:
    app = create_app(settings_with(api_key=SecretStr(KEY), max_body_bytes=2048),
                     pipeline=pipeline, chat_factory=StandInChat)
    return TestClient(app, raise_server_exceptions=False)


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_health_needs_no_key_and_reports_the_dataset(client: TestClient) -> None:
    reply = client.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    llm = body.pop("llm")
    assert body == {"status": "ok", "dataset": "tiny", "items": 40, "users": 30,
                    "chat_sessions": 0}
    assert llm["backend"] == "fake" and llm["breaker"]["state"] == "closed"


def test_recommend_requires_the_api_key(client: TestClient, pipeline: StandInPipeline) -> None:
    body = {"user": "1", "k": 3}
    missing = client.post("/v1/recommend", json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/recommend", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"].startswith("invalid API key or token")
    assert client.post("/v1/recommend", json=body,
                       headers={"X-API-Key": KEY + "x"}).status_code == 401
    assert pipeline.calls == []  # nothing ran for the rejected requests
    ok = client.post("/v1/recommend", json=body, headers=AUTH)
    assert ok.status_code == 200
    via_header = client.post("/v1/recommend", json=body, headers={"X-API-Key": KEY})
    assert via_header.status_code == 200
    result = RecommendationList.model_validate(ok.json())
    assert [r.rank for r in result.items] == [1, 2, 3]
    assert pipeline.calls[0][:2] == ("1", 3)


def test_no_key_configured_means_open_for_anonymous_requests(pipeline: StandInPipeline) -> None:
    client = TestClient(create_app(settings_with(), pipeline=pipeline, chat_factory=StandInChat),
                        base_url="http://127.0.0.1")
    assert client.post("/v1/chat", json={"message": "hi"}).status_code == 200
    refused = client.post("/v1/recommend", json={"user": "2"})  # a user's data: their token
    assert refused.status_code == 401 and "--user 2" in refused.json()["error"]["message"]
    assert pipeline.calls == [("1", 2, None)]  # only the anonymous chat's stand-in call
    opened = TestClient(create_app(settings_with(open_user_data=True), pipeline=pipeline),
                        base_url="http://127.0.0.1")
    assert opened.post("/v1/recommend", json={"user": "2"}).status_code == 200


@pytest.mark.parametrize("key", ["", "  "])
def test_empty_key_is_a_settings_error(key: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="the API key is empty"):
        settings_with(api_key=SecretStr(key))


def test_body_over_the_limit_is_413_by_length_and_by_stream(client: TestClient,
                                                             pipeline: StandInPipeline) -> None:
    big = {"user": "1", "constraints": {"queries": ["x" * 3000]}}
    declared = client.post("/v1/recommend", json=big, headers=AUTH)
    assert declared.status_code == 413
    assert declared.json()["error"]["type"] == "payload_too_large"

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        yield b'{"user": "1", "constraints": {"queries": ["'
        for _ in range(10):
            yield b"y" * 500
        yield b'"]}}'

    streamed = client.post("/v1/recommend", content=chunks(),
                           headers={**AUTH, "Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert pipeline.calls == []
    small = client.post("/v1/recommend", content=b'{"user": "1", "k": 1}',
                        headers={**AUTH, "Content-Type": "application/json"})
    assert small.status_code == 200


@pytest.mark.parametrize("body, where", [
    ({"user": "1", "k": 0}, "body.k"),
    ({"user": "1", "k": 101}, "body.k"),
    ({"user": "1", "constraints": {"genre": "Horror"}}, "constraints.genre"),
    ({"user": "1", "extra": 1}, "body.extra"),
])
def test_invalid_requests_are_422_json(client: TestClient, body: dict, where: str) -> None:
    reply = client.post("/v1/recommend", json=body, headers=AUTH)
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert where in error["message"] and error["type"]


def test_malformed_json_is_422(client: TestClient) -> None:
    reply = client.post("/v1/recommend", content=b"{not json",
                        headers={**AUTH, "Content-Type": "application/json"})
    assert reply.status_code == 422 and reply.json()["error"]["type"] == "validation_error"


def test_unknown_user_is_404_and_unexpected_errors_are_500_without_details(
        client: TestClient) -> None:
    missing = client.post("/v1/recommend", json={"user": "nobody"}, headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"] == {"type": "UnknownIdError",
                                       "message": "unknown user id 'nobody' in dataset 'tiny'"}
    boom = client.post("/v1/recommend", json={"user": "boom"}, headers=AUTH)
    assert boom.status_code == 500
    assert boom.json() == {"error": {"type": "internal_error",
                                     "message": "internal server error; see the server log"}}
    assert "passwd" not in boom.text and "Traceback" not in boom.text
    nowhere = client.get("/v1/nothing", headers=AUTH)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["type"] == "not_found"


def test_chat_sessions_keep_their_conversation(client: TestClient) -> None:
    first = client.post("/v1/chat", json={"message": "hi", "user": "3"}, headers=AUTH)
    assert first.status_code == 200, first.text
    sid = first.json()["session_id"]
    assert first.json()["text"] == "turn 1: hi"
    assert first.json()["turn"] == {"intent": "recommend"}
    assert len(first.json()["recommendations"]["items"]) == 2
    second = client.post("/v1/chat", json={"message": "more", "session_id": sid}, headers=AUTH)
    assert second.json()["text"] == "turn 2: more" and second.json()["session_id"] == sid
    other = client.post("/v1/chat", json={"message": "hello"}, headers=AUTH)
    assert other.json()["session_id"] != sid and other.json()["text"] == "turn 1: hello"
    assert client.get("/health").json()["chat_sessions"] == 2
    stolen = client.post("/v1/chat", json={"message": "x", "session_id": sid, "user": "4"},
                         headers=AUTH)
    assert stolen.status_code == 409
    gone = client.post("/v1/chat", json={"message": "x", "session_id": "nope"}, headers=AUTH)
    assert gone.status_code == 404 and "session_id" in gone.json()["error"]["message"]
    unknown = client.post("/v1/chat", json={"message": "x", "user": "nobody"}, headers=AUTH)
    assert unknown.status_code == 404
    assert client.post("/v1/chat", json={"message": "x"}).status_code == 401


def test_session_store_expires_idle_sessions_and_caps_their_number() -> None:
    now = [0.0]
    store = SessionStore(lambda user: object(), max_sessions=2, ttl_s=10, clock=lambda: now[0])
    a = store.open(None, "1")
    b = store.open(None, "2")
    now[0] = 5
    assert store.open(a.id, None) is a  # touching a makes b the least recently used
    c = store.open(None, "3")
    assert len(store) == 2
    with pytest.raises(UnknownSessionError):
        store.open(b.id, None)
    now[0] = 16  # a idle 11 s > ttl; c idle 11 s too
    with pytest.raises(UnknownSessionError):
        store.open(c.id, None)
    assert len(store) == 0


def test_routes_run_in_a_thread_pool(client: TestClient, pipeline: StandInPipeline) -> None:
    """A slow recommendation must not block the event loop: /health answers meanwhile."""
    pipeline.gate = threading.Event()
    results: dict[str, int] = {}

    def slow() -> None:
        results["recommend"] = client.post("/v1/recommend", json={"user": "1"},
                                           headers=AUTH).status_code

    worker = threading.Thread(target=slow)
    worker.start()
    deadline = time.monotonic() + 10
    while not pipeline.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipeline.calls, "the recommend request never reached the pipeline"
    assert client.get("/health").status_code == 200  # while recommend is still blocked
    assert "recommend" not in results
    pipeline.gate.set()
    worker.join(10)
    assert results == {"recommend": 200}


def test_openapi_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/recommend", "/v1/chat", "/v1/users/{user_id}/profile", "/health"} <= set(
        spec["paths"])
    assert client.get("/docs").status_code == 200


def test_pipeline_factory_is_built_at_startup_and_closed_at_shutdown(tiny_dataset) -> None:  # noqa: ANN001
    built: list[StandInPipeline] = []

    def factory() -> StandInPipeline:
        built.append(StandInPipeline(tiny_dataset))
        return built[-1]

    app = create_app(settings_with(open_user_data=True), pipeline_factory=factory)
    assert built == []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert len(built) == 1 and not built[0].closed
        assert client.post("/v1/recommend", json={"user": "1", "k": 1}).status_code == 200
    assert built[0].closed and len(built) == 1


def test_profile_route(client: TestClient) -> None:
    reply = client.get("/v1/users/2/profile", headers=AUTH)
    assert reply.status_code == 200
    assert InterestProfile.model_validate(reply.json()).summary == "Likes tiny films."
    missing = client.get("/v1/users/nobody/profile", headers=AUTH)
    assert missing.status_code == 404 and "'nobody'" in missing.json()["error"]["message"]
    assert client.get("/v1/users/2/profile").status_code == 401
